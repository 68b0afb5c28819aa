#include "proxy/http/http_rewrite.h"

#include <algorithm>
#include <charconv>

#include "proxy/base/ascii.h"

namespace berth::http {
namespace {

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ");
  out.append(value);
  out.append("\r\n");
}

// Hop-by-hop fields (RFC 9110 7.6.1) plus the framing fields Berth re-declares itself.
bool is_hop_by_hop(FieldKind k) {
  switch (k) {
    case FieldKind::kConnection:
    case FieldKind::kKeepAlive:
    case FieldKind::kTe:
    case FieldKind::kTrailer:
    case FieldKind::kProxyConnection:
    case FieldKind::kUpgrade:
    case FieldKind::kTransferEncoding:
    case FieldKind::kContentLength:
      return true;
    default:
      return false;
  }
}

bool valid_request_id(std::string_view v) {
  if (v.empty() || v.size() > 200) return false;
  for (unsigned char c : v)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

}  // namespace

namespace {
// The client's X-Request-Id that is sent on: the first valid one, unless Connection lists the
// field (then the instance would not get it, and the id logged would be one it never saw).
const Field* client_request_id(const RequestHead& req) {
  for (size_t i = 0; i < req.fields.size(); ++i)
    if (req.kinds[i] == FieldKind::kXRequestId && valid_request_id(req.value(req.fields[i])))
      return req.connection_tokens.empty() || !req.is_connection_listed(req.name(req.fields[i])) ? &req.fields[i]
                                                                                                : nullptr;
  return nullptr;
}
}  // namespace

std::string_view effective_request_id(const RequestHead& req, std::string_view generated) {
  const Field* id = client_request_id(req);
  return id ? req.value(*id) : generated;
}

namespace {
uint64_t length_mask(const std::vector<std::string>& names) {
  uint64_t mask = 0;
  for (const std::string& n : names) mask |= uint64_t{1} << (n.size() % 64);
  return mask;
}

std::string lines_of(const std::vector<Header>& fields) {
  std::string out;
  for (const Header& h : fields) append_field(out, h.name, h.value);
  return out;
}
}  // namespace

FixedHeaderRules::FixedHeaderRules(std::vector<std::string> remove_req, const std::vector<Header>& add_req,
                                   std::vector<std::string> remove_resp, const std::vector<Header>& add_resp)
    : remove_request(std::move(remove_req)),
      remove_response(std::move(remove_resp)),
      remove_request_lengths(length_mask(remove_request)),
      remove_response_lengths(length_mask(remove_response)),
      add_request(lines_of(add_req)),
      add_response(lines_of(add_resp)) {}

void HeaderEdits::clear() noexcept {
  remove_request.clear();
  add_request.clear();
  remove_response.clear();
  add_response.clear();
  target.clear();
  fixed = nullptr;
  fixed_after_request = fixed_after_response = 0;
}

namespace {
// Whether a field named `name` is the one a rule names: case aside, and '_' taken as '-'.
// Servers that map field names to variables (CGI, WSGI: HTTP_X_USER) read X_User as X-User, so
// a removal that missed the underscore spelling would let a client slip in the field it removes
// (forward auth's copy_headers, headers.request.remove).
bool same_field(std::string_view rule, std::string_view name) {
  if (rule.size() != name.size()) return false;
  for (size_t i = 0; i < rule.size(); ++i) {
    const char a = rule[i] == '_' ? '-' : rule[i], b = name[i] == '_' ? '-' : name[i];
    if (ascii_lower(a) != ascii_lower(b))
      return false;
  }
  return true;
}

bool listed(const std::vector<std::string>& names, std::string_view name) {
  for (const std::string& n : names)
    if (same_field(n, name)) return true;
  return false;
}

// One side of the edits: their own lists, and the route's fixed rules for that side.
struct Side {
  std::vector<std::string> HeaderEdits::*remove;
  std::vector<Header> HeaderEdits::*add;
  std::vector<std::string> FixedHeaderRules::*fixed_remove;
  uint64_t FixedHeaderRules::*fixed_lengths;
  std::string FixedHeaderRules::*fixed_lines;
  uint32_t HeaderEdits::*fixed_at;
};
constexpr Side kRequestSide{&HeaderEdits::remove_request, &HeaderEdits::add_request, &FixedHeaderRules::remove_request,
                            &FixedHeaderRules::remove_request_lengths, &FixedHeaderRules::add_request,
                            &HeaderEdits::fixed_after_request};
constexpr Side kResponseSide{&HeaderEdits::remove_response, &HeaderEdits::add_response,
                             &FixedHeaderRules::remove_response, &FixedHeaderRules::remove_response_lengths,
                             &FixedHeaderRules::add_response, &HeaderEdits::fixed_after_response};

// Is `name` removed by the edits (their own list, or the route's fixed rules)?
bool removed(const HeaderEdits& edits, const Side& side, std::string_view name) {
  if (listed(edits.*side.remove, name)) return true;
  const FixedHeaderRules* fixed = edits.fixed;
  return fixed && ((fixed->*side.fixed_lengths >> (name.size() % 64)) & 1) && listed(fixed->*side.fixed_remove, name);
}

// The edits' added fields, the fixed rules' ones in their place.
void append_added(std::string& out, const HeaderEdits& edits, const Side& side) {
  const std::vector<Header>& own = edits.*side.add;
  const size_t fixed_at = std::min<size_t>(edits.*side.fixed_at, own.size());
  for (size_t i = 0; i < fixed_at; ++i) append_field(out, own[i].name, own[i].value);
  if (edits.fixed) out.append(edits.fixed->*side.fixed_lines);
  for (size_t i = fixed_at; i < own.size(); ++i) append_field(out, own[i].name, own[i].value);
}
}  // namespace

void build_upstream_request(const RequestHead& req, const ForwardInfo& info, std::string& out) {
  out.append(req.method);
  out.push_back(' ');
  out.append(info.edits && !info.edits->target.empty() ? std::string_view(info.edits->target) : req.path);
  out.append(" HTTP/1.1\r\n");

  std::string_view prior_xff;
  size_t xff_count = 0;
  std::string xff_joined;  // only used when a client sent several X-Forwarded-For lines
  bool host_written = false;
  bool request_id_written = false;
  for (size_t i = 0; i < req.fields.size(); ++i) {
    const Field& f = req.fields[i];
    const FieldKind kind = req.kinds[i];
    std::string_view name = req.name(f);
    std::string_view value = req.value(f);
    if (is_hop_by_hop(kind)) continue;
    if (!req.connection_tokens.empty() && req.is_connection_listed(name)) continue;
    if (info.edits && removed(*info.edits, kRequestSide, name)) continue;
    switch (kind) {
      case FieldKind::kHost:
        // absolute-form: the target's authority replaces Host (RFC 9112 3.2.2).
        append_field(out, name, req.absolute_form ? req.host : value);
        host_written = true;
        continue;
      case FieldKind::kXForwardedFor:
        if (xff_count++ == 0) {
          prior_xff = value;
        } else {
          if (xff_joined.empty()) xff_joined.append(prior_xff);
          xff_joined.append(", ");
          xff_joined.append(value);
        }
        continue;
      case FieldKind::kXForwardedProto:
      case FieldKind::kXForwardedHost:
      case FieldKind::kXForwardedPort:
      case FieldKind::kUnderscoreAlias:
        continue;  // set by Berth below; a client cannot claim them (nor in another spelling)
      case FieldKind::kXRequestId:
        if (request_id_written || !valid_request_id(value)) continue;
        request_id_written = true;
        break;
      case FieldKind::kForwarded:
      case FieldKind::kXRealIp:
      case FieldKind::kXForwardedOther:
      case FieldKind::kXOriginal:
        if (!info.peer_trusted) continue;  // X-Forwarded-User: admin, from anyone: dropped
        break;
      default:
        break;
    }
    append_field(out, name, value);
  }
  // The request goes out as HTTP/1.1, which requires Host: an HTTP/1.0 request may have come
  // without one, and then it is sent empty (RFC 9112 section 3.2: no authority, empty Host).
  if (!host_written) append_field(out, "Host", req.host);

  out.append("X-Forwarded-For: ");
  if (info.own_chain) {
    if (!info.chain.empty()) out.append(info.chain).append(", ");
  } else if (xff_count > 1) {
    out.append(xff_joined);
    out.append(", ");
  } else if (xff_count == 1 && !prior_xff.empty()) {
    out.append(prior_xff);
    out.append(", ");
  }
  out.append(info.client_ip);
  out.append("\r\n");
  append_field(out, "X-Forwarded-Proto", info.proto);
  if (!req.host.empty()) append_field(out, "X-Forwarded-Host", req.host);
  out.append("X-Forwarded-Port: ");
  append_uint(out, info.listener_port);
  out.append("\r\n");
  if (!request_id_written && !info.request_id.empty()) append_field(out, "X-Request-Id", info.request_id);
  if (info.edits) append_added(out, *info.edits, kRequestSide);

  switch (req.framing) {
    case Framing::kContentLength:
      out.append("Content-Length: ");
      append_uint(out, req.content_length);
      out.append("\r\n");
      break;
    case Framing::kChunked:
      out.append("Transfer-Encoding: chunked\r\n");
      break;
    default:
      break;
  }
  if (req.upgrade) {
    out.append("Connection: upgrade\r\n");
    append_field(out, "Upgrade", req.upgrade_protocol);
  }
  out.append("\r\n");
}

ResponsePlan plan_response(const ResponseHead& resp, uint8_t client_minor, bool client_wants_close) {
  ResponsePlan plan;
  plan.close_client = client_wants_close;
  switch (resp.framing) {
    case Framing::kNone:
      plan.to_client = Framing::kNone;
      break;
    case Framing::kContentLength:
      plan.to_client = Framing::kContentLength;
      break;
    case Framing::kChunked:
    case Framing::kUntilClose:
      if (client_minor >= 1) {
        plan.to_client = Framing::kChunked;
      } else {
        plan.to_client = Framing::kUntilClose;
        plan.close_client = true;
      }
      break;
  }
  plan.announce_keep_alive = client_minor == 0 && !plan.close_client;
  return plan;
}

void build_client_response(const ResponseHead& resp, const ResponsePlan& plan, bool is_upgrade_101,
                           std::string& out, const HeaderEdits* edits) {
  out.append("HTTP/1.1 ");
  append_uint(out, resp.status);
  out.push_back(' ');
  out.append(resp.reason.empty() ? std::string_view(reason_phrase(resp.status)) : resp.reason);
  out.append("\r\n");
  // A HEAD or 304 response's Content-Length describes the representation: pass it through.
  const bool keep_length = resp.framing == Framing::kNone && resp.status != 204 && resp.status >= 200;
  for (size_t i = 0; i < resp.fields.size(); ++i) {
    const Field& f = resp.fields[i];
    const FieldKind kind = resp.kinds[i];
    std::string_view name = resp.name(f);
    if (kind == FieldKind::kContentLength && keep_length) {
      append_field(out, name, resp.value(f));
      continue;
    }
    if (kind == FieldKind::kUpgrade && is_upgrade_101) {
      append_field(out, name, resp.value(f));
      continue;
    }
    if (is_hop_by_hop(kind)) continue;
    if (!resp.connection_tokens.empty() && resp.is_connection_listed(name)) continue;
    if (edits && removed(*edits, kResponseSide, name)) continue;
    if (plan.replace_sts && iequals(name, "strict-transport-security")) continue;
    append_field(out, name, resp.value(f));
  }
  if (edits) append_added(out, *edits, kResponseSide);
  if (is_upgrade_101) {
    out.append("Connection: upgrade\r\n\r\n");
    return;
  }
  if (plan.to_client == Framing::kContentLength) {
    out.append("Content-Length: ");
    append_uint(out, resp.content_length);
    out.append("\r\n");
  } else if (plan.to_client == Framing::kChunked) {
    out.append("Transfer-Encoding: chunked\r\n");
  }
  if (resp.status >= 200) {
    if (plan.close_client) out.append("Connection: close\r\n");
    else if (plan.announce_keep_alive) out.append("Connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void build_local_response(uint16_t status, std::string_view content_type, std::string_view body,
                          bool close, std::string_view extra_headers, std::string& out, bool head_request) {
  out.append("HTTP/1.1 ");
  append_uint(out, status);
  out.push_back(' ');
  out.append(reason_phrase(status));
  out.append("\r\n");
  // 204 and 304 have no body: no length, no type (a 304's Content-Length would describe a
  // representation; a relayed 304 from an auth service describes none).
  const bool bodiless = status == 204 || status == 304;
  if (!bodiless) {
    out.append("Content-Type: ");
    out.append(content_type);
    out.append("\r\nContent-Length: ");
    append_uint(out, body.size());
    out.append("\r\n");
  }
  out.append(extra_headers);
  if (close) out.append("Connection: close\r\n");
  out.append("\r\n");
  if (!head_request && !bodiless) out.append(body);
}

void build_local_reply(uint16_t status, std::string_view cause, bool close,
                       std::string_view extra_headers, std::string& out, bool head_request) {
  std::string headers;
  if (!cause.empty()) {
    headers.append("x-berth-error: ");
    headers.append(cause);
    headers.append("\r\n");
  }
  headers.append(extra_headers);
  std::string body;
  append_uint(body, status);
  body.push_back(' ');
  body.append(reason_phrase(status));
  if (!cause.empty()) {
    body.append(" (");
    body.append(cause);
    body.push_back(')');
  }
  body.push_back('\n');
  build_local_response(status, "text/plain; charset=utf-8", body, close, headers, out, head_request);
}

const char* reason_phrase(uint16_t status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 511: return "Network Authentication Required";
    default: return "Unknown";
  }
}

}  // namespace berth::http
