#include "proxy/datapath/upstream.h"

#include <arpa/inet.h>

#include <cstdio>

#include "proxy/base/log.h"
#include "proxy/model/route_table.h"
#include "proxy/net/tcp_transport.h"
#include "proxy/datapath/worker.h"
#include "proxy/tls/client_context.h"
#include "proxy/tls/tls_transport.h"

namespace berth {

// ---------------------------------------------------------------- EndpointPool

EndpointPool::EndpointPool(Worker* worker, const Service& service, const Endpoint& endpoint)
    : worker_(worker),
      key_(endpoint.key),
      map_key_(pool_key(service, endpoint)),
      addr_(endpoint.addr),
      tls_(service.policy.tls.enabled ? service.upstream_tls : nullptr),
      tls_required_(service.policy.tls.enabled) {
  if (tls_) session_ = std::make_shared<tls::SessionSlot>();
}

EndpointPool::~EndpointPool() = default;

std::string EndpointPool::pool_key(const Service& service, const Endpoint& endpoint) {
  if (!service.policy.tls.enabled) return endpoint.key;
  char tag[40];
  std::snprintf(tag, sizeof tag, "|tls@%p", static_cast<const void*>(service.upstream_tls.get()));
  return endpoint.key + tag;
}

bool EndpointPool::same_pool_keys(const Service& a, const Service& b) {
  return a.policy.tls.enabled == b.policy.tls.enabled && (!a.policy.tls.enabled || a.upstream_tls == b.upstream_tls);
}

std::unique_ptr<Transport> EndpointPool::new_transport() {
  auto tcp = std::make_unique<TcpTransport>(worker_);
  if (!tls_required_) return tcp;
  // What the session refers to lives as long as the connection: the context and the slot.
  struct Keep {
    std::shared_ptr<const tls::ClientContext> ctx;
    std::shared_ptr<tls::SessionSlot> slot;
  };
  SSL* ssl = nullptr;
  if (tls_) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (addr_.ss_family == AF_INET6)
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&addr_)->sin6_addr, ip, sizeof ip);
    else
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr_)->sin_addr, ip, sizeof ip);
    ssl = tls_->new_session(ip, session_.get());
  }
  // No context (it could not be built) or no memory: connect() fails, as kTlsFailed.
  return std::make_unique<tls::TlsTransport>(worker_, std::move(tcp), ssl, std::make_shared<Keep>(Keep{tls_, session_}));
}

UpstreamConn* EndpointPool::take_idle() {
  while (UpstreamConn* u = idle_head_) {
    idle_head_ = u->idle_next_;
    if (idle_head_) idle_head_->idle_prev_ = nullptr;
    u->idle_next_ = u->idle_prev_ = nullptr;
    --idle_count_;
    worker_->gauges().upstream_idle.fetch_sub(1, std::memory_order_relaxed);
    if (u->closing()) continue;
    // What came while it lay idle and is not read yet (its read event may come later in this
    // loop turn). Bytes answer no request: written to, the connection would hand them to the
    // new request as its response, another client's. An end: the instance closed it, and a
    // request sent there would fail (a POST, not re-sent, with a 502). One syscall per reuse.
    switch (u->transport().waiting_input()) {
      case Transport::Waiting::kNothing:
        return u;
      case Transport::Waiting::kBytes:
        u->drop_unsolicited("idle");
        break;
      case Transport::Waiting::kEnd:
        u->close();
        break;
    }
  }
  return nullptr;
}

void EndpointPool::put_idle(UpstreamConn* u) {
  const auto& rt = worker_->runtime();
  const uint32_t max_idle = rt ? rt->limits.upstream_max_idle_per_endpoint : 0;
  if (!in_snapshot || worker_->draining() || idle_count_ >= max_idle) {
    u->close();
    return;
  }
  u->idle_prev_ = nullptr;
  u->idle_next_ = idle_head_;
  if (idle_head_) idle_head_->idle_prev_ = u;
  idle_head_ = u;
  ++idle_count_;
  worker_->gauges().upstream_idle.fetch_add(1, std::memory_order_relaxed);
}

void EndpointPool::on_conn_created() {
  ++total_;
  worker_->gauges().upstream_open.fetch_add(1, std::memory_order_relaxed);
}

void EndpointPool::on_conn_closed(UpstreamConn* u) {
  const bool idle = u->idle_prev_ || u->idle_next_ || idle_head_ == u;
  if (idle) {
    if (u->idle_prev_) u->idle_prev_->idle_next_ = u->idle_next_;
    else idle_head_ = u->idle_next_;
    if (u->idle_next_) u->idle_next_->idle_prev_ = u->idle_prev_;
    u->idle_next_ = u->idle_prev_ = nullptr;
    --idle_count_;
    worker_->gauges().upstream_idle.fetch_sub(1, std::memory_order_relaxed);
  }
  --total_;
  worker_->gauges().upstream_open.fetch_sub(1, std::memory_order_relaxed);
  if (total_ == 0 && !in_snapshot) worker_->on_upstream_pool_empty(this);
}

void EndpointPool::close_idle() {
  while (UpstreamConn* u = take_idle()) u->close();
}

// ---------------------------------------------------------------- UpstreamConn

UpstreamConn::UpstreamConn(Worker* worker, EndpointPool* pool, std::unique_ptr<Transport> transport)
    : Stream(worker, std::move(transport)), worker_(worker), pool_(pool) {
  pool_->on_conn_created();
}

UpstreamConn::UpstreamConn(Worker* worker, EndpointPool* pool, TcpTransport& embedded)
    : Stream(worker, embedded), worker_(worker), pool_(pool) {
  pool_->on_conn_created();
}

size_t UpstreamConn::slot_bytes() { return sizeof(UpstreamConn) + sizeof(TcpTransport); }

UpstreamConn* UpstreamConn::create(Worker* worker, EndpointPool* pool) {
  static_assert(sizeof(UpstreamConn) % alignof(TcpTransport) == 0);
  static_assert(alignof(UpstreamConn) <= 16 && alignof(TcpTransport) <= 16);
  void* mem = worker->upstream_slots().allocate();
  if (pool->tls()) return new (mem) UpstreamConn(worker, pool, pool->new_transport());
  auto* tcp = new (static_cast<char*>(mem) + sizeof(UpstreamConn)) TcpTransport(worker);
  return new (mem) UpstreamConn(worker, pool, *tcp);
}

void UpstreamConn::connect(UpstreamClient* client, uint64_t timeout_ms) {
  client_ = client;
  phase_ = Phase::kConnecting;
  worker_->stats().add(Counter::kUpstreamConnects);
  if (pool_->tls() && !pool_->tls_context()) {
    // The service's TLS client context could not be built (logged then): never plain TCP.
    worker_->stats().add(Counter::kUpstreamConnectFailures);
    log::warn("upstream_tls_failed").kv("endpoint", pool_->key()).kv("reason", "no TLS client context");
    fail(UpstreamFailure::kTlsFailed);
    return;
  }
  if (!connect_to(pool_->addr())) {
    fail(UpstreamFailure::kConnectRefused);
    return;
  }
  start_timer(timeout_ms);
}

void UpstreamConn::on_connected(int status) {
  stop_timer();
  if (status == UV_EPROTO && pool_->tls()) {
    worker_->stats().add(Counter::kUpstreamConnectFailures);
    log::warn("upstream_tls_failed")
        .kv("endpoint", pool_->key())
        .kv("reason", static_cast<tls::TlsTransport&>(transport()).failure_reason());
    fail(UpstreamFailure::kTlsFailed);
    return;
  }
  if (status < 0) {
    worker_->stats().add(Counter::kUpstreamConnectFailures);
    log::debug("upstream_connect_failed").kv("endpoint", pool_->key()).kv("error", uv_err_name(status));
    fail(UpstreamFailure::kConnectRefused);
    return;
  }
  if (pool_->tls() && log::enabled(log::Level::kDebug)) {
    auto& t = static_cast<tls::TlsTransport&>(transport());
    log::debug("upstream_tls_handshake").kv("endpoint", pool_->key()).kv("resumed", t.resumed());
  }
  phase_ = Phase::kIdle;
  if (client_) client_->on_upstream_connected(this);
}

void UpstreamConn::attach(UpstreamClient* client) {
  client_ = client;
  reused_ = true;
  stop_timer();
  worker_->stats().add(Counter::kUpstreamReuses);
}

void UpstreamConn::begin_exchange(bool method_head, const std::string* upgrade_offered) {
  phase_ = Phase::kHead;
  head_reader_.reset(worker_->strings());
  head_.clear();
  response_bytes_ = 0;
  request_done_ = false;
  read_paused_ = false;
  method_head_ = method_head;
  upgrade_offered_ = upgrade_offered;
  stop_timer();
  update_reading();
}

void UpstreamConn::request_complete(uint64_t response_timeout_ms) {
  request_done_ = true;
  timeout_ms_ = response_timeout_ms;
  if (phase_ == Phase::kHead || phase_ == Phase::kBody) {
    deadline_ = now() + timeout_ms_;
    start_timer(timeout_ms_);
  }
}

bool UpstreamConn::reusable_after_response() const {
  return !broken_ && phase_ == Phase::kDone && !head_.connection_close &&
         head_.framing != http::Framing::kUntilClose;
}

void UpstreamConn::release(bool reusable) {
  client_ = nullptr;
  head_reader_.reset(worker_->strings());
  if (closing()) return;
  if (!reusable || !reusable_after_response()) {
    close();
    return;
  }
  phase_ = Phase::kIdle;
  reused_ = false;
  read_paused_ = false;
  update_reading();  // notice the server closing an idle connection
  const auto& rt = worker_->runtime();
  start_timer(rt ? static_cast<uint64_t>(rt->timeouts.upstream_idle.count()) : 60000);
  pool_->put_idle(this);
}

void UpstreamConn::end_tunnel() {
  client_ = nullptr;
  phase_ = Phase::kFailed;  // never pooled
  close_after_flush();
}

void UpstreamConn::set_read_paused(bool paused) {
  // Time spent waiting for a slow client does not count against the backend.
  if (read_paused_ && !paused) deadline_ = now() + timeout_ms_;
  read_paused_ = paused;
  update_reading();
}

void UpstreamConn::update_reading() {
  bool want = false;
  switch (phase_) {
    case Phase::kIdle:  // pooled: notice the server closing it
      want = true;
      break;
    case Phase::kHead:
    case Phase::kBody:
    case Phase::kTunnel:
    case Phase::kDone:  // stays on between exchanges: no epoll_ctl churn per request
      want = !read_paused_;
      break;
    default:
      break;
  }
  set_reading(want);
}

void UpstreamConn::note_unsolicited(const char* when) {
  if (broken_) return;  // not reused already: told once per connection
  broken_ = true;
  worker_->stats().add(Counter::kUpstreamUnsolicited);
  log::warn("upstream_unsolicited_bytes").kv("endpoint", pool_->key()).kv("when", when);
}

void UpstreamConn::drop_unsolicited(const char* when) {
  note_unsolicited(when);
  close();
}

void UpstreamConn::fail(UpstreamFailure why) {
  phase_ = Phase::kFailed;
  broken_ = true;
  UpstreamClient* c = client_;
  client_ = nullptr;
  head_reader_.reset(worker_->strings());
  close();
  if (c) c->on_upstream_failed(this, why, response_bytes_ > 0);
}

void UpstreamConn::on_timer() {
  switch (phase_) {
    case Phase::kConnecting:
      worker_->stats().add(Counter::kUpstreamConnectFailures);
      fail(UpstreamFailure::kConnectTimeout);
      return;
    case Phase::kIdle:
      close();
      return;
    case Phase::kHead:
    case Phase::kBody: {
      uint64_t t = now();
      if (read_paused_) {
        start_timer(timeout_ms_ ? timeout_ms_ : 1000);
        return;
      }
      if (t < deadline_) {
        start_timer(deadline_ - t);
        return;
      }
      fail(response_bytes_ == 0 || phase_ == Phase::kHead ? UpstreamFailure::kResponseTimeout
                                                          : UpstreamFailure::kResetMidResponse);
      return;
    }
    default:
      return;
  }
}

void UpstreamConn::on_write_done(int status) {
  if (status < 0) {
    if (phase_ == Phase::kDone) {
      broken_ = true;
      return;
    }
    fail(response_bytes_ ? UpstreamFailure::kResetMidResponse : UpstreamFailure::kResetBeforeResponse);
    return;
  }
  if (client_) {
    const auto& rt = worker_->runtime();
    const size_t bound = rt ? rt->limits.write_buffer_bytes : 256 * 1024;
    if (write_queue_bytes() <= bound / 2) client_->on_upstream_writable(this);
  }
}

void UpstreamConn::on_closed() {
  UpstreamClient* c = client_;
  client_ = nullptr;
  head_reader_.reset(worker_->strings());
  pool_->on_conn_closed(this);
  if (c) c->on_upstream_failed(this, UpstreamFailure::kResetBeforeResponse, response_bytes_ > 0);
}

void UpstreamConn::on_read(Block* block, ssize_t nread) {
  if (nread < 0) {
    switch (phase_) {
      case Phase::kHead:
        // Closed before a whole final head: after interim responses or a piece of the head, a
        // reset all the same (the bytes so far were fine), though too late to retry.
        fail(response_bytes_ ? UpstreamFailure::kResetMidResponse : UpstreamFailure::kResetBeforeResponse);
        return;
      case Phase::kBody: {
        // Only a clean end of the stream (FIN; over TLS, close_notify) ends a body delimited by
        // the close; a reset or a truncation cuts it short (RFC 9112 section 8).
        if (nread == UV_EOF && parser_.finish().state == MessageParser::State::kComplete) {
          phase_ = Phase::kDone;
          broken_ = true;  // the connection is gone anyway
          if (client_) client_->on_response_complete(this);
          if (!closing()) close();
          return;
        }
        fail(UpstreamFailure::kResetMidResponse);
        return;
      }
      case Phase::kTunnel: {
        // A clean end is a half-close: the instance may still read what the client sends.
        if (nread == UV_EOF && client_) {
          tunnel_eof_ = true;
          client_->on_tunnel_closed(this, true);
          return;
        }
        UpstreamClient* c = client_;
        client_ = nullptr;
        phase_ = Phase::kFailed;
        close();
        if (c) c->on_tunnel_closed(this, false);
        return;
      }
      default:
        close();
        return;
    }
  }
  process(block, block->data(), static_cast<size_t>(nread));
  BufferPool::unref(block);
}

void UpstreamConn::process(Block* block, const char* data, size_t len) {
  current_block_ = block;
  while (len > 0 && !closing()) {
    switch (phase_) {
      case Phase::kHead: {
        const auto& rt = worker_->runtime();
        const uint32_t max_bytes = rt ? rt->limits.max_header_bytes : 32 * 1024;
        size_t used = 0;
        response_bytes_ += len;
        HeadReader::Status st = head_reader_.feed(worker_->strings(), data, len, used, max_bytes, max_bytes);
        if (st == HeadReader::Status::kNeedMore) {
          // A status line starts "HTTP/": anything else is refused now, not waited on until the
          // head limit or upstream_response (the first head, or one after a 1xx).
          const std::string_view so_far = head_reader_.pending();
          const size_t n = so_far.size() < 5 ? so_far.size() : 5;
          if (so_far.substr(0, n) != std::string_view("HTTP/", n)) {
            log::warn("upstream_bad_response").kv("endpoint", pool_->key()).kv("reason", "not a status line");
            fail(UpstreamFailure::kBadResponse);
          }
          return;
        }
        if (st != HeadReader::Status::kComplete) {
          fail(UpstreamFailure::kBadResponse);
          return;
        }
        response_bytes_ -= (len - used);
        data += used;
        len -= used;
        handle_head(head_reader_.head(), len > 0);
        break;
      }
      case Phase::kBody: {
        if (request_done_) deadline_ = now() + timeout_ms_;
        MessageParser::Result r = parser_.feed(data, len);
        if (closing() || phase_ != Phase::kBody) return;
        response_bytes_ += r.state == MessageParser::State::kError ? 0 : (r.consumed ? r.consumed : len);
        if (r.state == MessageParser::State::kBody) return;
        if (r.state == MessageParser::State::kError) {
          log::warn("upstream_bad_response").kv("endpoint", pool_->key()).kv("reason", r.reason);
          fail(UpstreamFailure::kBadResponse);
          return;
        }
        // Complete. Bytes after the response mean a confused or malicious server.
        if (r.consumed < len) note_unsolicited("after_response");
        phase_ = Phase::kDone;
        stop_timer();
        if (client_) client_->on_response_complete(this);
        return;
      }
      case Phase::kTunnel:
        if (client_) client_->on_tunnel_data(this, block, data, len);
        return;
      case Phase::kIdle:
      case Phase::kDone: {
        // Unsolicited bytes: never reuse this connection.
        const char* when = phase_ == Phase::kIdle ? "idle" : "after_response";
        if (client_) note_unsolicited(when);
        else drop_unsolicited(when);
        return;
      }
      default:
        return;
    }
  }
}

void UpstreamConn::handle_head(std::string_view head, bool bytes_follow) {
  const auto& rt = worker_->runtime();
  http::Limits limits = rt ? rt->http_limits : http::Limits{};
  limits.max_headers = limits.max_headers < 256 ? 256 : limits.max_headers;
  http::Outcome o = http::parse_response_head(head, limits, method_head_, head_);
  if (!o.ok()) {
    log::warn("upstream_bad_response").kv("endpoint", pool_->key()).kv("reason", o.detail);
    fail(UpstreamFailure::kBadResponse);
    return;
  }
  // The head is parsed once: the body framing starts from what parse_response_head found.
  MessageParser::Result r = parser_.start(head_.framing, head_.content_length, HTTP_RESPONSE, this);
  if (r.state == MessageParser::State::kError) {
    log::warn("upstream_bad_response").kv("endpoint", pool_->key()).kv("reason", r.reason);
    fail(UpstreamFailure::kBadResponse);
    return;
  }
  if (head_.status == 101) {
    // Only a switch the client asked for, to a protocol it offered: anything else would tunnel
    // bytes that no longer pass through Berth's request checks.
    std::string_view chosen;
    int upgrade_fields = 0;
    for (size_t i = 0; i < head_.fields.size(); ++i)
      if (head_.kinds[i] == http::FieldKind::kUpgrade && ++upgrade_fields == 1) chosen = head_.value(head_.fields[i]);
    if (upgrade_fields > 1) chosen = {};
    if (!upgrade_offered_ || !http::upgrade_offered(*upgrade_offered_, chosen)) {
      log::warn("upstream_bad_response").kv("endpoint", pool_->key()).kv("reason", "101 to a protocol not offered");
      fail(UpstreamFailure::kBadResponse);
      return;
    }
    phase_ = Phase::kTunnel;
    stop_timer();
    if (client_) client_->on_response_head(this, head_);
    head_reader_.reset(worker_->strings());
    return;
  }
  if (head_.status < 200) {
    if (client_) client_->on_response_head(this, head_);
    head_reader_.reset(worker_->strings());
    return;  // stay in kHead for the final response
  }
  // Complete with its head: no body (HEAD, 204, 304, ...) or Content-Length: 0.
  const bool no_body = r.state == MessageParser::State::kComplete;
  phase_ = no_body ? Phase::kDone : Phase::kBody;
  if (no_body) {
    stop_timer();
    // Bytes after a whole response mean a confused or malicious server: never reused. Decided
    // before the exchange completes, which may hand the connection to a pipelined request at
    // once; those bytes would then be read as its response.
    if (bytes_follow) note_unsolicited("after_response");
  }
  if (client_) client_->on_response_head(this, head_);
  head_reader_.reset(worker_->strings());
  if (no_body && client_ && !closing()) client_->on_response_complete(this);
}

void UpstreamConn::on_body_data(const char* data, size_t len) {
  if (client_) client_->on_response_body(this, current_block_, data, len);
}

}  // namespace berth
