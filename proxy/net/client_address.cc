#include "proxy/net/client_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "proxy/net/listen_socket.h"

namespace berth {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_port(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  unsigned value = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

// Calls fn(entry) for each non-empty comma-separated entry of the values, right to left, until
// fn returns false.
template <typename Fn>
void for_each_entry_from_right(std::span<const std::string_view> xff, Fn&& fn) {
  for (size_t line = xff.size(); line-- > 0;) {
    std::string_view rest = xff[line];
    while (true) {
      const size_t comma = rest.rfind(',');
      const std::string_view entry = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
      if (!entry.empty() && !fn(entry)) return;
      if (comma == std::string_view::npos) break;
      rest = rest.substr(0, comma);
    }
  }
}

// Dotted-quad text of an IPv4 address, NUL-terminated (at most 16 bytes with the NUL). Every
// proxied request formats its client's address (X-Forwarded-For, hashing, the access log);
// inet_ntop does it with sprintf, several times slower.
size_t format_ipv4(const uint8_t* b, char* out) {
  char* p = out;
  for (int i = 0; i < 4; ++i) {
    const unsigned v = b[i];
    if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
    if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
    *p++ = static_cast<char>('0' + v % 10);
    *p++ = i < 3 ? '.' : '\0';
  }
  return static_cast<size_t>(p - out - 1);
}

}  // namespace

std::string_view PeerIp::format(char (&buf)[kTextMax]) const {
  buf[0] = '\0';
  if (family == 4) return {buf, format_ipv4(bytes, buf)};
  if (family == 6) inet_ntop(AF_INET6, bytes, buf, kTextMax);
  return buf;
}

PeerIp::Text PeerIp::text() const {
  Text t;
  t.view = format(t.buf);
  return t;
}

void format_client_ip(ClientAddress& a) {
  if (a.family == 6 && config::ipv4_mapped(a.addr)) {
    std::memmove(a.addr, a.addr + 12, 4);
    std::memset(a.addr + 4, 0, sizeof a.addr - 4);
    a.family = 4;
  }
  a.ip[0] = '\0';
  if (a.family == 4) format_ipv4(a.addr, a.ip);
  if (a.family == 6) inet_ntop(AF_INET6, a.addr, a.ip, sizeof a.ip);
}

ClientAddress peer_address(const ConnectionInfo& conn) {
  ClientAddress a;
  conn.peer_ip.format(a.ip);
  std::memcpy(a.addr, conn.peer_ip.bytes, sizeof a.addr);
  a.family = conn.peer_ip.family;
  a.port = conn.peer_port;
  return a;
}

ClientAddress socket_address(const sockaddr* sa) {
  ClientAddress a;
  a.family = sockaddr_ip(sa, a.addr);
  a.port = sockaddr_port(sa);
  format_client_ip(a);
  return a;
}

bool parse_client_ip(std::string_view text, ClientAddress& out) {
  char buf[64];
  // inet_pton reads a C string: a NUL inside would end the address early ("1.2.3.4\0junk").
  if (text.empty() || text.size() >= sizeof buf || text.find('\0') != std::string_view::npos) return false;
  text.copy(buf, text.size());
  buf[text.size()] = '\0';
  ClientAddress a;
  if (inet_pton(AF_INET, buf, a.addr) == 1)
    a.family = 4;
  else if (inet_pton(AF_INET6, buf, a.addr) == 1)
    a.family = 6;
  else
    return false;
  format_client_ip(a);
  out = a;
  return true;
}

bool parse_forwarded_entry(std::string_view entry, ClientAddress& out) {
  entry = trim(entry);
  std::string_view host = entry;
  uint16_t port = 0;
  if (!entry.empty() && entry.front() == '[') {
    const size_t close = entry.find(']');
    if (close == std::string_view::npos) return false;
    host = entry.substr(1, close - 1);
    const std::string_view after = entry.substr(close + 1);
    if (!after.empty() && (after.front() != ':' || !parse_port(after.substr(1), port))) return false;
    if (host.find(':') == std::string_view::npos) return false;  // brackets only around IPv6
  } else if (const size_t colon = entry.find(':');
             colon != std::string_view::npos && entry.find(':', colon + 1) == std::string_view::npos) {
    host = entry.substr(0, colon);  // exactly one colon: IPv4 with a port
    if (!parse_port(entry.substr(colon + 1), port)) return false;
    if (host.find('.') == std::string_view::npos) return false;
  }
  ClientAddress a;
  if (!parse_client_ip(host, a)) return false;
  a.port = port;
  out = a;
  return true;
}

bool in_ranges(const ClientAddress& a, std::span<const config::Cidr> ranges) {
  if (a.family != 4 && a.family != 6) return false;
  return config::any_contains(ranges, a.addr, a.family == 6);
}

ResolvedClient resolve_client_address(const ClientAddress& peer, std::span<const config::Cidr> trusted,
                                      std::span<const std::string_view> xff) {
  ResolvedClient result{peer, 0};
  if (trusted.empty() || !in_ranges(peer, trusted)) return result;
  size_t walked = 0;
  for_each_entry_from_right(xff, [&](std::string_view entry) {
    ClientAddress hop;
    if (!parse_forwarded_entry(entry, hop)) return false;  // the last good hop stands
    ++walked;
    result.address = hop;
    result.entries_used = walked;
    return in_ranges(hop, trusted);  // a trusted hop: keep walking left
  });
  return result;
}

void append_forwarded_tail(std::span<const std::string_view> xff, size_t count, std::string& out) {
  if (count == 0) return;
  // Collected right to left, written left to right.
  std::vector<std::string_view> entries;
  entries.reserve(count);
  for_each_entry_from_right(xff, [&](std::string_view entry) {
    entries.push_back(entry);
    return entries.size() < count;
  });
  for (size_t i = entries.size(); i-- > 0;) {
    out.append(entries[i]);
    if (i > 0) out.append(", ");
  }
}

}  // namespace berth
