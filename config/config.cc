// Value parsers and small struct methods from config.h. No YAML here (see config_loader.cc).
#include "config/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <limits>

#include "config/config_detail.h"

namespace berth::config {
namespace {

constexpr size_t kMaxHostLength = 253;   // DNS limit for a whole name
constexpr size_t kMaxLabelLength = 63;

bool is_digits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Leading decimal digits of text as an unsigned number; nullopt on overflow or no digits.
// `digits` receives how many characters were consumed.
std::optional<uint64_t> leading_number(std::string_view text, size_t& digits) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  digits = static_cast<size_t>(end - text.data());
  if (ec != std::errc() || digits == 0) return std::nullopt;
  // from_chars accepts no sign for unsigned types, so "-1" and "+1" already fail here.
  return value;
}

std::optional<uint64_t> checked_multiply(uint64_t value, uint64_t factor) {
  if (factor != 0 && value > std::numeric_limits<uint64_t>::max() / factor) return std::nullopt;
  return value * factor;
}

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower_copy(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// ---- durations and sizes ----

struct Unit {
  std::string_view suffix;
  uint64_t factor;
};

constexpr Unit kDurationUnits[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000},
};

constexpr Unit kSizeUnits[] = {
    {"", 1},
    {"B", 1},
    {"KB", 1000},
    {"kB", 1000},
    {"MB", 1000ull * 1000},
    {"GB", 1000ull * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
    {"KiB", 1024},
    {"MiB", 1024ull * 1024},
    {"GiB", 1024ull * 1024 * 1024},
    {"TiB", 1024ull * 1024 * 1024 * 1024},
};

template <size_t N>
std::optional<uint64_t> parse_number_with_unit(std::string_view text, const Unit (&units)[N]) {
  size_t digits = 0;
  auto number = leading_number(text, digits);
  if (!number) return std::nullopt;
  std::string_view suffix = text.substr(digits);
  for (const Unit& unit : units) {
    if (suffix == unit.suffix) return checked_multiply(*number, unit.factor);
  }
  return std::nullopt;
}

// ---- socket addresses ----

struct AddressParts {
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
};

std::string split_address(std::string_view text, AddressParts& parts) {
  if (text.empty()) return "address is empty";
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return "missing ']' after the IPv6 address";
    parts.host = text.substr(1, close - 1);
    parts.bracketed = true;
    std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return "missing ':port' after ']'";
    parts.port = rest.substr(1);
    return {};
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return "missing ':port'";
  parts.host = text.substr(0, colon);
  parts.port = text.substr(colon + 1);
  if (parts.host.find(':') != std::string_view::npos) {
    return "IPv6 addresses must be in brackets, as in [::1]:8080";
  }
  return {};
}

std::string parse_port(std::string_view text, bool allow_port_zero, uint16_t& port) {
  if (text.empty()) return "port is missing";
  if (!is_digits(text) || text.size() > 5) return "port '" + std::string(text) + "' is not a number from 1 to 65535";
  unsigned value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > 65535) return "port " + std::string(text) + " is out of range (1..65535)";
  if (value == 0 && !allow_port_zero) return "port 0 is not allowed here";
  port = static_cast<uint16_t>(value);
  return {};
}

// Canonical text of a numeric IP (e.g. "::0001" -> "::1"); empty when not numeric.
std::string canonical_ip(std::string_view text, int family) {
  char input[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof input) return {};
  text.copy(input, text.size());
  input[text.size()] = '\0';
  unsigned char binary[sizeof(in6_addr)];
  if (inet_pton(family, input, binary) != 1) return {};
  char output[INET6_ADDRSTRLEN];
  if (inet_ntop(family, binary, output, sizeof output) == nullptr) return {};
  return output;
}

std::string parse_host_part(const AddressParts& parts, SocketAddress& out) {
  std::string host(parts.host);
  if (parts.bracketed) {
    out.host = canonical_ip(host, AF_INET6);
    out.ipv6 = true;
    if (out.host.empty()) return "'" + host + "' is not a numeric IPv6 address";
    return {};
  }
  out.ipv6 = false;
  if (host.empty()) {
    out.host = "0.0.0.0";
    return {};
  }
  if (lower_copy(host) == "localhost") {
    out.host = "127.0.0.1";
    return {};
  }
  out.host = canonical_ip(host, AF_INET);
  if (out.host.empty()) {
    return "'" + host + "' is not a numeric IPv4 address (host names are not resolved; use e.g. 127.0.0.1)";
  }
  return {};
}

std::string parse_address_into(std::string_view text, bool allow_port_zero, SocketAddress& out) {
  AddressParts parts;
  if (std::string problem = split_address(text, parts); !problem.empty()) return problem;
  if (std::string problem = parse_host_part(parts, out); !problem.empty()) return problem;
  return parse_port(parts.port, allow_port_zero, out.port);
}

// ---- host patterns ----

bool is_label_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string check_label(std::string_view label) {
  if (label.empty()) return "empty label (two dots in a row, or a leading dot)";
  if (label.size() > kMaxLabelLength) return "label longer than 63 characters";
  for (char c : label) {
    if (c == '*') return "'*' is only allowed as the whole first label, as in '*.example.com'";
    if (!is_label_char(c)) {
      if (c == ':') return "host patterns must not include a port";
      return std::string("character '") + c + "' is not allowed (letters, digits, '-', '_' and '.' only)";
    }
  }
  return {};
}

std::string normalize_bracketed_host(std::string_view lowered, std::string& out) {
  if (lowered.back() != ']') {
    if (lowered.find("]:") != std::string_view::npos) return "host patterns must not include a port";
    return "missing ']' after the IPv6 address";
  }
  std::string ip = canonical_ip(lowered.substr(1, lowered.size() - 2), AF_INET6);
  if (ip.empty()) return "'" + std::string(lowered) + "' is not a valid IPv6 address";
  out = "[" + ip + "]";
  return {};
}

std::string normalize_host_into(std::string_view text, std::string& out) {
  std::string lowered = lower_copy(text);
  if (!lowered.empty() && lowered.back() == '.') lowered.pop_back();
  if (lowered.empty()) return "host pattern is empty";
  if (lowered.front() == '[') return normalize_bracketed_host(lowered, out);
  if (lowered.size() > kMaxHostLength) return "host pattern longer than 253 characters";
  std::string_view rest = lowered;
  if (rest.starts_with("*.")) rest.remove_prefix(2);
  else if (rest == "*") return "'*' alone is not a host pattern (omit 'host' to match any host)";
  while (true) {
    size_t dot = rest.find('.');
    if (std::string problem = check_label(rest.substr(0, dot)); !problem.empty()) return problem;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  out = std::move(lowered);
  return {};
}

}  // namespace

std::string SocketAddress::to_string() const {
  std::string port_text = std::to_string(port);
  if (ipv6) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

std::string Error::to_string() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

const std::vector<std::string_view>& encoded_character_keys() {
  static const std::vector<std::string_view> keys = {
      "allow_encoded_slash",   "allow_encoded_backslash",     "allow_encoded_null_character", "allow_encoded_semicolon",
      "allow_encoded_percent", "allow_encoded_question_mark", "allow_encoded_hash"};
  return keys;
}

std::optional<EncodedCharacter> encoded_character_named(std::string_view key) {
  const std::vector<std::string_view>& keys = encoded_character_keys();
  const auto at = std::find(keys.begin(), keys.end(), key);
  if (at == keys.end()) return std::nullopt;
  return static_cast<EncodedCharacter>(at - keys.begin());
}

std::optional<EncodedCharacter> encoded_character_named_without_underscores(std::string_view name) {
  const std::vector<std::string_view>& keys = encoded_character_keys();
  for (size_t i = 0; i < keys.size(); ++i) {
    size_t at = 0;
    bool same = true;
    for (char c : keys[i]) {
      if (c == '_') continue;
      if (at == name.size() || name[at] != c) {
        same = false;
        break;
      }
      ++at;
    }
    if (same && at == name.size()) return static_cast<EncodedCharacter>(i);
  }
  return std::nullopt;
}

const char* acme_challenge_name(Acme::Challenge challenge) {
  return challenge == Acme::Challenge::kTlsAlpn01 ? "tls-alpn-01" : "http-01";
}

std::optional<Millis> parse_duration(std::string_view text) {
  auto millis = parse_number_with_unit(text, kDurationUnits);
  if (!millis || *millis > static_cast<uint64_t>(kMaxDuration.count())) return std::nullopt;
  return Millis(static_cast<Millis::rep>(*millis));
}

std::optional<uint64_t> parse_size(std::string_view text) {
  return parse_number_with_unit(text, kSizeUnits);
}

std::optional<uint32_t> parse_mirror_percent(std::string_view text) {
  const size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view() : text.substr(dot + 1);
  if (!is_digits(whole) || whole.size() > 3) return std::nullopt;
  if (dot != std::string_view::npos && (fraction.empty() || fraction.size() > 2 || !is_digits(fraction)))
    return std::nullopt;
  uint32_t bp = 0;
  for (char c : whole) bp = bp * 10 + static_cast<uint32_t>(c - '0');
  bp *= 100;
  if (!fraction.empty()) bp += static_cast<uint32_t>(fraction[0] - '0') * 10;
  if (fraction.size() == 2) bp += static_cast<uint32_t>(fraction[1] - '0');
  if (bp == 0 || bp > 10'000) return std::nullopt;
  return bp;
}

std::optional<SocketAddress> parse_socket_address(std::string_view text, bool allow_port_zero) {
  SocketAddress address;
  if (!parse_address_into(text, allow_port_zero, address).empty()) return std::nullopt;
  return address;
}

std::string realm_problem(std::string_view realm) {
  const bool printable = std::all_of(realm.begin(), realm.end(), [](unsigned char c) {
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
  });
  if (realm.empty() || !printable) return "a realm must be non-empty printable ASCII without '\"' or '\\'";
  return "";
}

std::vector<std::string> methods_let_through(std::vector<std::string> methods) {
  if (std::find(methods.begin(), methods.end(), "GET") != methods.end() &&
      std::find(methods.begin(), methods.end(), "HEAD") == methods.end())
    methods.emplace_back("HEAD");
  return methods;
}

std::string parse_forward_auth_url(const std::string& url, ForwardAuth& out) {
  std::string_view rest = url;
  if (rest.substr(0, 7) != "http://")
    return "expected an http:// URL with a numeric address and a port, e.g. http://127.0.0.1:9100/check";
  rest.remove_prefix(7);
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view target = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  if (authority.empty()) return "the URL has no address";
  if (authority.find('@') != std::string_view::npos) return "user information in the URL is not supported";
  // Names would need a DNS lookup per connection; localhost is the one name taken as is.
  std::string address(authority);
  if (authority.substr(0, 10) == "localhost:") address = "127.0.0.1" + std::string(authority.substr(9));
  std::string problem = parse_address_into(address, /*allow_port_zero=*/false, out.address);
  if (!problem.empty()) return "'" + std::string(authority) + "': " + problem + " (names other than localhost are not resolved)";
  for (unsigned char c : target)
    if (c <= 0x20 || c >= 0x7f || c == '#') return "the path has a character that needs percent-encoding";
  out.authority = std::string(authority);
  out.target = std::string(target);
  return "";
}

bool host_pattern_covers(std::string_view allowed, std::string_view host) {
  if (allowed == host) return true;
  if (allowed.substr(0, 2) != "*.") return false;
  const std::string_view suffix = allowed.substr(1);  // ".example.com"
  // A name (or wildcard) strictly below the suffix: at least one label before it.
  if (host.size() <= suffix.size() || host.substr(host.size() - suffix.size()) != suffix) return false;
  std::string_view below = host.substr(0, host.size() - suffix.size());
  if (below == "*") return false;  // "*.example.com" under "*.example.com" was the equal case
  return !below.empty();
}

std::optional<std::string> normalize_host_pattern(std::string_view text) {
  std::string pattern;
  if (!normalize_host_into(text, pattern).empty()) return std::nullopt;
  return pattern;
}

namespace detail {

std::string address_problem(std::string_view text, bool allow_port_zero) {
  SocketAddress ignored;
  return parse_address_into(text, allow_port_zero, ignored);
}

std::string host_pattern_problem(std::string_view text) {
  std::string ignored;
  return normalize_host_into(text, ignored);
}

}  // namespace detail
}  // namespace berth::config

namespace berth::config {
namespace {
// Four bytes in network order as a host-order word.
uint32_t load_be32(const uint8_t* p) noexcept {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
}  // namespace

bool ipv4_mapped(const uint8_t* p) noexcept {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(kPrefix, kPrefix + 12, p);
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  Cidr cidr;
  cidr.text = std::string(text);
  std::string_view addr = text;
  int prefix = -1;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view bits = text.substr(slash + 1);
    if (bits.empty() || bits.size() > 3) return std::nullopt;
    // Digits only: from_chars would take "-0" as 0 (everyone) and "-8" as no prefix (one host).
    if (!std::all_of(bits.begin(), bits.end(), [](char c) { return c >= '0' && c <= '9'; })) return std::nullopt;
    auto r = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (r.ec != std::errc() || r.ptr != bits.data() + bits.size()) return std::nullopt;
    addr = text.substr(0, slash);
  }
  const std::string a(addr);
  if (inet_pton(AF_INET, a.c_str(), cidr.bytes) == 1) {
    cidr.ipv6 = false;
    if (prefix < 0) prefix = 32;
    if (prefix > 32) return std::nullopt;
  } else if (inet_pton(AF_INET6, a.c_str(), cidr.bytes) == 1) {
    cidr.ipv6 = true;
    if (prefix < 0) prefix = 128;
    if (prefix > 128) return std::nullopt;
    // "::ffff:10.0.0.0/104" is the IPv4 range 10.0.0.0/8: clients are matched as IPv4 (a mapped
    // address included), so kept as IPv6 it would match nobody and a deny would fail open. One
    // shorter than /96 would mix IPv4 and IPv6 space: refused.
    if (ipv4_mapped(cidr.bytes)) {
      if (prefix < 96) return std::nullopt;
      std::memmove(cidr.bytes, cidr.bytes + 12, 4);
      std::memset(cidr.bytes + 4, 0, 12);
      cidr.ipv6 = false;
      prefix -= 96;
    }
  } else {
    return std::nullopt;
  }
  cidr.prefix = static_cast<uint8_t>(prefix);
  // Host bits are cleared: "10.1.2.3/8" means 10.0.0.0/8.
  const int total = cidr.ipv6 ? 16 : 4;
  for (int i = 0; i < total; ++i) {
    const int keep = std::clamp(prefix - i * 8, 0, 8);
    cidr.bytes[i] &= static_cast<uint8_t>(keep == 8 ? 0xff : (0xff00 >> keep) & 0xff);
  }
  return cidr;
}

bool Cidr::contains(const uint8_t* addr, bool addr_ipv6) const noexcept {
  if (addr_ipv6 && !ipv6 && ipv4_mapped(addr)) {
    addr += 12;  // ::ffff:a.b.c.d against an IPv4 range
    addr_ipv6 = false;
  }
  if (addr_ipv6 != ipv6) return false;
  if (!ipv6) {  // bytes has its host bits cleared: the network as it is
    const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
    return (load_be32(addr) & mask) == load_be32(bytes);
  }
  int bits = prefix;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff00 >> bits);
    if ((addr[i] & mask) != bytes[i]) return false;
  }
  return true;
}

bool any_contains(std::span<const Cidr> ranges, const uint8_t* addr, bool addr_ipv6) noexcept {
  for (const Cidr& c : ranges)
    if (c.contains(addr, addr_ipv6)) return true;
  return false;
}

std::string header_name_problem(std::string_view name) {
  if (name.empty()) return "a header name must not be empty";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    const bool token = std::isalnum(u) || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!token) return "'" + std::string(name) + "' is not a valid header name";
  }
  static constexpr std::string_view kReserved[] = {
      "content-length",  "transfer-encoding", "connection",       "keep-alive",
      "upgrade",         "te",                "trailer",          "proxy-connection",
      "host",            "x-forwarded-for",   "x-forwarded-proto", "x-forwarded-host",
      "x-forwarded-port", "x-request-id"};
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view r : kReserved)
    if (lower == r) return "'" + std::string(name) + "' is managed by Berth (framing, connection or forwarding) and cannot be edited";
  return {};
}

bool valid_service_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

std::string path_prefix_problem(std::string_view path) {
  if (path.empty() || path.front() != '/') return "must start with '/'";
  for (char c : path) {
    auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f) return "must not contain spaces or control characters";
    if (c == '?' || c == '#') {
      return std::string("must not contain '") + c + "' (routes match the path only, not the query)";
    }
  }
  return {};
}

std::string unreachable_prefix_problem(std::string_view path) {
  auto hex_value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto never = [](std::string what) {
    what.insert(0, "never matches: ");
    what.append(" (request paths are sanitized before routing; see sanitize_path)");
    return what;
  };
  for (size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      std::string what = "it holds a raw byte over 0x7f, which a request path may not (400); write it percent-encoded (";
      const char* hex = "0123456789ABCDEF";
      for (size_t k = i; k < path.size() && static_cast<unsigned char>(path[k]) >= 0x80; ++k) {
        const auto b = static_cast<unsigned char>(path[k]);
        what.push_back('%');
        what.push_back(hex[b >> 4]);
        what.push_back(hex[b & 15]);
      }
      what.push_back(')');
      return never(std::move(what));
    }
    if (c == '/') {
      if (i + 1 < path.size() && path[i + 1] == '/') return never("it holds '//', which requests have merged");
      size_t j = i + 1;
      while (j < path.size() && path[j] == '.') ++j;
      if ((j - i - 1 == 1 || j - i - 1 == 2) && j < path.size() && path[j] == '/')
        return never("it holds a '.' or '..' segment, which requests have resolved");
    } else if (c == '%') {
      // At the very end, a partial encoding may still start one ("/a%2" matches "/a%2F...").
      const size_t have = std::min<size_t>(2, path.size() - i - 1);
      for (size_t k = 1; k <= have; ++k)
        if (hex_value(path[i + k]) < 0) return never("a '%' not followed by two hex digits is refused in requests");
      if (have < 2) continue;
      const auto byte = static_cast<unsigned char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
      const bool unreserved = std::isalnum(byte) || byte == '-' || byte == '.' || byte == '_' || byte == '~';
      const std::string written(path.substr(i, 3));
      std::string upper = written;
      for (char& u : upper) u = static_cast<char>(std::toupper(static_cast<unsigned char>(u)));
      std::string what;
      if (unreserved) {
        what.append("'").append(written).append("' is decoded in requests; write '").push_back(static_cast<char>(byte));
        what.append("'");
        return never(std::move(what));
      }
      if (upper != written) {
        what.append("requests have '").append(upper).append("', not '").append(written).append("'");
        return never(std::move(what));
      }
      i += 2;
    }
  }
  return {};
}

std::string header_value_problem(std::string_view value) {
  for (char c : value)
    if (c == '\r' || c == '\n' || c == '\0') return "a header value must not contain CR, LF or NUL";
  return {};
}

}  // namespace berth::config

namespace berth::config {

std::vector<std::pair<std::string, std::string>> parse_htpasswd(std::string_view text, const std::string& file,
                                                                std::vector<Error>& errors) {
  std::vector<std::pair<std::string, std::string>> users;
  int line_no = 0;
  while (!text.empty()) {
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      errors.push_back(Error{file, line_no, 1, "expected 'user:hash'"});
      continue;
    }
    std::string user(line.substr(0, colon));
    std::string hash(line.substr(colon + 1));
    // Some tools append ":comment" fields; the hash alphabet has no ':'.
    if (size_t more = hash.find(':'); more != std::string::npos) hash.resize(more);
    const bool slow = hash.rfind("$2y$", 0) == 0 || hash.rfind("$2b$", 0) == 0 || hash.rfind("$2a$", 0) == 0 ||
                      hash.rfind("$6$", 0) == 0 || hash.rfind("$y$", 0) == 0;
    if (!slow) {
      std::string kind = hash.rfind("$apr1$", 0) == 0 || hash.rfind("$1$", 0) == 0 ? "an MD5 hash"
                         : hash.rfind("{SHA}", 0) == 0                          ? "an unsalted SHA-1 hash"
                         : hash.rfind("$5$", 0) == 0                            ? "a SHA-256 crypt hash"
                         : hash.empty()                                         ? "an empty password"
                         : hash[0] == '$'                                       ? "an unknown hash"
                                                                                : "a plain-text or DES password";
      errors.push_back(Error{file, line_no, static_cast<int>(colon + 2),
                             "user '" + user + "': " + kind +
                                 " is refused; use bcrypt (htpasswd -B), SHA-512 crypt or yescrypt"});
      continue;
    }
    const bool duplicate = std::any_of(users.begin(), users.end(), [&](const auto& u) { return u.first == user; });
    if (duplicate) {
      errors.push_back(Error{file, line_no, 1, "user '" + user + "' is listed twice"});
      continue;
    }
    users.emplace_back(std::move(user), std::move(hash));
  }
  return users;
}

std::string parse_syslog_target(std::string_view text, AccessLog& access_log) {
  access_log.syslog.clear();
  access_log.syslog_kind = AccessLog::Syslog::kNone;
  if (text.empty()) return {};  // no syslog
  const std::string expected = "expected \"udp://ip:port\", \"tcp://ip:port\" or \"unix:///path\" (such as "
                               "unix:///dev/log), got '" + std::string(text) + "'";
  AccessLog::Syslog kind = AccessLog::Syslog::kNone;
  std::string_view rest;
  if (text.rfind("udp://", 0) == 0) kind = AccessLog::Syslog::kUdp, rest = text.substr(6);
  else if (text.rfind("tcp://", 0) == 0) kind = AccessLog::Syslog::kTcp, rest = text.substr(6);
  else if (text.rfind("unix://", 0) == 0) kind = AccessLog::Syslog::kUnix, rest = text.substr(7);
  else return expected;
  if (kind == AccessLog::Syslog::kUnix) {
    if (rest.size() < 2 || rest[0] != '/' || rest.find('\0') != std::string_view::npos)
      return expected;
    if (rest.size() >= 108) return "the socket path of '" + std::string(text) + "' is too long (at most 107 bytes)";
    access_log.syslog_socket = std::string(rest);
  } else {
    auto address = parse_socket_address(rest, /*allow_port_zero=*/false);
    if (!address) return expected + " (the host must be a numeric IP address and the port 1-65535)";
    access_log.syslog_address = *address;
  }
  access_log.syslog_kind = kind;
  access_log.syslog = std::string(text);
  return {};
}

}  // namespace berth::config
