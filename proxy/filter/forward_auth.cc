#include "proxy/filter/forward_auth.h"

#include <uv.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>

#include "proxy/base/ascii.h"
#include "proxy/base/log.h"
#include "proxy/http/http_head.h"

namespace berth {
namespace {

using http::FieldKind;

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

// Forwarded, X-Real-IP, the X-Forwarded-* Berth does not set itself and the X-Original-* names:
// what a proxy says about the client and its request. An auth service may answer them
// (X-Forwarded-User) for copy_headers.
bool forwarding_claim(FieldKind kind) {
  return kind == FieldKind::kForwarded || kind == FieldKind::kXRealIp || kind == FieldKind::kXForwardedOther ||
         kind == FieldKind::kXOriginal;
}

// Whether a field belongs to one message only: framing, hop-by-hop and the fields Berth sets
// itself, plus `extra` (not case-sensitive) and those the message's Connection lists.
bool message_own(const http::Head& head, const http::Field& f, FieldKind kind,
                 std::initializer_list<std::string_view> extra) {
  if (kind != FieldKind::kOther && kind != FieldKind::kXRequestId && !forwarding_claim(kind)) return true;
  const std::string_view name = head.name(f);
  for (std::string_view e : extra)
    if (http::iequals(name, e)) return true;
  return head.is_connection_listed(name);
}

// Whether a field name is `lower` (lower case, with '-'), case aside and with `_` counted as
// `-`, as servers that map names to variables read them.
bool same_name(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (size_t i = 0; i < lower.size(); ++i)
    if (ascii_lower(name[i] == '_' ? '-' : name[i]) != lower[i]) return false;
  return true;
}

// Berth's own hop count (the X-Original-* names are a kind of their own, kXOriginal). `_`
// counts as `-`, as for the X-Forwarded-* kinds.
bool hops_claim(std::string_view name) { return same_name(name, "x-berth-auth-hops"); }

// The service must not get the client's framing and hop-by-hop fields (this is a new message),
// its Host (the service's own), or any field a proxy sets to say who the client is and what it
// asked: every X-Forwarded-* (Berth sets its own), Forwarded, X-Real-IP and the X-Original-*
// names. A service may read any of them (X-Forwarded-Prefix, X-Forwarded-User, X-Original-URL,
// ...), so a client must not be able to send them.
bool dropped_from_request(const http::RequestHead& head, const http::Field& f, FieldKind kind) {
  return forwarding_claim(kind) || message_own(head, f, kind, {}) ||
         (kind == FieldKind::kOther && hops_claim(head.name(f)));
}

// The service's answer: its own message's fields, and what Berth's reply sets itself.
bool dropped_from_answer(const http::ResponseHead& head, const http::Field& f, FieldKind kind) {
  return message_own(head, f, kind, {"x-berth-error", "content-type"});
}

// One check: a connection to the service, its request, its answer, and a deadline. Owned by
// itself: deleted once both of its handles have closed. A request that goes away first ends it
// (abort): its connection is not kept open for an answer nobody waits for.
class AuthCall final : public FilterAbort {
 public:
  AuthCall(uv_loop_t* loop, std::shared_ptr<const config::ForwardAuth> config, const FilterWaiter& waiter,
           std::string request)
      : config_(std::move(config)), waiter_(waiter), request_(std::move(request)) {
    waiter_.on_abort(this);
    uv_tcp_init(loop, &tcp_);
    uv_timer_init(loop, &timer_);
    tcp_.data = this;
    timer_.data = this;
    connect_.data = this;
    write_.data = this;
  }

  void start() {
    uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<AuthCall*>(t->data)->end(false, "timeout"); },
                   static_cast<uint64_t>(config_->timeout.count()), 0);
    sockaddr_storage ss{};
    const config::SocketAddress& a = config_->address;
    int rc;
    if (a.ipv6) {
      rc = uv_ip6_addr(a.host.c_str(), a.port, reinterpret_cast<sockaddr_in6*>(&ss));
    } else {
      rc = uv_ip4_addr(a.host.c_str(), a.port, reinterpret_cast<sockaddr_in*>(&ss));
    }
    if (rc == 0) rc = uv_tcp_connect(&connect_, &tcp_, reinterpret_cast<sockaddr*>(&ss), on_connect);
    if (rc != 0) {
      // Answer later, from the loop: done() must not run inside the filter's own call.
      connect_error_ = rc;
      uv_timer_start(&timer_, [](uv_timer_t* t) { static_cast<AuthCall*>(t->data)->end(false, "connect"); }, 0, 0);
    }
  }

  void abort() noexcept override { end(false, "abandoned"); }

 private:
  static void on_connect(uv_connect_t* req, int status) {
    auto* self = static_cast<AuthCall*>(req->data);
    if (self->ended_) return;
    if (status < 0) {
      self->connect_error_ = status;
      self->end(false, "connect");
      return;
    }
    uv_buf_t buf = uv_buf_init(self->request_.data(), static_cast<unsigned>(self->request_.size()));
    if (uv_write(&self->write_, reinterpret_cast<uv_stream_t*>(&self->tcp_), &buf, 1, on_write) != 0 ||
        uv_read_start(reinterpret_cast<uv_stream_t*>(&self->tcp_), on_alloc, on_read) != 0)
      self->end(false, "write");
  }

  static void on_write(uv_write_t* req, int status) {
    auto* self = static_cast<AuthCall*>(req->data);
    if (status < 0 && status != UV_ECANCELED && !self->ended_) self->end(false, "write");
  }

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
    auto* self = static_cast<AuthCall*>(h->data);
    buf->base = self->read_buf_;
    buf->len = sizeof self->read_buf_;
  }

  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
    auto* self = static_cast<AuthCall*>(s->data);
    if (self->ended_) return;
    ForwardAuthAnswer::State state;
    if (nread > 0) state = self->answer_.feed(self->read_buf_, static_cast<size_t>(nread));
    else if (nread == UV_EOF) state = self->answer_.finish();
    else if (nread < 0) state = ForwardAuthAnswer::State::kError;
    else return;
    if (state == ForwardAuthAnswer::State::kDone) self->end(true, "");
    else if (state == ForwardAuthAnswer::State::kError)
      self->end(false, nread < 0 && nread != UV_EOF ? "read" : self->answer_.error());
  }

  void end(bool answered, const char* why) {
    if (ended_) return;
    ended_ = true;
    uv_timer_stop(&timer_);
    if (!waiter_.cancelled()) {
      if (answered) apply_answer();
      else fail(why);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
  }

  void apply_answer() {
    if (answer_.status >= 200 && answer_.status < 300) {
      HeaderEdits& edits = waiter_.edits();
      for (const std::string& name : config_->copy_headers) {
        edits.remove_request.push_back(name);
        for (const Header& h : answer_.headers)
          if (http::iequals(h.name, name)) edits.add_request.push_back(h);
      }
      waiter_.done(FilterResult::kContinue);
      return;
    }
    FilterReply& reply = waiter_.reply();
    reply.status = answer_.status;
    reply.cause = answer_.loop ? "forward-auth-loop" : "forward-auth-denied";
    reply.headers = std::move(answer_.headers);
    reply.body = std::move(answer_.body);
    reply.content_type = std::move(answer_.content_type);
    reply.own_body = true;
    waiter_.done(FilterResult::kReply);
  }

  void fail(const char* why) {
    log::warn("forward_auth_failed")
        .kv("url", config_->url)
        .kv("error", why)
        .kv("detail", connect_error_ ? uv_strerror(connect_error_) : "");
    FilterReply& reply = waiter_.reply();
    reply.status = 503;
    reply.cause = "forward-auth-unavailable";
    waiter_.done(FilterResult::kReply);
  }

  static void on_closed(uv_handle_t* h) {
    auto* self = static_cast<AuthCall*>(h->data);
    if (++self->closed_ == 2) delete self;
  }

  ForwardAuthAnswer answer_;
  std::shared_ptr<const config::ForwardAuth> config_;
  FilterWaiter waiter_;
  std::string request_;
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_connect_t connect_;
  uv_write_t write_;
  char read_buf_[16 * 1024];
  int connect_error_ = 0;
  int closed_ = 0;
  bool ended_ = false;
};

}  // namespace

unsigned auth_hops(const http::RequestHead& head) {
  for (size_t i = 0; i < head.fields.size(); ++i) {
    const http::Field& f = head.fields[i];
    if (head.kinds[i] != FieldKind::kOther || !http::iequals(head.name(f), kAuthHopsField)) continue;
    unsigned hops = 0;
    for (char c : head.value(f)) {
      if (c < '0' || c > '9') return 0;
      hops = std::min(1000u, hops * 10 + static_cast<unsigned>(c - '0'));
    }
    return hops;
  }
  return 0;
}

void build_forward_auth_request(const config::ForwardAuth& config, const http::RequestHead& head,
                                std::string_view client_ip, std::string_view scheme, std::string& out) {
  out.append("GET ").append(config.target).append(" HTTP/1.1\r\n");
  append_field(out, "Host", config.authority);
  for (size_t i = 0; i < head.fields.size(); ++i) {
    const http::Field& f = head.fields[i];
    if (dropped_from_request(head, f, head.kinds[i])) continue;
    append_field(out, head.name(f), head.value(f));
  }
  append_field(out, "X-Forwarded-Method", head.method);
  append_field(out, "X-Forwarded-Proto", scheme);
  append_field(out, "X-Forwarded-Host", head.host);
  append_field(out, "X-Forwarded-Uri", head.path);
  append_field(out, "X-Forwarded-For", client_ip);
  out.append("X-Original-URL: ").append(scheme).append("://").append(head.host).append(head.path).append("\r\n");
  append_field(out, "X-Original-Method", head.method);
  out.append(kAuthHopsField).append(": ");
  out.append(std::to_string(auth_hops(head) + 1)).append("\r\n");
  out.append("Content-Length: 0\r\nConnection: close\r\n\r\n");
}

ForwardAuthAnswer::State ForwardAuthAnswer::fail(const char* why) {
  error_ = why;
  return State::kError;
}

void ForwardAuthAnswer::on_body_data(const char* data, size_t len) {
  const size_t room = kMaxBody - std::min(kMaxBody, body.size());
  body.append(data, std::min(len, room));
}

ForwardAuthAnswer::State ForwardAuthAnswer::feed(const char* data, size_t len) {
  if (!head_done_) {
    const size_t before = head_bytes_.size();
    head_bytes_.append(data, len);
    const size_t end = http::find_head_end(head_bytes_.data(), head_bytes_.size(), before > 3 ? before - 3 : 0);
    if (end == 0) return head_bytes_.size() > kMaxHead ? fail("answer head too large") : State::kMore;
    http::ResponseHead head;
    http::Limits limits;
    limits.max_header_bytes = kMaxHead;
    if (!http::parse_response_head(std::string_view(head_bytes_.data(), end), limits, /*request_method_head=*/false, head).ok())
      return fail("malformed answer");
    if (head.status < 200) return fail("interim answer");  // a GET without Expect gets none
    status = head.status;
    for (size_t i = 0; i < head.fields.size(); ++i) {
      const http::Field& f = head.fields[i];
      if (http::iequals(head.name(f), "content-type")) content_type.assign(head.value(f));
      if (head.status == 508 && http::iequals(head.name(f), "x-berth-error") && head.value(f) == "forward-auth-loop")
        loop = true;
      if (dropped_from_answer(head, f, head.kinds[i])) continue;
      headers.push_back(Header{std::string(head.name(f)), std::string(head.value(f))});
    }
    head_done_ = true;
    MessageParser::Result r = body_parser_.start(head.framing, head.content_length, HTTP_RESPONSE, this);
    if (r.state == MessageParser::State::kError) return fail("malformed answer body");
    const std::string rest = head_bytes_.substr(end);
    head_bytes_.clear();
    if (r.state == MessageParser::State::kComplete) return State::kDone;
    if (rest.empty()) return State::kMore;
    return feed(rest.data(), rest.size());
  }
  if (body_parser_.complete()) return State::kDone;
  MessageParser::Result r = body_parser_.feed(data, len);
  if (r.state == MessageParser::State::kError) return fail("malformed answer body");
  return r.state == MessageParser::State::kComplete ? State::kDone : State::kMore;
}

ForwardAuthAnswer::State ForwardAuthAnswer::finish() {
  if (!head_done_) return fail("connection closed before the answer");
  if (body_parser_.complete()) return State::kDone;
  MessageParser::Result r = body_parser_.finish();
  return r.state == MessageParser::State::kComplete ? State::kDone : fail("answer cut short");
}

ForwardAuthFilter::ForwardAuthFilter(const config::ForwardAuth& config)
    : config_(std::make_shared<const config::ForwardAuth>(config)) {}

FilterResult ForwardAuthFilter::on_request(const FilterRequest& req, FilterState*, HeaderEdits&, FilterReply& reply,
                                           const FilterWaiter& waiter) const {
  if (auth_hops(req.head) >= kMaxAuthHops) {
    reply.status = 508;
    reply.cause = "forward-auth-loop";
    return FilterResult::kReply;
  }
  if (!req.loop) {
    reply.status = 503;
    reply.cause = "forward-auth-unavailable";
    return FilterResult::kReply;
  }
  std::string request;
  request.reserve(512 + req.head.raw.size());
  build_forward_auth_request(*config_, req.head, req.client_ip, req.scheme, request);
  auto* call = new AuthCall(req.loop, config_, waiter, std::move(request));
  call->start();
  return FilterResult::kPending;
}

}  // namespace berth
