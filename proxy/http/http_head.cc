#include "proxy/http/http_head.h"

#include <cstdint>
#include <cstring>

#include "proxy/http/request_path.h"

namespace berth::http {
namespace {

constexpr unsigned char kLower[256] = {
#define L(c) static_cast<unsigned char>((c) >= 'A' && (c) <= 'Z' ? (c) + 32 : (c))
#define R4(b) L(b), L(b + 1), L(b + 2), L(b + 3)
#define R16(b) R4(b), R4(b + 4), R4(b + 8), R4(b + 12)
    R16(0),   R16(16),  R16(32),  R16(48),  R16(64),  R16(80),  R16(96),  R16(112),
    R16(128), R16(144), R16(160), R16(176), R16(192), R16(208), R16(224), R16(240),
#undef R16
#undef R4
#undef L
};

bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// field-value characters: VCHAR, obs-text, SP, HTAB. Everything else (NUL, CR, LF, other
// controls, DEL) is refused.
bool is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// request-target characters: visible ASCII only.
bool is_target_char(unsigned char c) { return c > 0x20 && c < 0x7f; }

// A host name's characters: those a route's host can hold. RFC 3986's reg-name also allows
// sub-delims and %HH, which no route matches and which downstream readers misread: a ','
// makes X-Forwarded-Host a list whose last item the client chooses ("x,admin.test").
bool is_host_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '.' || c == '_';
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

// Calls fn(element) for each comma-separated list element, trimmed; empty elements included.
template <typename Fn>
void for_each_list_element(std::string_view v, Fn&& fn) {
  size_t start = 0;
  while (true) {
    size_t comma = v.find(',', start);
    std::string_view el = v.substr(start, comma == std::string_view::npos ? v.npos : comma - start);
    fn(trim_ows(el));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
}

bool parse_content_length(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 19) return false;  // 19 digits always fit in uint64
  uint64_t n = 0;
  for (unsigned char c : v) {
    if (!is_digit(c)) return false;
    n = n * 10 + (c - '0');
  }
  // Beyond 2^63 - 1 a server reading the length as a signed 64-bit number sees a negative one,
  // or a clamped one: no body is that long, and the two ends would frame it apart.
  if (n > static_cast<uint64_t>(INT64_MAX)) return false;
  out = n;
  return true;
}

bool is_hex(unsigned char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// uri-host [":" port] (RFC 9110 7.2, RFC 3986 3.2.2): an IPv6 literal in brackets, or a name of
// letters, digits, '-', '_' and '.' without empty labels (one trailing dot aside); a port of
// digits only. "a.test:abc" or "a.test:1:2" would be routed as a.test while the instance reads
// something else. A name is at most 253 characters, a DNS name's most (one trailing dot aside):
// a longer one matched no route host, and went to an any-host route past a "*.a.test" route's
// access checks while the instance took it for a name under a.test.
constexpr size_t kMaxHostName = 253;

bool valid_host_value(std::string_view v) {
  std::string_view port;
  if (!v.empty() && v.front() == '[') {
    const size_t close = v.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (unsigned char c : v.substr(1, close - 1))
      if (!is_hex(c) && c != ':' && c != '.') return false;
    const std::string_view after = v.substr(close + 1);
    if (!after.empty() && after.front() != ':') return false;
    port = after.empty() ? after : after.substr(1);
  } else {
    const size_t colon = v.find(':');
    const std::string_view name = v.substr(0, colon);
    if (name.size() > kMaxHostName + (name.ends_with('.') ? 1 : 0)) return false;
    for (size_t i = 0; i < name.size(); ++i) {
      const auto c = static_cast<unsigned char>(name[i]);
      if (!is_host_name_char(c)) return false;
      if (c == '.' && (i == 0 || name[i - 1] == '.')) return false;  // ".a", "a..b"
    }
    if (colon != std::string_view::npos) port = v.substr(colon + 1);
  }
  if (port.size() > 5) return false;
  for (unsigned char c : port)
    if (!is_digit(c)) return false;
  return true;
}

// Splits the head into lines and fields. Shared by requests and responses. `start` is the
// offset of the first header line (after the start line).
Outcome parse_fields(std::string_view raw, size_t start, const Limits& limits, Head& out,
                     bool is_request) {
  size_t pos = start;
  const size_t end = raw.size();
  while (true) {
    if (pos >= end) return {HeadError::kBadRequest, "head ends without an empty line"};
    size_t nl = raw.find('\n', pos);
    if (nl == std::string_view::npos) return {HeadError::kBadRequest, "unterminated header line"};
    if (nl == pos || raw[nl - 1] != '\r') return {HeadError::kBadRequest, "bare LF"};
    std::string_view line = raw.substr(pos, nl - 1 - pos);
    pos = nl + 1;
    if (line.empty()) {
      if (pos != end) return {HeadError::kBadRequest, "bytes after the empty line"};
      return {};
    }
    if (line.find('\r') != std::string_view::npos) return {HeadError::kBadRequest, "bare CR"};
    if (line[0] == ' ' || line[0] == '\t') return {HeadError::kBadRequest, "obsolete line folding"};
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return {HeadError::kBadRequest, "header line without a name"};
    std::string_view name = line.substr(0, colon);
    for (unsigned char c : name) {
      if (c == ' ' || c == '\t') return {HeadError::kBadRequest, "whitespace before colon"};
      if (!is_token_char(c)) return {HeadError::kBadRequest, "invalid header name"};
    }
    std::string_view value_raw = line.substr(colon + 1);
    for (unsigned char c : value_raw)
      if (!is_value_char(c)) return {HeadError::kBadRequest, "invalid character in header value"};
    if (out.fields.size() >= limits.max_headers)
      return {is_request ? HeadError::kHeaderTooLarge : HeadError::kBadResponse, "too many headers"};
    std::string_view value = trim_ows(value_raw);
    Field f;
    f.name_off = static_cast<uint32_t>(name.data() - raw.data());
    f.name_len = static_cast<uint32_t>(name.size());
    f.value_off = static_cast<uint32_t>(value.data() - raw.data());
    f.value_len = static_cast<uint32_t>(value.size());
    out.fields.push_back(f);
    out.kinds.push_back(classify_field(name));
  }
}

// Works out framing and connection semantics from the classified fields.
Outcome apply_common_fields(Head& h, bool is_request) {
  const HeadError bad = is_request ? HeadError::kBadRequest : HeadError::kBadResponse;
  int content_length_count = 0;
  bool has_te = false;
  bool te_chunked_last = false;
  bool te_unknown = false;
  bool te_chunked_not_last = false;
  int te_elements = 0;
  for (size_t i = 0; i < h.fields.size(); ++i) {
    std::string_view v = h.value(h.fields[i]);
    switch (h.kinds[i]) {
      case FieldKind::kContentLength: {
        ++content_length_count;
        if (!parse_content_length(v, h.content_length))
          return {bad, "invalid Content-Length"};
        break;
      }
      case FieldKind::kTransferEncoding: {
        has_te = true;
        Outcome err;
        for_each_list_element(v, [&](std::string_view el) {
          if (el.empty()) { err = {bad, "empty transfer coding"}; return; }
          if (te_chunked_last) te_chunked_not_last = true;
          ++te_elements;
          if (iequals(el, "chunked")) te_chunked_last = true;
          else { te_chunked_last = false; te_unknown = true; }
        });
        if (!err.ok()) return err;
        break;
      }
      case FieldKind::kConnection: {
        for_each_list_element(v, [&](std::string_view el) {
          if (el.empty()) return;
          if (iequals(el, "close")) h.connection_close = true;
          else if (iequals(el, "keep-alive")) h.connection_keep_alive = true;
          else if (iequals(el, "upgrade")) h.connection_upgrade = true;
          else h.connection_tokens.push_back(el);
        });
        break;
      }
      default:
        break;
    }
  }
  if (content_length_count > 1) return {bad, "several Content-Length headers"};
  if (has_te) {
    if (content_length_count) return {bad, "both Content-Length and Transfer-Encoding"};
    if (h.version_minor == 0) return {bad, "Transfer-Encoding in an HTTP/1.0 message"};
    if (te_chunked_not_last) return {bad, "chunked is not the final transfer coding"};
    if (te_unknown)
      return {is_request ? HeadError::kNotImplemented : HeadError::kBadResponse,
              "unsupported transfer coding"};
    if (te_elements != 1) return {bad, "chunked applied more than once"};
    h.framing = Framing::kChunked;
  } else if (content_length_count) {
    h.framing = Framing::kContentLength;
  }
  return {};
}

// HTTP-version = "HTTP/" DIGIT "." DIGIT
Outcome parse_version(std::string_view v, uint8_t& minor, bool is_request) {
  const HeadError bad = is_request ? HeadError::kBadRequest : HeadError::kBadResponse;
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !is_digit(v[5]) || v[6] != '.' ||
      !is_digit(v[7]))
    return {bad, "invalid HTTP version"};
  if (v[5] != '1') return {is_request ? HeadError::kVersionNotSupported : HeadError::kBadResponse,
                           "unsupported HTTP version"};
  if (v[7] > '1') {
    // A later 1.x response is read as 1.1 (RFC 9110 2.5). Requests stay strict: Berth answers
    // 505 rather than guess at what a client meant.
    if (is_request) return {HeadError::kVersionNotSupported, "unsupported HTTP version"};
    minor = 1;
    return {};
  }
  minor = static_cast<uint8_t>(v[7] - '0');
  return {};
}

}  // namespace

bool is_token_char(unsigned char c) noexcept {
  static constexpr auto table = [] {
    struct T { bool v[256]{}; } t;
    for (int c = '0'; c <= '9'; ++c) t.v[c] = true;
    for (int c = 'a'; c <= 'z'; ++c) t.v[c] = true;
    for (int c = 'A'; c <= 'Z'; ++c) t.v[c] = true;
    for (char c : std::string_view("!#$%&'*+-.^_`|~")) t.v[static_cast<unsigned char>(c)] = true;
    return t;
  }();
  return table.v[c];
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (kLower[static_cast<unsigned char>(a[i])] != kLower[static_cast<unsigned char>(b[i])])
      return false;
  return true;
}

FieldKind classify_field(std::string_view n) noexcept {
  switch (n.size()) {
    case 2:
      if (iequals(n, "te")) return FieldKind::kTe;
      break;
    case 4:
      if (iequals(n, "host")) return FieldKind::kHost;
      break;
    case 6:
      if (iequals(n, "expect")) return FieldKind::kExpect;
      break;
    case 9:
      if (iequals(n, "forwarded")) return FieldKind::kForwarded;
      if (iequals(n, "x-real-ip")) return FieldKind::kXRealIp;
      break;
    case 7:
      if (iequals(n, "trailer")) return FieldKind::kTrailer;
      if (iequals(n, "upgrade")) return FieldKind::kUpgrade;
      break;
    case 10:
      if (iequals(n, "connection")) return FieldKind::kConnection;
      if (iequals(n, "keep-alive")) return FieldKind::kKeepAlive;
      break;
    case 12:
      if (iequals(n, "x-request-id")) return FieldKind::kXRequestId;
      break;
    case 13:
      if (iequals(n, "x-rewrite-url")) return FieldKind::kXOriginal;
      break;
    case 14:
      if (iequals(n, "content-length")) return FieldKind::kContentLength;
      if (iequals(n, "x-original-url") || iequals(n, "x-original-uri")) return FieldKind::kXOriginal;
      break;
    case 15:
      if (iequals(n, "x-forwarded-for")) return FieldKind::kXForwardedFor;
      break;
    case 16:
      if (iequals(n, "proxy-connection")) return FieldKind::kProxyConnection;
      if (iequals(n, "x-forwarded-host")) return FieldKind::kXForwardedHost;
      if (iequals(n, "x-forwarded-port")) return FieldKind::kXForwardedPort;
      break;
    case 17:
      if (iequals(n, "transfer-encoding")) return FieldKind::kTransferEncoding;
      if (iequals(n, "x-forwarded-proto")) return FieldKind::kXForwardedProto;
      if (iequals(n, "x-original-method")) return FieldKind::kXOriginal;
      break;
    default:
      break;
  }
  constexpr std::string_view kXForwarded = "x-forwarded-";
  if (n.size() > kXForwarded.size() && iequals(n.substr(0, kXForwarded.size()), kXForwarded))
    return FieldKind::kXForwardedOther;
  // "X_Forwarded_For", "x_real-ip", "Content_Length", ...: the names of the fields that say who
  // the client is, and of those that frame the message or the connection, in the spelling that
  // servers mapping '-' to '_' (CGI, WSGI) cannot tell from the real one. A Content_Length next
  // to the Content-Length Berth sends would frame the body anew there.
  const bool client_field_length = n.size() >= 9 && n.size() <= 64 && (n[0] == 'x' || n[0] == 'X');
  const bool framing_field_length = n.size() == 10 || n.size() == 14 || n.size() == 16 || n.size() == 17;
  if ((client_field_length || framing_field_length) && n.find('_') != std::string_view::npos) {
    char folded[64];
    for (size_t i = 0; i < n.size(); ++i) folded[i] = n[i] == '_' ? '-' : n[i];
    switch (classify_field(std::string_view(folded, n.size()))) {
      case FieldKind::kXForwardedFor:
      case FieldKind::kXForwardedProto:
      case FieldKind::kXForwardedHost:
      case FieldKind::kXForwardedPort:
      case FieldKind::kXRequestId:
      case FieldKind::kXRealIp:
      case FieldKind::kXForwardedOther:
      case FieldKind::kXOriginal:
      case FieldKind::kContentLength:
      case FieldKind::kTransferEncoding:
      case FieldKind::kKeepAlive:
      case FieldKind::kProxyConnection:
        return FieldKind::kUnderscoreAlias;
      default:
        break;
    }
  }
  return FieldKind::kOther;
}

bool Head::is_connection_listed(std::string_view name) const noexcept {
  for (std::string_view t : connection_tokens)
    if (iequals(t, name)) return true;
  return false;
}

void Head::clear() {
  raw = {};
  fields.clear();
  kinds.clear();
  version_minor = 1;
  framing = Framing::kNone;
  content_length = 0;
  connection_close = connection_keep_alive = connection_upgrade = false;
  connection_tokens.clear();
}

void RequestHead::clear() {
  Head::clear();
  method = target = path = host = upgrade_protocol = {};
  absolute_form = method_head = expect_continue = upgrade = false;
}

void ResponseHead::clear() {
  Head::clear();
  status = 0;
  reason = {};
}

bool RequestHead::keep_alive() const noexcept {
  if (connection_close) return false;
  return version_minor == 1 || connection_keep_alive;
}

size_t find_head_end(const char* data, size_t len, size_t from) noexcept {
  size_t i = from > 3 ? from - 3 : 0;
  while (i < len) {
    const void* p = std::memchr(data + i, '\n', len - i);
    if (!p) return 0;
    size_t nl = static_cast<const char*>(p) - data;
    if (nl >= 1 && data[nl - 1] == '\n') return nl + 1;                       // "\n\n"
    if (nl >= 2 && data[nl - 1] == '\r' && data[nl - 2] == '\n') return nl + 1;  // "\n\r\n"
    i = nl + 1;
  }
  return 0;
}

size_t first_line_length(const char* data, size_t len) noexcept {
  const void* p = std::memchr(data, '\n', len);
  return p ? static_cast<const char*>(p) - data + 1 : 0;
}

Outcome parse_request_head(std::string_view raw, const Limits& limits, RequestHead& out) {
  out.clear();
  out.raw = raw;
  if (raw.size() > limits.max_header_bytes) return {HeadError::kHeaderTooLarge, "header block too large"};
  size_t line_end = raw.find('\n');
  if (line_end == std::string_view::npos) return {HeadError::kBadRequest, "no request line"};
  if (line_end + 1 > limits.max_request_line) return {HeadError::kUriTooLong, "request line too long"};
  if (line_end == 0 || raw[line_end - 1] != '\r') return {HeadError::kBadRequest, "bare LF"};
  std::string_view line = raw.substr(0, line_end - 1);

  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return {HeadError::kBadRequest, "invalid request line"};
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return {HeadError::kBadRequest, "request line without a version"};
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  for (unsigned char c : out.method) {
    if (!is_token_char(c)) return {HeadError::kBadRequest, "invalid method"};
    // Methods are case-sensitive, and every registered one is upper-case. Frameworks that
    // upper-case what they get would run "delete" as DELETE after method matchers passed it over,
    // and one that answers "head" as HEAD (no body) would leave the response's framing unread.
    if (c >= 'a' && c <= 'z') return {HeadError::kBadRequest, "method with lower-case letters"};
  }
  if (out.target.empty()) return {HeadError::kBadRequest, "empty request target"};
  for (unsigned char c : out.target) {
    if (!is_target_char(c)) return {HeadError::kBadRequest, "invalid character in request target"};
    // A fragment is never sent (RFC 9112 3.2); servers that cut the path at '#' would read
    // "/admin#.png" as /admin while routes saw a path ending in .png.
    if (c == '#') return {HeadError::kBadRequest, "fragment in request target"};
  }
  Outcome v = parse_version(version, out.version_minor, true);
  if (!v.ok()) return v;
  out.method_head = out.method == "HEAD";
  if (out.method == "CONNECT") return {HeadError::kNotImplemented, "CONNECT is not supported"};

  // Request target forms (RFC 9112 3.2).
  if (out.target[0] == '/') {
    out.path = out.target;
  } else if (out.target == "*") {
    if (out.method != "OPTIONS") return {HeadError::kBadRequest, "asterisk-form outside OPTIONS"};
    out.path = out.target;
  } else {
    std::string_view t = out.target;
    size_t scheme_end = t.find("://");
    if (scheme_end == std::string_view::npos) return {HeadError::kBadRequest, "invalid request target"};
    std::string_view scheme = t.substr(0, scheme_end);
    if (!iequals(scheme, "http") && !iequals(scheme, "https"))
      return {HeadError::kBadRequest, "unsupported scheme in request target"};
    std::string_view rest = t.substr(scheme_end + 3);
    size_t path_start = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, path_start);
    if (authority.empty() || authority.find('@') != std::string_view::npos ||
        !valid_host_value(authority))
      return {HeadError::kBadRequest, "invalid authority in request target"};
    out.absolute_form = true;
    out.host = authority;
    if (path_start == std::string_view::npos) out.path = "/";
    else if (rest[path_start] == '?') return {HeadError::kBadRequest, "query without a path"};
    else out.path = rest.substr(path_start);
  }
  if (limits.sanitize_path && out.path[0] == '/') {
    const char* why = "";
    switch (sanitize_path(out.path, out.sanitized_path, &why)) {
      case PathSanitize::kInvalid:
        return {HeadError::kBadRequest, why};
      case PathSanitize::kChanged:
        out.path = out.sanitized_path;
        break;
      case PathSanitize::kUnchanged:
        break;
    }
  }

  Outcome f = parse_fields(raw, line_end + 1, limits, out, true);
  if (!f.ok()) return f;
  Outcome c = apply_common_fields(out, true);
  if (!c.ok()) return c;

  int host_count = 0;
  std::string_view upgrade_value;
  for (size_t i = 0; i < out.fields.size(); ++i) {
    std::string_view v = out.value(out.fields[i]);
    switch (out.kinds[i]) {
      case FieldKind::kHost:
        ++host_count;
        if (!valid_host_value(v)) return {HeadError::kBadRequest, "invalid Host"};
        if (!out.absolute_form) out.host = v;
        break;
      case FieldKind::kExpect:
        if (iequals(v, "100-continue")) out.expect_continue = true;
        break;
      case FieldKind::kUpgrade:
        upgrade_value = v;
        break;
      default:
        break;
    }
  }
  if (host_count > 1) return {HeadError::kBadRequest, "several Host headers"};
  if (host_count == 0 && out.version_minor == 1) return {HeadError::kBadRequest, "missing Host"};
  // An HTTP/1.0 request's Upgrade is ignored (RFC 9110 7.8): such a client cannot be sent a 101.
  if (out.version_minor >= 1 && out.connection_upgrade && !upgrade_value.empty() && !offers_h2c(upgrade_value)) {
    out.upgrade = true;
    out.upgrade_protocol = upgrade_value;
  }
  return {};
}

bool offers_h2c(std::string_view upgrade) noexcept {
  // h2c is the one upgrade an HTTP/1.1 proxy must not pass on blindly (RFC 9113 3.1: an h2c
  // tunnel would carry requests past every route, filter and check); Berth does not speak it. A
  // list naming it anywhere ("websocket, h2c", ",h2c", "H2C/1") is no upgrade: the request goes
  // on as a plain one, and a 101 for it is refused as one nobody asked for.
  while (!upgrade.empty()) {
    const size_t comma = upgrade.find(',');
    const std::string_view element = trim_ows(upgrade.substr(0, comma));
    if (iequals(element.substr(0, 3), "h2c")) return true;  // and its drafts' tokens (h2c-14)
    upgrade = comma == std::string_view::npos ? std::string_view() : upgrade.substr(comma + 1);
  }
  return false;
}

bool valid_host(std::string_view v) noexcept { return valid_host_value(v); }

bool upgrade_offered(std::string_view offered, std::string_view chosen) noexcept {
  // Each element of a comma-separated list, trimmed; empty elements are skipped.
  const auto for_each = [](std::string_view list, auto&& fn) {
    while (!list.empty()) {
      const size_t comma = list.find(',');
      const std::string_view element = trim_ows(list.substr(0, comma));
      if (!element.empty() && !fn(element)) return false;
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
    return true;
  };
  bool any = false;
  return for_each(chosen,
                  [&](std::string_view protocol) {
                    any = true;
                    return !for_each(offered, [&](std::string_view o) { return !iequals(o, protocol); });
                  }) &&
         any;
}

Outcome parse_response_head(std::string_view raw, const Limits& limits, bool request_method_head,
                            ResponseHead& out) {
  out.clear();
  out.raw = raw;
  if (raw.size() > limits.max_header_bytes) return {HeadError::kBadResponse, "response header block too large"};
  size_t line_end = raw.find('\n');
  if (line_end == std::string_view::npos || line_end == 0 || raw[line_end - 1] != '\r')
    return {HeadError::kBadResponse, "invalid status line"};
  std::string_view line = raw.substr(0, line_end - 1);
  // status-line = HTTP-version SP status-code SP [ reason-phrase ]
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' '))
    return {HeadError::kBadResponse, "invalid status line"};
  Outcome v = parse_version(line.substr(0, 8), out.version_minor, false);
  if (!v.ok()) return v;
  std::string_view code = line.substr(9, 3);
  if (!is_digit(code[0]) || !is_digit(code[1]) || !is_digit(code[2]) || code[0] < '1' || code[0] > '5')
    return {HeadError::kBadResponse, "invalid status code"};
  out.status = static_cast<uint16_t>((code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0'));
  out.reason = line.size() > 13 ? line.substr(13) : std::string_view{};
  for (unsigned char c : out.reason)
    if (!is_value_char(c)) return {HeadError::kBadResponse, "invalid reason phrase"};

  Outcome f = parse_fields(raw, line_end + 1, limits, out, false);
  if (!f.ok()) return {HeadError::kBadResponse, f.detail};
  Outcome c = apply_common_fields(out, false);
  if (!c.ok()) return c;
  if (out.version_minor == 0 && !out.connection_keep_alive) out.connection_close = true;

  const bool no_body = request_method_head || out.status < 200 || out.status == 204 || out.status == 304;
  if (no_body) {
    // A Content-Length on HEAD/304 describes the representation; nothing follows the head.
    if (out.framing == Framing::kChunked && out.status != 304 && !request_method_head)
      return {HeadError::kBadResponse, "Transfer-Encoding on a response that has no body"};
    out.framing = Framing::kNone;
  } else if (out.framing == Framing::kNone) {
    out.framing = Framing::kUntilClose;
  }
  return {};
}

}  // namespace berth::http
