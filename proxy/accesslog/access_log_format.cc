#include "proxy/accesslog/access_log_format.h"

#include <charconv>
#include <cstdio>
#include <ctime>

#include "proxy/model/route_table.h"

namespace berth::accesslog {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 character starting at s[i], or 0 when the byte there does not start
// one (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, or cut short).
size_t utf8_char_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) len = 3, lo = 0xA0;
  else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) len = 3;
  else if (c == 0xED) len = 3, hi = 0x9F;
  else if (c == 0xF0) len = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) len = 4, hi = 0x8F;
  else return 0;
  if (i + len > s.size()) return 0;
  if (b(1) < lo || b(1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (b(k) < 0x80 || b(k) > 0xBF) return 0;
  return len;
}

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// Milliseconds with three decimals ("12.345"); negative durations (clock oddities) as 0.
void append_ms(std::string& out, int64_t ns) {
  if (ns < 0) ns = 0;
  const auto us = static_cast<uint64_t>(ns) / 1000;
  append_uint(out, us / 1000);
  char frac[4] = {static_cast<char>('0' + us % 1000 / 100), static_cast<char>('0' + us % 100 / 10),
                  static_cast<char>('0' + us % 10), 0};
  out.push_back('.');
  out.append(frac, 3);
}

// A duration between two monotonic stamps of an attempt, or null when either did not happen.
void append_span_ms(std::string& out, int64_t from_ns, int64_t to_ns) {
  if (from_ns == 0 || to_ns == 0) out += "null";
  else append_ms(out, to_ns - from_ns);
}

void key(std::string& out, std::string_view name) {
  if (out.back() != '{') out.push_back(',');
  out.push_back('"');
  out.append(name);
  out += "\":";
}

void str_field(std::string& out, std::string_view name, std::string_view value, size_t max = 0) {
  key(out, name);
  append_json_string(out, value, max);
}

void uint_field(std::string& out, std::string_view name, uint64_t value) {
  key(out, name);
  append_uint(out, value);
}

struct CivilTime {
  int year, month, day, hour, minute, second, millis;
};

CivilTime civil(int64_t unix_ns) {
  int64_t ms = unix_ns / 1'000'000;
  if (ms < 0) ms = 0;
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
          static_cast<int>(ms % 1000)};
}

void append_digits(std::string& out, int value, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i, value /= 10) buf[i] = static_cast<char>('0' + value % 10);
  out.append(buf, static_cast<size_t>(width));
}

// A quoted field of the combined format: nginx's escaping (\" \\ and \xHH for the rest).
void append_combined_quoted(std::string& out, std::string_view s) {
  out.push_back('"');
  if (s.empty()) out.push_back('-');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7F) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

std::string_view host_of(std::string_view address) {
  // "1.2.3.4:5" -> "1.2.3.4"; "[::1]:5" -> "::1"
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    return close == std::string_view::npos ? address : address.substr(1, close - 1);
  }
  size_t colon = address.rfind(':');
  return colon == std::string_view::npos ? address : address.substr(0, colon);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s, size_t max_bytes) {
  out.push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = utf8_char_len(s, i);
    const size_t taken = len ? len : 1;
    if (max_bytes && i + taken > max_bytes) {
      out += "...";
      break;
    }
    if (len == 0) {
      out += "\\ufffd";  // not UTF-8: the replacement character
    } else if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7F) {
      switch (c) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 15]);
      }
    } else {
      out.append(s.data() + i, len);
    }
    i += taken;
  }
  out.push_back('"');
}

void append_rfc3339_ms(std::string& out, int64_t unix_ns) {
  const CivilTime t = civil(unix_ns);
  append_digits(out, t.year, 4);
  out.push_back('-');
  append_digits(out, t.month, 2);
  out.push_back('-');
  append_digits(out, t.day, 2);
  out.push_back('T');
  append_digits(out, t.hour, 2);
  out.push_back(':');
  append_digits(out, t.minute, 2);
  out.push_back(':');
  append_digits(out, t.second, 2);
  out.push_back('.');
  append_digits(out, t.millis, 3);
  out.push_back('Z');
}

void append_json_line(std::string& out, const ExchangeRecord& r, size_t max_field) {
  out += "{\"time\":\"";
  append_rfc3339_ms(out, r.start_unix_ns);
  out.push_back('"');
  str_field(out, "request_id", r.request_id, max_field);
  str_field(out, "client", r.client);
  str_field(out, "method", r.method, max_field);
  str_field(out, "host", r.host, max_field);
  str_field(out, "path", r.path, max_field);
  str_field(out, "query", r.query, max_field);
  key(out, "protocol");
  if (r.method.empty()) {
    out += "\"\"";  // the request head never parsed: its version is unknown
  } else {
    out += "\"HTTP/1.";
    append_uint(out, r.version_minor);
    out.push_back('"');
  }
  uint_field(out, "status", r.status);
  uint_field(out, "bytes_in", r.bytes_in);
  uint_field(out, "bytes_out", r.bytes_out);
  key(out, "duration_ms");
  append_ms(out, r.end_ns - r.start_ns);
  str_field(out, "route", r.route);
  str_field(out, "service", r.service);
  const AttemptRecord* last = r.last_attempt();
  str_field(out, "instance", last ? last->instance : std::string_view());
  str_field(out, "container", last ? endpoint_container_name(last->container) : std::string_view());
  uint_field(out, "attempts", r.attempt_count);
  key(out, "tries");
  out.push_back('[');
  const size_t kept = r.attempt_count < ExchangeRecord::kMaxAttempts ? r.attempt_count : ExchangeRecord::kMaxAttempts;
  for (size_t i = 0; i < kept; ++i) {
    const AttemptRecord& a = r.attempts[i];
    if (i) out.push_back(',');
    out.push_back('{');
    str_field(out, "instance", a.instance);
    str_field(out, "container", endpoint_container_name(a.container));
    key(out, "connect_ms");
    append_span_ms(out, a.start_ns, a.connected_ns);
    key(out, "first_byte_ms");
    append_span_ms(out, a.start_ns, a.first_byte_ns);
    uint_field(out, "status", a.status);
    key(out, "reused");
    out += a.reused ? "true" : "false";
    str_field(out, "failure", a.failure ? a.failure : "");
    out.push_back('}');
  }
  out.push_back(']');
  str_field(out, "cause", r.cause ? r.cause : "");
  str_field(out, "end", exchange_end_name(r.end));
  str_field(out, "user_agent", r.user_agent, max_field);
  str_field(out, "referer", r.referer, max_field);
  if (!r.tls_version.empty()) {
    str_field(out, "tls_version", r.tls_version);
    str_field(out, "tls_cipher", r.tls_cipher);
    str_field(out, "tls_sni", r.tls_sni, max_field);
  }
  out += "}\n";
}

void append_combined_line(std::string& out, const ExchangeRecord& r) {
  const std::string_view client = host_of(r.client);
  out.append(client.empty() ? std::string_view("-") : client);
  out += " - - [";
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const CivilTime t = civil(r.start_unix_ns);
  append_digits(out, t.day, 2);
  out.push_back('/');
  out += kMonths[(t.month - 1) % 12];
  out.push_back('/');
  append_digits(out, t.year, 4);
  out.push_back(':');
  append_digits(out, t.hour, 2);
  out.push_back(':');
  append_digits(out, t.minute, 2);
  out.push_back(':');
  append_digits(out, t.second, 2);
  out += " +0000] ";
  if (r.method.empty()) {
    out += "\"-\"";
  } else {
    std::string request = r.method;
    request.push_back(' ');
    request += r.path;
    if (!r.query.empty()) {
      request.push_back('?');
      request += r.query;
    }
    request += " HTTP/1.";
    request.push_back(static_cast<char>('0' + r.version_minor % 10));
    append_combined_quoted(out, request);
  }
  out.push_back(' ');
  append_uint(out, r.status);
  out.push_back(' ');
  if (r.bytes_out == 0) out.push_back('-');
  else append_uint(out, r.bytes_out);
  out.push_back(' ');
  append_combined_quoted(out, r.referer);
  out.push_back(' ');
  append_combined_quoted(out, r.user_agent);
  out.push_back('\n');
}

void append_syslog_header(std::string& out, int64_t unix_ns, std::string_view hostname, int pid) {
  out += "<134>1 ";  // facility local0 (16) * 8 + severity info (6)
  append_rfc3339_ms(out, unix_ns);
  out.push_back(' ');
  // HOSTNAME is 1-255 printable ASCII characters.
  size_t n = 0;
  for (unsigned char c : hostname) {
    if (n == 255) break;
    if (c > 32 && c < 127) out.push_back(static_cast<char>(c)), ++n;
  }
  if (n == 0) out.push_back('-');
  out += " berth ";
  append_uint(out, static_cast<uint64_t>(pid > 0 ? pid : 0));
  out += " access - ";
}

void append_syslog_message(std::string& out, std::string_view header, std::string_view line,
                           const ExchangeRecord& record, bool json) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  std::string shorter;
  // Request strings are what makes a record long: shorten them, and keep valid JSON.
  for (size_t max_field : {size_t{512}, size_t{64}}) {
    if (!json || header.size() + line.size() <= kSyslogMaxMessage) break;
    shorter.clear();
    append_json_line(shorter, record, max_field);
    line = shorter;
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  }
  const size_t start = out.size();
  out.append(header);
  size_t room = kSyslogMaxMessage > header.size() ? kSyslogMaxMessage - header.size() : 0;
  if (line.size() > room) {
    size_t cut = room;
    // Back off to a character boundary: never leave half a UTF-8 sequence.
    while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    line = line.substr(0, cut);
  }
  out.append(line);
  for (size_t i = start; i < out.size(); ++i)
    if (out[i] == '\n') out[i] = ' ';
  out.push_back('\n');
}

}  // namespace berth::accesslog
