// What a request looks like when it leaves Berth for a backend, and what a response looks like
// when it leaves Berth for the client: hop-by-hop headers removed, framing re-declared,
// X-Forwarded-* and X-Request-Id set. Pure functions, testable without sockets.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/http_head.h"

namespace berth::http {

struct Header {
  std::string name;
  std::string value;
};

// A route's own header rules (routes[].headers), prepared once for every request of the route:
// the names each side removes, with a mask of their lengths (bit length % 64) so that most
// fields are passed over without a comparison, and each side's added fields already written
// out as "Name: value\r\n" lines, appended whole.
struct FixedHeaderRules {
  FixedHeaderRules(std::vector<std::string> remove_request, const std::vector<Header>& add_request,
                   std::vector<std::string> remove_response, const std::vector<Header>& add_response);
  std::vector<std::string> remove_request;
  std::vector<std::string> remove_response;
  uint64_t remove_request_lengths = 0;
  uint64_t remove_response_lengths = 0;
  std::string add_request;   // lines
  std::string add_response;  // lines
};

// Header changes asked for by a route's filters, applied when the heads are built. Names are
// compared without case. The config refuses edits of the fields that carry framing or
// connection state, and of those Berth sets itself (config::header_name_problem).
struct HeaderEdits {
  std::vector<std::string> remove_request;  // removed from the upstream request
  std::vector<Header> add_request;          // appended to the upstream request
  std::vector<std::string> remove_response; // removed from a proxied response
  std::vector<Header> add_response;         // appended to a proxied response
  // The request target (path and query, origin-form) sent upstream instead of the client's, from
  // a route's path rewriting ("" = the client's). Checked by the filter that sets it: a path of
  // visible ASCII starting with '/'.
  std::string target;
  // A route's own header rules (routes[].headers), the same for every request: pointed to, not
  // copied per request (they belong to the route's filter chain, which outlives the exchange).
  // Their fields go after the first fixed_after_request / fixed_after_response entries of
  // add_request / add_response: where the rules' filter stands in the chain.
  const FixedHeaderRules* fixed = nullptr;
  uint32_t fixed_after_request = 0;
  uint32_t fixed_after_response = 0;
  bool empty() const noexcept {
    return !fixed && remove_request.empty() && add_request.empty() && remove_response.empty() &&
           add_response.empty() && target.empty();
  }
  void clear() noexcept;
};

struct ForwardInfo {
  std::string_view client_ip;      // peer address of the client connection (the hop appended)
  std::string_view proto = "http"; // scheme the client used to reach Berth
  uint16_t listener_port = 0;      // port the client connected to
  std::string_view request_id;     // used only when the request carries no X-Request-Id
  const HeaderEdits* edits = nullptr;  // the route's filters' edits (null: none)
  // own_chain: send `chain` (the entries before the peer that trusted proxies vouched for, may
  // be empty) instead of the X-Forwarded-For lines the request carried.
  bool own_chain = false;
  std::string_view chain;
  // The client's peer is in trusted_proxies: the Forwarded, X-Real-IP and other X-Forwarded-*
  // fields it sent pass on. From any other peer they are the client's claims and are dropped.
  bool peer_trusted = false;
};

// The request id the backend will see: the client's usable X-Request-Id, else `generated` (with
// an empty `generated`: empty when the client sent none, so one needs generating).
std::string_view effective_request_id(const RequestHead& req, std::string_view generated);

// Appends the upstream request head (request line, headers, empty line) to out.
// Framing: Content-Length kept for a sized body, chunked for a chunked one (Berth re-frames the
// chunks it decoded). For an upgrade request, Connection: upgrade and Upgrade are kept.
void build_upstream_request(const RequestHead& req, const ForwardInfo& info, std::string& out);

// How the response body travels to the client.
struct ResponsePlan {
  Framing to_client = Framing::kNone;  // kContentLength, kChunked, kUntilClose or kNone
  bool close_client = false;           // close the client connection after this response
  // An HTTP/1.0 client keeps the connection only when the response says `Connection:
  // keep-alive` (unless close_client is set after all).
  bool announce_keep_alive = false;
  // The route's hsts is added to this response: the instance's own Strict-Transport-Security
  // is left out (a browser heeds only the first such field, RFC 6797 section 8.1).
  bool replace_sts = false;
};

// client_minor: the request's HTTP minor version; client_wants_close: request said close or
// Berth is draining. is_upgrade_101: the 101 of an accepted upgrade.
ResponsePlan plan_response(const ResponseHead& resp, uint8_t client_minor, bool client_wants_close);

// Appends the client-facing response head to out.
void build_client_response(const ResponseHead& resp, const ResponsePlan& plan, bool is_upgrade_101,
                           std::string& out, const HeaderEdits* edits = nullptr);

// A complete short response generated by Berth itself (errors, admin).
// cause goes in x-berth-error (empty = no such header); extra_headers are "Name: value\r\n" lines.
// head_request: the answer to a HEAD: the same head (Content-Length of the body a GET gets), no
// body, so that a pipelined client reads the next response where it expects it.
void build_local_reply(uint16_t status, std::string_view cause, bool close,
                       std::string_view extra_headers, std::string& out, bool head_request = false);
// Same with a caller-supplied body and content type (admin endpoints).
void build_local_response(uint16_t status, std::string_view content_type, std::string_view body,
                          bool close, std::string_view extra_headers, std::string& out, bool head_request = false);

const char* reason_phrase(uint16_t status);

}  // namespace berth::http
