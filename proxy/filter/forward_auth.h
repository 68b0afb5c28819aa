// Forward authentication (routes[].access.forward_auth): before a request goes to an instance,
// Berth asks an authentication service about it. The service gets a GET for the configured
// URL carrying the client's request headers and X-Forwarded-Method, -Proto, -Host, -Uri and
// -For set by Berth (the client's own X-Forwarded-* are dropped: a decision must not rest on
// them). A 2xx answer lets the request pass; the headers named in copy_headers are taken from
// that answer into the request (and removed from the request when the answer lacks them, so a
// client cannot supply its own X-User). Any other answer goes back to the client as it came:
// status, headers and body (401 with its challenge, 302 to a login page). No answer within the
// timeout, a refused connection or a malformed answer: 503 forward-auth-unavailable.
//
// The call runs on the worker's loop (libuv TCP, the strict response parser of berth_http);
// the filter goes pending until it ends. One connection per check, closed after the answer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/filter/filter.h"
#include "proxy/http/message_parser.h"

namespace berth {

// Each check Berth sends carries X-Berth-Auth-Hops: one more than the request it checks (the
// client's own value is replaced). A check that comes back to a forward_auth route (its URL
// points at Berth, directly or through another proxy) is a request with hops: at kMaxAuthHops
// the route answers 508 instead of checking again, so that a loop ends. Each level relays that
// answer with the cause forward-auth-loop.
inline constexpr std::string_view kAuthHopsField = "X-Berth-Auth-Hops";
inline constexpr unsigned kMaxAuthHops = 3;
// The request's X-Berth-Auth-Hops (0 when absent or not a number; at most 1000).
unsigned auth_hops(const http::RequestHead& head);

// The request sent to the authentication service for `head` (pure; for tests and the filter).
void build_forward_auth_request(const config::ForwardAuth& config, const http::RequestHead& head,
                                std::string_view client_ip, std::string_view scheme, std::string& out);

// Reads the service's answer: head (strictly validated) and a body of at most kMaxBody bytes.
class ForwardAuthAnswer final : private BodySink {
 public:
  static constexpr size_t kMaxHead = 16 * 1024;
  static constexpr size_t kMaxBody = 64 * 1024;
  enum class State : uint8_t { kMore, kDone, kError };

  State feed(const char* data, size_t len);
  // The connection ended.
  State finish();
  const char* error() const { return error_; }

  uint16_t status = 0;
  std::vector<Header> headers;  // end-to-end fields, as received (framing and hop-by-hop dropped)
  std::string content_type;     // its Content-Type ("" when none)
  std::string body;             // the first kMaxBody bytes
  // The answer is a 508 that another Berth's forward_auth route gave at the hop limit
  // (x-berth-error: forward-auth-loop): the reply that relays it keeps that cause, so the
  // client and the outer Berth's record say loop, not denied.
  bool loop = false;

 private:
  void on_body_data(const char* data, size_t len) override;
  State fail(const char* why);

  std::string head_bytes_;
  bool head_done_ = false;
  MessageParser body_parser_;
  const char* error_ = "";
};

class ForwardAuthFilter final : public RequestFilter {
 public:
  explicit ForwardAuthFilter(const config::ForwardAuth& config);
  std::string_view name() const override { return "access.forward_auth"; }
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;

 private:
  std::shared_ptr<const config::ForwardAuth> config_;  // shared with checks in flight
};

}  // namespace berth
