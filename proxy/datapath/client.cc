#include "proxy/datapath/client.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <new>

#include "proxy/filter/filter.h"
#include "proxy/base/log.h"
#include "proxy/health/outlier.h"
#include "proxy/lb/request_key.h"
#include "proxy/datapath/mirror.h"
#include "proxy/datapath/worker.h"
#include "proxy/net/tcp_transport.h"
#include "proxy/tls/challenge_board.h"

namespace berth {

// Every try of an exchange has its place in the record and in the list of instances tried.
static_assert(ExchangeRecord::kMaxAttempts >= config::RetryPolicy::kMaxAttempts);
namespace {

// Lingering: a close comes once the client has sent nothing for kLingerMs, or kDiscardMaxS
// after the connection began to close, whichever is first (as a web server's lingering close).
constexpr uint64_t kLingerMs = 2000;
constexpr uint32_t kDiscardMaxS = 30;

std::string_view chunk_header(char (&buf)[24], size_t len) {
  auto r = std::to_chars(buf, buf + 20, static_cast<unsigned long long>(len), 16);
  r.ptr[0] = '\r';
  r.ptr[1] = '\n';
  return std::string_view(buf, static_cast<size_t>(r.ptr + 2 - buf));
}

struct ErrorReply {
  uint16_t status;
  const char* cause;
};

ErrorReply reply_for(http::HeadError e) {
  switch (e) {
    case http::HeadError::kUriTooLong: return {414, "uri-too-long"};
    case http::HeadError::kHeaderTooLarge: return {431, "header-too-large"};
    case http::HeadError::kNotImplemented: return {501, "not-implemented"};
    case http::HeadError::kVersionNotSupported: return {505, "version-not-supported"};
    default: return {400, "bad-request"};
  }
}

ErrorReply reply_for(UpstreamFailure f) {
  switch (f) {
    case UpstreamFailure::kConnectRefused: return {502, "upstream-connect-failed"};
    case UpstreamFailure::kConnectTimeout: return {504, "upstream-connect-timeout"};
    case UpstreamFailure::kResetBeforeResponse: return {502, "upstream-reset"};
    case UpstreamFailure::kResponseTimeout: return {504, "upstream-response-timeout"};
    case UpstreamFailure::kBadResponse: return {502, "upstream-bad-response"};
    case UpstreamFailure::kResetMidResponse: return {502, "upstream-reset"};
    case UpstreamFailure::kTlsFailed: return {502, "upstream-tls-failed"};
    case UpstreamFailure::kSendTimeout: return {504, "upstream-send-timeout"};
  }
  return {502, "upstream-error"};
}

bool is_idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

// The values of the request's X-Forwarded-For lines, in order.
void collect_forwarded_for(const http::RequestHead& req, std::vector<std::string_view>& out) {
  for (size_t i = 0; i < req.fields.size(); ++i)
    if (req.kinds[i] == http::FieldKind::kXForwardedFor) out.push_back(req.value(req.fields[i]));
}

Counter status_counter(uint16_t s) {
  if (s < 200) return Counter::kResponses1xx;
  if (s < 300) return Counter::kResponses2xx;
  if (s < 400) return Counter::kResponses3xx;
  if (s < 500) return Counter::kResponses4xx;
  return Counter::kResponses5xx;
}

}  // namespace

void Exchange::reset() {
  rt.reset();
  route = nullptr;
  endpoint = -1;
  req.clear();
  client = {};
  xff_used = 0;
  peer_trusted = false;
  rec.clear();
  close_end = ExchangeEnd::kClientClosed;
  filters.reset();
  held_head.clear();
  head_only = has_body = false;
  body_block = nullptr;
  replay.reset();
  upstream_head.clear();
  plan = {};
  body_limit = body_deadline = last_body_at = upstream_acked = 0;
  version_minor = 1;
  req_framing = http::Framing::kNone;
  keep_alive = true;
  method_head = upgrade = head_sent = request_done = false;
  response_started = response_done = response_chunked = false;
  before_head = {};
  bytes_out_before_head = 0;
  pick_key = {};
  tried_count = 0;
  attempt_pool = nullptr;
  connecting = is_retry = fresh_connection = set_cookie = false;
  stale_resends = 0;
  sticky_id = 0;
  split_target = UINT32_MAX;
  mirror = false;
}

ClientConn::ClientConn(Worker* worker, std::unique_ptr<Transport> transport)
    : Stream(worker, std::move(transport)) {}

ClientConn::ClientConn(Worker* worker, TcpTransport& embedded) : Stream(worker, embedded) {}

size_t ClientConn::slot_bytes() { return sizeof(ClientConn) + sizeof(TcpTransport); }

ClientConn* ClientConn::create_plain(Worker* worker, int fd, const sockaddr* peer, uint16_t local_port) {
  static_assert(sizeof(ClientConn) % alignof(TcpTransport) == 0);
  static_assert(alignof(ClientConn) <= 16 && alignof(TcpTransport) <= 16);
  void* mem = worker->client_slots().allocate();
  auto* tcp = new (static_cast<char*>(mem) + sizeof(ClientConn)) TcpTransport(worker);
  if (tcp->open(fd, peer, local_port) != 0) ::close(fd);
  return new (mem) ClientConn(worker, *tcp);
}

ClientConn* ClientConn::create(Worker* worker, std::unique_ptr<Transport> transport) {
  void* mem = worker->client_slots().allocate();
  return new (mem) ClientConn(worker, std::move(transport));
}

Worker* ClientConn::worker() const { return static_cast<Worker*>(io_); }

void ClientConn::start(bool peer_known) {
  if (peer_known) conn();  // reads the peer's facts once, now, while the socket is fresh
  phase_ = Phase::kIdle;
  // A fresh connection must start its request within the header timeout.
  deadline_ = now() + worker()->runtime()->timeouts.request_header.count();
  arm_timer();
  update_reading();
}

void ClientConn::drain() {
  draining_ = true;
  // Only a connection already served and waiting for its next request closes now. One not yet
  // served (accepted just before the drain, in its TLS handshake or PROXY header, or part way
  // through its first head) is served once, with Connection: close, within its request_header
  // deadline and the drain timeout: the client connected while Berth still accepted.
  if (kept_alive_ && idle()) close();
}

// ------------------------------------------------------------------ input

void ClientConn::on_read(Block* block, ssize_t nread) {
  if (nread < 0) {
    peer_eof_ = true;
    switch (phase_) {
      case Phase::kUpstream:
        // A client that half-closes (FIN) after a complete request still gets its response; one
        // that resets is gone, and its exchange ends as the client's leaving, not as an answer.
        // A request without a body is complete before a pending filter has let it go on.
        if (ex_ && (ex_->request_done || ex_->head_only) && nread == UV_EOF) {
          set_reading(false);
          return;
        }
        abort_exchange(ExchangeEnd::kClientClosed, "");
        return;
      case Phase::kClosing:
        // The client is done sending, the last answer still goes out (then linger() closes).
        if (!lingering_ && nread == UV_EOF) {
          set_reading(false);
          return;
        }
        close();
        return;
      case Phase::kTunnel:
        // The client is done sending: its FIN follows what it sent to the instance, and the
        // other direction stays open until the instance ends it too (a half-close).
        if (nread == UV_EOF && upstream_ && !upstream_->tunnel_eof()) {
          upstream_->shutdown_after_flush();
          update_reading();
          return;
        }
        if (upstream_) {
          UpstreamConn* u = upstream_;
          upstream_ = nullptr;
          if (nread == UV_EOF) u->end_tunnel();  // both directions ended: flush, then close
          else u->release(false);
        }
        close_after_flush();
        return;
      default:
        close();
        return;
    }
  }
  process_input(block, 0, static_cast<size_t>(nread));
  BufferPool::unref(block);
}

void ClientConn::process_input(Block* block, size_t off, size_t len) {
  const char* data = block->data() + off;
  bool more = true;  // false: the bytes left wait (kept, or a head that needs more)
  while (more && len > 0 && !closing()) {
    switch (phase_) {
      case Phase::kClosing:
        input_moved_ = true;  // discarded: the rest of a request, or one after the last answer
        return;
      case Phase::kIdle:
        if (skip_empty_lines(data, len)) break;  // nothing else in this read
        phase_ = Phase::kHead;
        begin_exchange(block->read_ns);
        deadline_ = now() + ex_rt_timeout_header();
        arm_timer();
        if (cr_carried_) {
          // The CR that ended the last read is not the start of an empty line: it starts this
          // head, which the parser then refuses (a request line cannot start with one).
          cr_carried_ = false;
          const char* cr = "\r";
          size_t one = 1;
          consume_head(block, cr, one);
        }
        [[fallthrough]];
      case Phase::kHead:
        // A head that needs more bytes: reading goes on for them, unless the answers before it
        // hold it back (update_reading).
        more = consume_head(block, data, len);
        break;
      case Phase::kUpstream:
        if (!ex_->head_sent || ex_->request_done || backpressured_) {
          keep_pending(block, data, len);
          more = false;
        } else {
          more = feed_request_body(block, data, len);
        }
        break;
      case Phase::kTunnel:
        deadline_ = now();
        if (ex_) ex_->rec.bytes_in += len;
        if (upstream_) {
          upstream_->write_block(block, data, len);
          if (upstream_ && upstream_->write_queue_bytes() > worker()->runtime()->limits.write_buffer_bytes)
            backpressured_ = true;
        }
        len = 0;
        break;
    }
  }
  if (!closing()) update_reading();
}

// Empty lines before a request line (http::empty_lines) begin no exchange and move no
// deadline: a connection that sends nothing else is closed, quietly, when its idle time (or a
// fresh connection's request_header time) is up, as one that sends nothing. Returns whether the
// read is used up.
bool ClientConn::skip_empty_lines(const char*& data, size_t& len) {
  bool carried = cr_carried_;
  const size_t n = http::empty_lines(data, len, carried);
  cr_carried_ = carried;
  data += n;
  len -= n;
  return len == 0;
}

uint64_t ClientConn::ex_rt_timeout_header() const {
  return static_cast<uint64_t>(worker()->runtime()->timeouts.request_header.count());
}

bool ClientConn::consume_head(Block* block, const char*& data, size_t& len) {
  const Runtime& rt = *worker()->runtime();
  size_t used = 0;
  HeadReader& head_reader = ex_->head_reader;
  HeadReader::Status st = head_reader.feed(worker()->strings(), data, len, used, rt.limits.max_header_bytes,
                                            rt.limits.max_request_line);
  ex_->rec.bytes_in += st == HeadReader::Status::kNeedMore ? len : used;
  switch (st) {
    case HeadReader::Status::kNeedMore:
      data += len;
      len = 0;
      return false;
    case HeadReader::Status::kLineTooLong:
    case HeadReader::Status::kTooLarge:
      // The head's bytes: kept by the reader when it spans reads, else all in this read.
      ex_->rec.note_unparsed_method(head_reader.pending().empty() ? std::string_view(data, len) : head_reader.pending());
      worker()->stats().add(Counter::kRequestsRejected);
      if (st == HeadReader::Status::kLineTooLong) local_reply(414, "uri-too-long", true);
      else local_reply(431, "header-too-large", true);
      return false;
    case HeadReader::Status::kComplete:
      break;
  }
  // The complete head leaves the exchange's reader (which starts afresh) and lives here until
  // the head has been handled, however the exchange ends meanwhile.
  HeadReader done = head_reader;
  head_reader = HeadReader();
  std::string_view head = done.head();
  data += used;
  len -= used;
  handle_request_head(head, std::string_view(data, len));
  done.reset(worker()->strings());
  (void)block;
  return !closing() && phase_ != Phase::kClosing;
}

void ClientConn::keep_pending(Block* block, const char* data, size_t len) {
  drop_pending();
  BufferPool::ref(block);
  if (block->read_ns == 0) block->read_ns = stamp();  // read this turn, or kept before
  pending_block_ = block;
  pending_off_ = static_cast<uint32_t>(data - block->data());
  pending_len_ = static_cast<uint32_t>(len);
}

void ClientConn::drop_pending() {
  if (pending_block_) BufferPool::unref(pending_block_);
  pending_block_ = nullptr;
  pending_off_ = pending_len_ = 0;
}

void ClientConn::resume_pending() {
  if (!pending_block_) {
    update_reading();
    return;
  }
  Block* b = pending_block_;
  size_t off = pending_off_, len = pending_len_;
  pending_block_ = nullptr;
  pending_off_ = pending_len_ = 0;
  process_input(b, off, len);  // may keep part of it pending again (with its own reference)
  BufferPool::unref(b);
  // Reading stopped while the input waited; process_input may return before turning it back
  // on (a head that needs more bytes): the rest of that head is still to be read.
  if (!closing()) update_reading();
}

// ------------------------------------------------------------------ request

void ClientConn::begin_exchange(int64_t read_ns) {
  ex_ = worker()->acquire_exchange();
  ex_->rt = worker()->pinned_runtime();
  ExchangeRecord& rec = ex_->rec;
  // A request from bytes kept for later (pipelined behind another) began when they were read:
  // its wait behind the one before it is part of its duration.
  const int64_t now_ns = stamp();
  rec.start_ns = read_ns != 0 && now_ns != 0 ? read_ns : now_ns;
  if (rec.start_ns) rec.start_unix_ns = realtime_ns() - (now_ns - rec.start_ns);
  const ConnectionInfo& facts = conn();
  rec.scheme = facts.scheme;
  if (facts.tls) {
    rec.tls_version = facts.tls->version;
    rec.tls_cipher = facts.tls->cipher;
    rec.tls_sni = facts.tls->sni;
  }
  ex_->client = peer_address(facts);
  record_client();
}

// "address:port" of ex_->client into the record (IPv6 in brackets), or "address" alone when an
// X-Forwarded-For entry gave no port.
void ClientConn::record_client() {
  if (!worker()->record_details()) return;
  const ClientAddress& c = ex_->client;
  std::string& out = ex_->rec.client;
  out.clear();
  if (c.port == 0 && ex_->xff_used > 0) {
    out.append(c.ip);
    return;
  }
  const bool v6 = std::strchr(c.ip, ':') != nullptr;
  out.append(v6 ? "[" : "").append(c.ip).append(v6 ? "]" : "");
  char port[8];
  auto r = std::to_chars(port, port + sizeof port, c.port);
  out.append(":").append(port, r.ptr);
}

void ClientConn::resolve_client(const http::RequestHead& req) {
  const std::vector<config::Cidr>& trusted = ex_->rt->trusted_proxies;
  ex_->peer_trusted = !trusted.empty() && in_ranges(ex_->client, trusted);
  if (!ex_->peer_trusted) return;
  std::vector<std::string_view> xff;
  collect_forwarded_for(req, xff);
  if (xff.empty()) return;
  ResolvedClient found = resolve_client_address(ex_->client, trusted, xff);
  ex_->client = found.address;
  ex_->xff_used = static_cast<uint32_t>(found.entries_used);
  record_client();
}

void ClientConn::end_exchange(ExchangeEnd end) {
  Exchange* ex = ex_;
  if (!ex) return;
  ex_ = nullptr;
  ex->filters.cancel();  // a pending filter's late answer finds nobody
  // A copy owed for a request whose body never finished: not sent.
  if (ex->mirror) count_mirror(*worker(), *ex->rt->routes, *ex->route, MirrorResult::kSkipped);
  ExchangeRecord& rec = ex->rec;
  rec.end = end;
  rec.end_ns = stamp();
  if (ex->route) {
    const RouteTable& table = *ex->rt->routes;
    rec.route = ex->route->name;
    rec.service = table.service(ex->service).name;
    if (const uint32_t index = table.index_of(*ex->route); index != UINT32_MAX) {
      rec.snapshot = &table;
      rec.snapshot_generation = table.generation();
      rec.route_index = index;
      rec.split_target = ex->split_target;
      rec.service_index = ex->service;
    }
  }
  if (RecordSink* sink = worker()->record_sink()) sink->on_exchange(rec);
  worker()->release_exchange(ex);
}

void ClientConn::copy_request_details(const http::RequestHead& req) {
  ExchangeRecord& rec = ex_->rec;
  rec.method.assign(req.method);
  rec.host.assign(req.host);
  const size_t q = req.path.find('?');
  rec.path.assign(req.path.substr(0, q));
  if (q != std::string_view::npos) rec.query.assign(req.path.substr(q + 1));
  rec.version_minor = req.version_minor;
  for (const http::Field& f : req.fields) {
    const std::string_view name = req.name(f);
    if (http::iequals(name, "user-agent")) rec.user_agent.assign(req.value(f));
    else if (http::iequals(name, "referer")) rec.referer.assign(req.value(f));
  }
}

void ClientConn::handle_request_head(std::string_view head, std::string_view early_body) {
  worker()->stats().add(Counter::kRequests);
  const Runtime& rt = *ex_->rt;
  http::RequestHead& req = ex_->req;

  http::Outcome o = http::parse_request_head(head, rt.http_limits, req);
  if (!o.ok()) {
    // Metrics and the access log name the standard method the head starts with, if any (never
    // the token of a head that did not parse).
    ex_->rec.note_unparsed_method(head);
    worker()->stats().add(Counter::kRequestsRejected);
    ErrorReply r = reply_for(o.error);
    log::debug("request_rejected").kv("client", conn().peer_ip.text()).kv("status", r.status).kv("reason", o.detail);
    local_reply(r.status, r.cause, true);
    return;
  }
  ex_->rec.method_class = classify_method(req.method);  // a compare of a few bytes
  ex_->rec.head_parsed = true;
  resolve_client(req);
  // The request id: the client's, else one made here (sent upstream, and in the record). A
  // NUL first byte says the client's own goes on (forward_request).
  const std::string_view client_id = http::effective_request_id(req, {});
  if (client_id.empty()) worker()->next_request_id(ex_->request_id);
  else ex_->request_id[0] = '\0';
  if (worker()->record_details()) {
    copy_request_details(req);
    ex_->rec.request_id.assign(client_id.empty() ? std::string_view(ex_->request_id, sizeof ex_->request_id) : client_id);
  }
  // The head is parsed once: the body framing starts from what parse_request_head found.
  MessageParser::Result pr = ex_->body.start(req.framing, req.content_length, HTTP_REQUEST, this);
  // A chunked body whose framing, as far as it came with the head, is broken: refused now,
  // before any instance sees the request (otherwise found only once it streams).
  if (pr.state == MessageParser::State::kError ||
      (req.framing == http::Framing::kChunked && !chunked_prefix_valid(early_body))) {
    worker()->stats().add(Counter::kRequestsRejected);
    log::debug("request_rejected")
        .kv("client", conn().peer_ip.text())
        .kv("status", 400)
        .kv("reason", pr.state == MessageParser::State::kError ? pr.reason : "invalid chunk size");
    local_reply(400, "bad-request", true);
    return;
  }
  ex_->version_minor = req.version_minor;
  ex_->keep_alive = req.keep_alive() && !draining_ && !worker()->draining();
  ex_->method_head = req.method_head;
  ex_->upgrade = req.upgrade;
  if (req.upgrade) ex_->upgrade_protocol.assign(req.upgrade_protocol);
  ex_->req_framing = req.framing;
  ex_->has_body = req.framing != http::Framing::kNone;
  ex_->head_only = pr.state != MessageParser::State::kBody;

  // ACME http-01 (RFC 8555 8.3): answered by Berth for any host, before routing and before
  // https_redirect; the board is only looked at for paths under the challenge prefix.
  if (req.path.starts_with(tls::ChallengeBoard::kHttpPrefix) && conn().tls == nullptr &&
      (req.method == "GET" || req.method == "HEAD")) {
    if (std::optional<std::string> answer = tls::challenge_board().http_answer(req.path)) {
      answer_acme_challenge(*answer);
      return;
    }
  }
  const Route* route = rt.routes->match(req);
  if (!route) {
    local_reply(404, "no-route", ex_->has_body);
    return;
  }
  ex_->route = route;
  if (route->split) {
    ex_->split_target = worker()->pick_split_target(*rt.routes, *route);
    ex_->service = route->split->targets[ex_->split_target].service;
  } else {
    ex_->service = route->service;
  }
  // Percent-encoded separators (request_path.h): refused unless this route or the top level
  // allows them. Only a path with a '%' is looked at.
  const uint8_t refused_encodings = route->refused_encodings(rt.refused_encodings);
  if (const char* why = http::refused_encoding(req.path, refused_encodings)) {
    worker()->stats().add(Counter::kRequestsRejected);
    log::debug("request_rejected").kv("client", conn().peer_ip.text()).kv("status", 400).kv("reason", why);
    local_reply(400, "bad-request", ex_->has_body);
    return;
  }
  if (route->https_redirect && conn().tls == nullptr && conn().scheme != "https" &&
      !tls::ChallengeBoard::is_http_challenge_path(req.path)) {
    redirect_to_https(req);
    return;
  }
  if (route->filters && !route->filters->empty()) {
    FilterRequest freq{req,           *route, ex_->client.text(), ex_->client.addr, ex_->client.family,
                       worker()->loop(), conn().scheme, ex_->rec.start_ns, refused_encodings};
    switch (ex_->filters.start(*route->filters, worker()->filter_states(), freq, this)) {
      case FilterResult::kContinue:
        break;
      case FilterResult::kReply:
        reply_from_filter();
        return;
      case FilterResult::kPending:
        // The head's bytes are about to go (read buffer, head reader): keep a copy to parse
        // again when the filter answers. Input that arrives meanwhile waits (phase kUpstream
        // with nothing sent keeps it pending and stops reading).
        ex_->held_head.assign(head);
        phase_ = Phase::kUpstream;
        stop_timer();
        return;
    }
  }
  forward_request();
}

// 308 (or the route's https_redirect_code) to the same host (without its port: HTTPS is on its default port) and target.
void ClientConn::redirect_to_https(const http::RequestHead& req) {
  std::string_view host = req.host;
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    if (close != std::string_view::npos) host = host.substr(0, close + 1);
  } else if (const size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  // No host (HTTP/1.0 without Host, "Host:" empty, "Host: :80"), or a target that is no path
  // ("OPTIONS *"): "https:///x/y" would send clients to host "x".
  if (host.empty() || req.path.empty() || req.path.front() != '/') {
    worker()->stats().add(Counter::kRequestsRejected);
    log::debug("request_rejected").kv("client", conn().peer_ip.text()).kv("status", 400).kv("reason", "no host to redirect to");
    local_reply(400, "bad-request", ex_->has_body);
    return;
  }
  std::string* extra = worker()->acquire_string();
  extra->append("Location: https://").append(host).append(req.path).append("\r\n");
  uint16_t code = ex_->route->https_redirect_code;
  if (req.method != "GET" && req.method != "HEAD") code = code == 302 ? 307 : code == 301 ? 308 : code;
  local_reply(code, "https-redirect", ex_->has_body, *extra);
  worker()->release_string(extra);
}

void ClientConn::answer_acme_challenge(const std::string& key_authorization) {
  const bool keep = local_reply_keeps(ex_->has_body);
  std::string* out = worker()->acquire_string();
  http::build_local_response(200, "text/plain", key_authorization, !keep, {}, *out, ex_->method_head);
  send_local_reply(out, 200, "acme-challenge", keep);
}

void ClientConn::on_filter_done() {
  if (!ex_ || closing()) return;
  // Parse the kept copy again: the views of ex_->req pointed into bytes that are gone.
  http::parse_request_head(ex_->held_head, ex_->rt->http_limits, ex_->req);
  FilterRequest freq{ex_->req,          *ex_->route,      ex_->client.text(), ex_->client.addr,
                     ex_->client.family, worker()->loop(), conn().scheme,
                     0,  // now_ns 0: time has passed
                     ex_->route->refused_encodings(ex_->rt->refused_encodings)};
  switch (ex_->filters.proceed(freq)) {
    case FilterResult::kContinue:
      forward_request();
      return;
    case FilterResult::kReply:
      reply_from_filter();
      return;
    case FilterResult::kPending:
      return;  // the next filter waits too
  }
}

void ClientConn::reply_from_filter() {
  const FilterReply& reply = ex_->filters.reply();
  std::string extra;
  for (const http::Header& h : reply.headers) extra.append(h.name).append(": ").append(h.value).append("\r\n");
  const uint16_t status = reply.status ? reply.status : 403;
  const char* cause = reply.cause.empty() ? "filter-denied" : reply.cause.c_str();
  const bool close_conn = ex_->has_body && !ex_->request_done;
  if (!reply.error) {
    // A redirect: no x-berth-error, no error text; the cause goes to the record only. HSTS as
    // for any local reply.
    const bool keep = local_reply_keeps(close_conn);
    if (hsts_applies()) append_hsts(extra);
    std::string* out = worker()->acquire_string();
    http::build_local_reply(status, {}, !keep, extra, *out, ex_->method_head);
    send_local_reply(out, status, cause, keep);
    return;
  }
  if (!reply.own_body) {
    local_reply(status, cause, close_conn, extra);
    return;
  }
  const bool keep = local_reply_keeps(close_conn);
  std::string* out = worker()->acquire_string();
  std::string headers = "x-berth-error: ";
  headers.append(cause).append("\r\n").append(extra);
  if (hsts_applies()) append_hsts(headers);
  http::build_local_response(status, reply.content_type.empty() ? "text/plain; charset=utf-8" : reply.content_type,
                             reply.body, !keep, headers, *out, ex_->method_head);
  send_local_reply(out, status, cause, keep);
}

void ClientConn::forward_request() {
  const http::RequestHead& req = ex_->req;
  const Route* route = ex_->route;
  const Runtime& rt = *ex_->rt;
  ex_->body_limit = route->max_body_bytes;
  if (ex_->body_limit && req.framing == http::Framing::kContentLength && req.content_length > ex_->body_limit) {
    worker()->stats().add(Counter::kRequestsRejected);
    local_reply(413, "body-too-large", true);
    return;
  }

  // The selection key needs the head, which is gone once this function returns (retries).
  const config::ServicePolicy& policy = rt.routes->service(ex_->service).policy;
  ex_->pick_key = make_pick_key(req, policy.lb, ex_->client.text());
  // Keep a copy of a small body only when a retry could need it: one after a reset, which
  // only an idempotent method (or any, with retry.non_idempotent) gets. With attempts: 1 too:
  // the re-send after a stale pooled connection does not count among them.
  bool keep_body = ex_->has_body && (policy.retry.non_idempotent || is_idempotent(req.method));
  uint64_t keep_bound = keep_body ? policy.retry.replay_body_bytes : 0;
  // A mirror copy takes the body from the same copy (up to mirror.max_body).
  if (route->mirror && choose_mirror(req) && ex_->has_body) {
    keep_body = true;
    keep_bound = std::max(keep_bound, route->mirror->max_body);
  }
  if (keep_body) {
    ex_->replay.start(keep_bound,
                      req.framing == http::Framing::kContentLength ? req.content_length : ReplayBuffer::kUnknownLength);
  }

  const std::string_view request_id =
      ex_->request_id[0] ? std::string_view(ex_->request_id, sizeof ex_->request_id) : std::string_view();
  const HeaderEdits& edits = ex_->filters.edits();
  char peer_text[PeerIp::kTextMax];  // the hop appended to X-Forwarded-For
  const ConnectionInfo& facts = conn();  // one call: the reference lasts until the next
  http::ForwardInfo info{facts.peer_ip.format(peer_text), facts.scheme, facts.local_port, request_id,
                         edits.empty() ? nullptr : &edits};
  // X-Forwarded-For: the entries trusted proxies vouched for (none from an untrusted peer: what
  // a client claims for itself is dropped), then the peer.
  std::string chain;
  if (ex_->xff_used > 0) {
    std::vector<std::string_view> xff;
    collect_forwarded_for(req, xff);
    append_forwarded_tail(xff, ex_->xff_used, chain);
  }
  info.own_chain = true;
  info.chain = chain;
  info.peer_trusted = ex_->peer_trusted;
  http::build_upstream_request(req, info, ex_->upstream_head);
  // Past this point the raw head is no longer needed: only scalars copied above are used.
  ex_->request_done = ex_->head_only;  // fully read (not yet sent)
  if (ex_->mirror && ex_->request_done) launch_mirror();
  phase_ = Phase::kUpstream;
  stop_timer();
  choose_upstream();
}

bool ClientConn::choose_mirror(const http::RequestHead& req) {
  const Route& route = *ex_->route;
  if (!worker()->mirror_chosen(*ex_->rt->routes, route)) return false;
  const RouteMirror& mirror = *route.mirror;
  if (ex_->upgrade || (req.framing == http::Framing::kContentLength && req.content_length > mirror.max_body)) {
    count_mirror(*worker(), *ex_->rt->routes, route, MirrorResult::kSkipped);
    return false;
  }
  const Service& shadow = ex_->rt->routes->service(mirror.service);
  ex_->mirror_key = make_pick_key(req, shadow.policy.lb, ex_->client.text());
  ex_->mirror = true;
  return true;
}

// The whole request has been read: the copy is the head as sent upstream and the body kept so
// far, framed as the head says (a chunked body as one chunk and the last chunk).
void ClientConn::launch_mirror() {
  ex_->mirror = false;
  const Route& route = *ex_->route;
  if (!ex_->replay.replayable() || ex_->replay.seen() > route.mirror->max_body) {
    count_mirror(*worker(), *ex_->rt->routes, route, MirrorResult::kSkipped);
    return;
  }
  std::string request;
  request.reserve(ex_->upstream_head.size() + ex_->replay.seen() + 32);
  request.append(ex_->upstream_head);
  if (ex_->req_framing != http::Framing::kNone)
    ex_->replay.append_framed(ex_->req_framing == http::Framing::kChunked, /*body_complete=*/true, request);
  send_mirror(*worker(), ex_->rt, route, ex_->mirror_key, ex_->method_head, std::move(request));
}

// Clock reads cost a few per request: taken only while something reads the records.
int64_t ClientConn::stamp() const { return worker()->record_sink() ? static_cast<int64_t>(uv_hrtime()) : 0; }

AttemptRecord* ClientConn::current_attempt() {
  const uint8_t n = ex_ ? ex_->rec.attempt_count : 0;
  if (n == 0 || n > ExchangeRecord::kMaxAttempts) return nullptr;
  return &ex_->rec.attempts[n - 1];
}

void ClientConn::choose_upstream(int chosen) {
  const Runtime& rt = *ex_->rt;
  const uint32_t service = ex_->service;
  const Service& svc = rt.routes->service(service);
  const config::CircuitBreaker& cb = svc.policy.circuit;
  const bool body_unread = !ex_->request_done;
  auto circuit_open = [&] {
    worker()->stats().add(Counter::kCircuitOpen);
    local_reply(503, "circuit-open", body_unread, "Retry-After: 1\r\n");
  };
  if (cb.service_max_requests && svc.counters &&
      svc.counters->requests.load(std::memory_order_relaxed) >= cb.service_max_requests) {
    circuit_open();
    return;
  }
  bool blocked = false;
  int idx = chosen >= 0 ? chosen : worker()->pick_endpoint(rt, service, ex_->pick_key, ex_->tried, ex_->tried_count, &blocked);
  if (idx < 0) {
    if (blocked) circuit_open();
    else local_reply(503, "no-endpoint", body_unread, "Retry-After: 1\r\n");
    return;
  }
  const Endpoint& ep = svc.endpoints[static_cast<size_t>(idx)];
  ex_->endpoint = idx;
  if (ex_->rec.attempt_count < ExchangeRecord::kMaxAttempts) {
    AttemptRecord& a = ex_->rec.attempts[ex_->rec.attempt_count];
    a.instance = ep.key;
    a.container = instance_container(ep);
    a.endpoint_index = static_cast<uint32_t>(idx);
    a.start_ns = stamp();
  }
  if (ex_->rec.attempt_count < 255) ++ex_->rec.attempt_count;
  if (ex_->tried_count < std::size(ex_->tried)) ex_->tried[ex_->tried_count++] = static_cast<uint32_t>(idx);
  if (svc.policy.lb.policy == config::LoadBalancing::Policy::kSticky) {
    ex_->sticky_id = instance_id(svc.name, ep.key);
    ex_->set_cookie = !ex_->pick_key.has_sticky || ex_->pick_key.sticky != ex_->sticky_id;
  }
  EndpointPool* pool = worker()->endpoint_pool(rt, service, idx);
  worker()->begin_attempt(ex_, ep, pool);
  if (UpstreamConn* u = ex_->fresh_connection ? nullptr : pool->take_idle()) {
    if (AttemptRecord* a = current_attempt()) {
      a->reused = true;
      a->connected_ns = a->start_ns;
    }
    upstream_ = u;
    u->attach(this);
    send_request_head();
    return;
  }
  // A new connection: only within the pending-connect limits.
  if ((cb.max_pending && ep.health && ep.health->pending.load(std::memory_order_relaxed) >= cb.max_pending) ||
      (cb.service_max_pending && svc.counters &&
       svc.counters->pending.load(std::memory_order_relaxed) >= cb.service_max_pending)) {
    circuit_open();
    return;
  }
  worker()->begin_connect(ex_);
  auto* u = UpstreamConn::create(worker(), pool);
  upstream_ = u;
  u->connect(this, static_cast<uint64_t>(rt.timeouts.upstream_connect.count()));
}

void ClientConn::on_upstream_connected(UpstreamConn* u) {
  if (u != upstream_) return;
  if (ex_) worker()->end_connect(ex_);
  if (AttemptRecord* a = current_attempt()) a->connected_ns = stamp();
  send_request_head();
}

void ClientConn::send_request_head() {
  // request_done currently means "fully read from the client"; it becomes "fully forwarded"
  // once the head is written.
  const bool body_complete = ex_->request_done;
  upstream_->begin_exchange(ex_->method_head, ex_->upgrade ? &ex_->upgrade_protocol : nullptr);
  // A retry sends again, from the kept copy, the part of the body already read from the client
  // (retry_elsewhere made sure it was kept whole); the rest streams on from the client.
  const bool chunked = ex_->req_framing == http::Framing::kChunked;
  bool written;
  if (ex_->replay.seen() == 0 && !(chunked && ex_->body.complete())) {
    written = upstream_->write_copy(ex_->upstream_head);
  } else if (!chunked) {
    written = upstream_->write_copy2(ex_->upstream_head, ex_->replay.bytes());  // the copy as it is
    log::debug("request_body_replayed").kv("endpoint", upstream_->pool()->key()).kv("bytes", ex_->replay.seen());
  } else {
    // Framed again as one chunk (plus the last chunk once the body is complete).
    std::string* body = worker()->acquire_string();
    ex_->replay.append_framed(chunked, ex_->body.complete(), *body);
    written = upstream_->write_copy2(ex_->upstream_head, *body);
    worker()->release_string(body);
    log::debug("request_body_replayed").kv("endpoint", upstream_->pool()->key()).kv("bytes", ex_->replay.seen());
  }
  if (!written) return;  // failure is reported via callbacks
  ex_->head_sent = true;
  const uint64_t response_timeout = static_cast<uint64_t>(ex_->rt->timeouts.upstream_response.count());
  if (body_complete) {
    // An upgrade waits for its 101 (or a final answer) as long as any request; the tunnel then
    // has tunnel_idle.
    upstream_->request_complete(response_timeout);
    if (ex_->upgrade) return;  // what the client sends next is the tunnel's: read after the 101
    update_reading();
    return;
  }
  ex_->request_done = false;
  const uint64_t t = now();
  // A retry keeps the deadline the body started with.
  if (ex_->body_deadline == 0) ex_->body_deadline = t + static_cast<uint64_t>(ex_->rt->timeouts.request_body.count());
  ex_->last_body_at = t;
  if (upstream_->write_queue_bytes() > ex_->rt->limits.write_buffer_bytes) backpressured_ = true;
  arm_timer();
  resume_pending();
}

bool ClientConn::feed_request_body(Block* block, const char*& data, size_t& len) {
  ex_->body_block = block;
  ex_->last_body_at = now();
  Exchange* ex = ex_;
  MessageParser::Result r = ex_->body.feed(data, len);
  ex->rec.bytes_in += r.state == MessageParser::State::kBody ? len : r.consumed;
  if (closing() || phase_ != Phase::kUpstream || !ex_) return false;
  switch (r.state) {
    case MessageParser::State::kBody:
      data += len;
      len = 0;
      return true;
    case MessageParser::State::kComplete:
    case MessageParser::State::kUpgrade:
      data += r.consumed;
      len -= r.consumed;
      finish_request_body();
      return !closing();
    case MessageParser::State::kError:
      worker()->stats().add(Counter::kRequestsRejected);
      log::debug("request_body_rejected").kv("client", conn().peer_ip.text()).kv("reason", r.reason);
      if (ex_->response_started) {
        abort_exchange(ExchangeEnd::kAborted, "bad-request");
      } else {
        release_upstream(false);
        local_reply(400, "bad-request", true);
      }
      return false;
  }
  return false;
}

void ClientConn::on_body_data(const char* data, size_t len) {
  if (!ex_ || phase_ != Phase::kUpstream || closing()) return;
  if (ex_->body_limit && ex_->body.body_bytes() > ex_->body_limit) {
    worker()->stats().add(Counter::kRequestsRejected);
    if (ex_->response_started) {
      abort_exchange(ExchangeEnd::kAborted, "body-too-large");
    } else {
      release_upstream(false);
      local_reply(413, "body-too-large", true);
    }
    return;
  }
  ex_->replay.add(data, len);
  if (!upstream_ || len == 0) return;
  if (ex_->req_framing == http::Framing::kChunked) {
    char hdr[24];
    upstream_->write_block(ex_->body_block, data, len, chunk_header(hdr, len), "\r\n");
  } else {
    upstream_->write_block(ex_->body_block, data, len);
  }
  if (upstream_ && upstream_->write_queue_bytes() > ex_->rt->limits.write_buffer_bytes) backpressured_ = true;
}

void ClientConn::finish_request_body() {
  if (ex_->mirror) launch_mirror();
  if (ex_->req_framing == http::Framing::kChunked && upstream_) upstream_->write_copy("0\r\n\r\n");
  ex_->request_done = true;
  if (upstream_) upstream_->request_complete(static_cast<uint64_t>(ex_->rt->timeouts.upstream_response.count()));
  arm_timer();
  if (ex_->response_done) finish_exchange();
}

// ------------------------------------------------------------------ response

void ClientConn::on_response_head(UpstreamConn* u, const http::ResponseHead& head) {
  if (u != upstream_ || !ex_) return;
  // The final head's time (a 103 or 100 first says nothing of how long the answer took).
  AttemptRecord* attempt = current_attempt();
  if (attempt && !attempt->first_byte_ns && (head.status >= 200 || head.status == 101)) attempt->first_byte_ns = stamp();
  std::string* out = worker()->acquire_string();
  if (head.status < 200 && head.status != 101) {
    // Interim (100, 103): passed on to HTTP/1.1 clients. The final response is the outcome: a
    // 103 before every 503 must not keep a failing instance from being ejected.
    if (ex_->version_minor >= 1) {
      http::ResponsePlan plan;
      http::build_client_response(head, plan, false, *out);
      write_copy(*out);
      ex_->rec.bytes_out += out->size();
    }
    worker()->release_string(out);
    // An instance sending interims without end waits for a client that does not read them, as
    // body bytes do.
    hold_back_if_unread(u);
    return;
  }
  if (attempt) attempt->status = head.status;
  // A 5xx is a failure at once; any other answer is a success once it is whole (a body cut
  // short by a reset or a timeout is a failure of the instance).
  if (head.status >= 500) record_outcome(true);
  else if (head.status == 101) record_outcome(false);  // a tunnel has no end that says more
  else ex_->outcome_pending = true;
  if (head.status == 101) {
    http::ResponsePlan plan;
    http::build_client_response(head, plan, true, *out);
    write_copy(*out);
    ex_->rec.bytes_out += out->size();
    ex_->rec.status = 101;
    worker()->release_string(out);
    worker()->stats().add(Counter::kResponses1xx);
    ex_->response_started = true;
    ex_->request_done = true;
    phase_ = Phase::kTunnel;
    deadline_ = now();
    arm_timer();
    resume_pending();  // bytes the client sent right after its upgrade request
    return;
  }
  const bool close_after =
      !ex_->keep_alive || draining_ || worker()->draining() || !ex_->request_done || peer_eof_;
  ex_->plan = http::plan_response(head, ex_->version_minor, close_after);
  ex_->response_chunked = ex_->plan.to_client == http::Framing::kChunked;
  ex_->plan.replace_sts = hsts_applies();
  const HeaderEdits& edits = ex_->filters.edits();
  http::build_client_response(head, ex_->plan, false, *out, edits.empty() ? nullptr : &edits);
  if (ex_->plan.replace_sts && out->size() >= 2) {
    std::string line;
    append_hsts(line);
    out->insert(out->size() - 2, line);
  }
  if (ex_->set_cookie && out->size() >= 2) {
    // Sticky: pin the client to this instance (an opaque id, not its address).
    char id[16];
    format_instance_id(ex_->sticky_id, id);
    const std::string& name = ex_->rt->routes->service(ex_->service).policy.lb.cookie;
    std::string line;
    line.reserve(name.size() + 64);
    line.append("Set-Cookie: ").append(name).append("=").append(id, sizeof id).append("; Path=/; HttpOnly\r\n");
    out->insert(out->size() - 2, line);
  }
  ex_->before_head = write_mark();
  ex_->bytes_out_before_head = ex_->rec.bytes_out;
  write_copy(*out);
  ex_->rec.bytes_out += out->size();
  ex_->rec.status = head.status;
  worker()->release_string(out);
  ex_->response_started = true;
  worker()->stats().add(status_counter(head.status));
}

void ClientConn::on_response_body(UpstreamConn* u, Block* block, const char* data, size_t len) {
  if (u != upstream_ || len == 0) return;
  if (ex_->response_chunked) {
    char hdr[24];
    const std::string_view prefix = chunk_header(hdr, len);
    ex_->rec.bytes_out += prefix.size() + 2;
    write_block(block, data, len, prefix, "\r\n");
  } else {
    write_block(block, data, len);
  }
  ex_->rec.bytes_out += len;
  hold_back_if_unread(u);
}

// More than write_buffer_bytes wait for the client: the instance is not read until the client
// has taken half of it (on_write_done). From then on, a client that takes nothing for
// keepalive_idle is cut off, as one that leaves a response's tail unread is (on_timer).
bool ClientConn::answers_fit() const {
  return write_queue_bytes() <= worker()->runtime()->limits.write_buffer_bytes;
}

void ClientConn::hold_back_if_unread(UpstreamConn* u) {
  if (closing() || u->read_paused() || answers_fit()) return;
  u->set_read_paused(true);
  if (phase_ != Phase::kUpstream) return;  // a tunnel has its own idle time
  reset_send_deadline();
  peer_acked_ = transport().peer_acked();
  arm_timer();
}

// The client took some of an answer (or one starts to wait for it): it has keepalive_idle from
// now to take more (send_wait).
void ClientConn::reset_send_deadline() {
  deadline_ = now() + static_cast<uint64_t>(worker()->runtime()->timeouts.keepalive_idle.count());
}

// For the phases whose timer waits on the client to take an answer: an idle connection with a
// response's tail, an instance held back for the client (hold_back_if_unread), the last answer
// before a close (close_after_answer). deadline_ is keepalive_idle after the last progress seen.
// At it: kDone when nothing of an answer waits any more (in Berth or in the kernel); kWaiting,
// with keepalive_idle more, when the client's TCP has acknowledged bytes since the last look (a
// write completing is not enough to see a slow steady reader: Transport::peer_acked); kStalled
// otherwise. Looked at once per keepalive_idle at most, so a cut comes between keepalive_idle
// and twice that after the last progress. kWaiting re-arms the timer.
ClientConn::SendWait ClientConn::send_wait(uint64_t t) {
  if (t >= deadline_) {
    if (write_queue_bytes() == 0 && transport().peer_outstanding() == 0) return SendWait::kDone;
    const uint64_t acked = transport().peer_acked();
    // A client still sending what Berth discards (the body after an early answer) is not
    // stalled: many send all of a request before they read.
    const bool moved = acked != peer_acked_ || discarded_input();
    peer_acked_ = acked;
    if (!moved) return SendWait::kStalled;
    reset_send_deadline();
  }
  start_timer(deadline_ - t);
  return SendWait::kWaiting;
}

// An idle connection (kept alive) or one closing after its last answer, at its timer: it closes
// once nothing is left to send or the client stalls (send_wait).
void ClientConn::close_when_sent_or_stalled(uint64_t t) {
  switch (send_wait(t)) {
    case SendWait::kWaiting:
      return;
    case SendWait::kDone:
      close();
      return;
    case SendWait::kStalled:
      cut_unsent_answer();
      close();
      return;
  }
}

// The client stopped taking an answer: logged, and the close that follows is a reset. Part of
// the answer never left, and a clean close would end a body that runs until the close
// (HTTP/1.0) as if it were whole.
void ClientConn::cut_unsent_answer() {
  log::info("response_send_timeout").kv("client", conn().peer_ip.text());
  transport().reset_on_close();
}

void ClientConn::on_response_complete(UpstreamConn* u) {
  if (u != upstream_ || !ex_) return;
  if (ex_->outcome_pending) {
    ex_->outcome_pending = false;
    record_outcome(false);
  }
  if (ex_->response_chunked) {
    write_copy("0\r\n\r\n");
    ex_->rec.bytes_out += 5;
  }
  ex_->response_done = true;
  if (!ex_->request_done) {
    // The backend answered before the request body was complete: the rest of the body can't
    // be framed any more, so neither connection can be reused.
    release_upstream(false);
    end_exchange(ExchangeEnd::kResponded);
    drop_pending();
    close_after_answer(true, true);
    return;
  }
  finish_exchange();
}

void ClientConn::finish_exchange() {
  const bool reusable = upstream_ && upstream_->reusable_after_response() && ex_->request_done;
  release_upstream(reusable);
  const bool close_client =
      ex_->plan.close_client || !ex_->keep_alive || draining_ || peer_eof_ || worker()->draining();
  end_exchange(ExchangeEnd::kResponded);
  // A client that pipelined more requests must get to read this response before the reset
  // that closing with unread data would send.
  after_response(close_client, pending_block_ != nullptr);
}

void ClientConn::after_response(bool close_client, bool linger, bool uploading) {
  backpressured_ = false;
  if (close_client) {
    drop_pending();
    close_after_answer(linger, uploading);
    return;
  }
  phase_ = Phase::kIdle;
  kept_alive_ = true;
  reset_send_deadline();
  arm_timer();
  worker()->on_client_idle();
  // Pipelined requests after this one: those waiting as pending input are taken now, once
  // this response has gone to the socket (a client that reset the connection fails that write,
  // and none of them is sent on to an instance), unless more than write_buffer_bytes of answers
  // still wait for the client: a client that pipelines and never reads would have every answer
  // made and held. Those are taken from on_write_done as the client reads. The rest are picked
  // up by the caller's loop (process_input).
  if (pending_block_) {
    if (!flush_writes()) {
      close();
      return;
    }
    if (!answers_fit()) {
      update_reading();
      return;
    }
  }
  resume_pending();
}

void ClientConn::close_between_requests() {
  // FIN after the last response, then a moment of reading and discarding: a request the client
  // sends meanwhile must not turn the close into a reset that destroys what the kernel still
  // holds of that response.
  close_after_answer(true);
}

// The last answer goes out, then the connection closes. While it waits for a client that does
// not read, keepalive_idle without progress cuts it, as between requests (on_timer).
void ClientConn::close_after_answer(bool linger, bool uploading) {
  drop_pending();
  phase_ = Phase::kClosing;
  linger_on_close_ = linger;
  set_discard_window(uploading);
  close_after_flush();
  if (closing() || lingering_) return;
  update_reading();  // lingering: what the client still sends is read and discarded meanwhile
  reset_send_deadline();
  arm_timer();
}

// open: the answer came while the request's body was still coming (an instance that answers
// early, a 413, a refusal): for kDiscardMaxS from now, input read and discarded on the closing
// connection counts as the client moving (discarded_input()), for a client that sends all of
// its request before it reads. Else (a bad or slow head, an answer after the whole request)
// it never does: what comes is discarded, and the linger ends kLingerMs after the answer.
void ClientConn::set_discard_window(bool open) {
  discard_until_s_ = static_cast<uint32_t>(now() / 1000) + (open ? kDiscardMaxS : 0);
  input_moved_ = false;
}

// Whether input was discarded since the last look, within the window; clears the mark. A
// drain does not wait on it: the answer has gone, only the upload's end is awaited.
bool ClientConn::discarded_input() {
  const bool moved = input_moved_ && !draining_ && now() / 1000 < discard_until_s_;
  input_moved_ = false;
  return moved;
}

void ClientConn::on_upstream_failed(UpstreamConn* u, UpstreamFailure why, bool any_response_bytes) {
  if (u != upstream_) return;
  upstream_ = nullptr;
  if (!ex_) {
    close();
    return;
  }
  worker()->end_connect(ex_);
  if (phase_ == Phase::kTunnel) {
    close_after_flush();
    return;
  }
  if (AttemptRecord* a = current_attempt()) a->failure = reply_for(why).cause;
  if (ex_->outcome_pending) {
    ex_->outcome_pending = false;
    record_outcome(true);
  }
  if (ex_->response_started) {
    if (!retract_to(ex_->before_head)) {
      // Part of the response is already with the client: all that is left is to cut it short.
      log::warn("upstream_failed_mid_response").kv("endpoint", u->pool()->key()).kv("client", conn().peer_ip.text());
      abort_exchange(ExchangeEnd::kAborted, reply_for(why).cause);
      return;
    }
    // The head has not left yet: it came with the bytes that broke (a first chunk with bad
    // framing, a reset) in one read. The client gets the error reply in its place, not an empty
    // reply; no retry, since the instance answered.
    worker()->stats().take_back(status_counter(ex_->rec.status));
    ex_->rec.status = 0;
    ex_->rec.bytes_out = ex_->bytes_out_before_head;
    ex_->response_started = ex_->response_chunked = false;
  } else {
    // A pooled connection the server had closed says nothing about the instance's health.
    const bool stale_pooled = why == UpstreamFailure::kResetBeforeResponse && u->reused() && !any_response_bytes;
    if (!stale_pooled) record_outcome(true);
    if (retry_elsewhere(u, why, any_response_bytes)) return;
  }
  ErrorReply r = reply_for(why);
  log::warn("upstream_error")
      .kv("endpoint", u->pool()->key())
      .kv("route", ex_->route ? ex_->route->name : std::string())
      .kv("status", r.status)
      .kv("cause", r.cause);
  local_reply(r.status, r.cause, !ex_->request_done);
}

// Retries (see README, "Retries"): a failed connect sent nothing of this attempt, so any
// request may go to another instance. A reset before any response byte (or, with
// retry.on_response_timeout, no response head in time) may come after the instance saw the
// request: only idempotent methods (or any with retry.non_idempotent). Either
// way the body bytes already read from the client (streamed to a failed instance) must go
// again: only when all of them were kept (ReplayBuffer, up to retry.replay_body_bytes); a body
// still unread in the client socket or pending needs nothing. Never once response bytes
// reached the client (the caller checks).
bool ClientConn::retry_elsewhere(UpstreamConn* u, UpstreamFailure why, bool any_response_bytes) {
  const Service& svc = ex_->rt->routes->service(ex_->service);
  const config::RetryPolicy& policy = svc.policy.retry;
  // A reset on a reused connection before any response byte: the instance had closed it while it
  // was pooled, which says nothing about the instance. The request goes to it again on a new
  // connection (which cannot be stale: at most once per try), as a re-send that neither counts
  // among `attempts` nor waits for the retry budget. A timeout never says "stale": the instance
  // is slow, and sending it the request again would run it twice there.
  const bool stale_pooled = why == UpstreamFailure::kResetBeforeResponse && u->reused();
  const uint32_t counted = ex_->rec.attempt_count - ex_->stale_resends;  // tries `attempts` counts
  if (any_response_bytes || (!stale_pooled && counted >= policy.attempts))
    return false;
  const bool connect_failed = why == UpstreamFailure::kConnectRefused || why == UpstreamFailure::kConnectTimeout ||
                              why == UpstreamFailure::kTlsFailed;
  if (!connect_failed) {
    const bool timed_out = why == UpstreamFailure::kResponseTimeout && policy.on_response_timeout;
    if (why != UpstreamFailure::kResetBeforeResponse && !timed_out) return false;
    const std::string_view method = std::string_view(ex_->upstream_head).substr(0, ex_->upstream_head.find(' '));
    if (!policy.non_idempotent && !is_idempotent(method)) return false;
  }
  // (A mirror may keep a larger copy than the retry policy allows: beyond it, no retry.)
  if (!ex_->replay.replayable() || ex_->replay.seen() > policy.replay_body_bytes) {
    log::debug("retry_body_not_kept").kv("endpoint", u->pool()->key()).kv("body_bytes", ex_->replay.seen());
    return false;
  }
  if (!stale_pooled && !worker()->retry_allowed(svc)) {
    worker()->stats().add(Counter::kRetryBudgetExhausted);
    return false;
  }
  // Another instance; none: the client gets the original error, not a 503. A re-send goes to the
  // same instance while the configuration running now still lists it in the service (a reload
  // may have taken it out: then to another it lists, as a retry would).
  int next = ex_->endpoint;
  if (!stale_pooled || !worker()->still_listed(*ex_->rt, ex_->service, ex_->endpoint)) {
    bool blocked = false;
    next = worker()->pick_endpoint(*ex_->rt, ex_->service, ex_->pick_key, ex_->tried, ex_->tried_count, &blocked);
    // Nothing routable left (a new instance that does not listen yet, the others ejected):
    // an instance ejected for its past answers rather than a certain error.
    if (next < 0 && !blocked) {
      next = worker()->pick_ejected(*ex_->rt, ex_->service, ex_->tried, ex_->tried_count);
      if (next >= 0) log::debug("retry_to_ejected").kv("endpoint", ex_->rt->routes->service(ex_->service).endpoints[next].key);
    }
    if (next < 0) return false;
  }
  worker()->stats().add(Counter::kUpstreamRetries);
  worker()->end_attempt(ex_);
  if (stale_pooled) {
    ++ex_->stale_resends;
  } else {
    worker()->on_retry_started(ex_);
  }
  ex_->fresh_connection = stale_pooled;
  ex_->head_sent = false;
  backpressured_ = false;  // that was the failed connection's write queue
  if (ex_->req_framing == http::Framing::kNone) ex_->request_done = true;
  choose_upstream(next);
  return true;
}

// Passive health: one exchange's outcome for its instance (may eject it).
void ClientConn::record_outcome(bool failed) {
  if (!ex_ || !ex_->route || ex_->endpoint < 0) return;
  const Service& svc = ex_->rt->routes->service(ex_->service);
  const auto index = static_cast<size_t>(ex_->endpoint);
  if (!failed) {
    record_success(svc.endpoints[index]);
    return;
  }
  if (record_failure(svc, index, health_clock_ms())) {
    worker()->stats().add(Counter::kOutlierEjections);
    log::warn("outlier_ejected")
        .kv("service", svc.name)
        .kv("endpoint", svc.endpoints[index].key)
        .kv("ejections", static_cast<uint64_t>(svc.endpoints[index].health->ejections.load()));
  }
}

void ClientConn::on_tunnel_data(UpstreamConn* u, Block* block, const char* data, size_t len) {
  if (u != upstream_) return;
  deadline_ = now();
  if (ex_) ex_->rec.bytes_out += len;
  write_block(block, data, len);
  hold_back_if_unread(u);
}

void ClientConn::on_tunnel_closed(UpstreamConn* u, bool eof) {
  if (u != upstream_) return;
  if (eof && !peer_eof_) {
    // The instance is done sending: its FIN follows what it sent to the client, whose bytes
    // still go to the instance until the client ends too.
    shutdown_after_flush();
    return;
  }
  upstream_ = nullptr;
  if (eof) u->end_tunnel();  // the client had ended first: both directions are done
  close_after_flush();
}

void ClientConn::on_upstream_writable(UpstreamConn* u) {
  if (u != upstream_ || !backpressured_) return;
  backpressured_ = false;
  if (pending_block_) resume_pending();
  else update_reading();
}

void ClientConn::on_write_done(int status) {
  if (status < 0) return;  // the stream closes
  if (phase_ == Phase::kIdle) {
    // The last response's tail is leaving: the idle time runs from its last progress, so that
    // a slow reader is not cut while it reads (one that reads nothing for keepalive_idle is).
    reset_send_deadline();
    if (pending_block_) {  // a pipelined request held back while the answers before it wait
      if (answers_fit()) resume_pending();
      return;
    }
    update_reading();  // reading may have stopped for the same reason (update_reading)
    if (kept_alive_ && idle()) {
      // All of it is with the socket: a drain that left the connection for its tail closes it
      // now, and a full worker may take it for a new connection.
      if (draining_) close_between_requests();
      else worker()->on_client_idle();
    }
    return;
  }
  if (phase_ == Phase::kHead) {  // reading may have stopped for the answers before this head
    update_reading();
    return;
  }
  if (phase_ == Phase::kClosing) {  // the last answer's write made progress (close_after_answer)
    reset_send_deadline();
    input_moved_ = false;  // counted by this progress already
    return;
  }
  if (!upstream_ || !ex_) return;
  if (phase_ == Phase::kUpstream) reset_send_deadline();  // the response's write made progress
  if (write_queue_bytes() <= worker()->runtime()->limits.write_buffer_bytes / 2) upstream_->set_read_paused(false);
}

// ------------------------------------------------------------------ replies, closing

// Strict-Transport-Security goes on every response of a route with `hsts` sent over TLS: proxied,
// local, and a filter's own answer alike.
bool ClientConn::hsts_applies() { return ex_ && ex_->route && !ex_->route->hsts.empty() && conn().tls; }

void ClientConn::append_hsts(std::string& headers) const {
  headers.append("Strict-Transport-Security: ").append(ex_->route->hsts).append("\r\n");
}

bool ClientConn::local_reply_keeps(bool close_conn) const {
  return !close_conn && ex_ && ex_->keep_alive && !draining_ && !peer_eof_ && !worker()->draining();
}

void ClientConn::local_reply(uint16_t status, const char* cause, bool close_conn, std::string_view extra) {
  const bool keep = local_reply_keeps(close_conn);
  std::string* out = worker()->acquire_string();
  std::string* hsts = nullptr;
  if (hsts_applies()) {
    hsts = worker()->acquire_string();
    hsts->append(extra);
    append_hsts(*hsts);
    extra = *hsts;
  }
  http::build_local_reply(status, cause, !keep, extra, *out, ex_ && ex_->method_head);
  if (hsts) worker()->release_string(hsts);
  send_local_reply(out, status, cause, keep);
}

// Sends a local reply built in `out` (a worker string, released here) and ends the exchange.
void ClientConn::send_local_reply(std::string* out, uint16_t status, const char* cause, bool keep) {
  // An HTTP/1.0 client keeps the connection only when the response says so.
  if (keep && ex_ && ex_->version_minor == 0)
    if (size_t end = out->find("\r\n\r\n"); end != std::string::npos) out->insert(end + 2, "Connection: keep-alive\r\n");
  write_copy(*out);
  worker()->stats().add(Counter::kLocalReplies);
  worker()->stats().add(status_counter(status));
  release_upstream(false);
  // A body still coming: a client that sends all of it before it reads gets to read this
  // (not one cut for sending it too slowly).
  const bool uploading = ex_ && !ex_->request_done && ex_->req_framing != http::Framing::kNone && status != 408;
  if (ex_) {
    ex_->rec.bytes_out += out->size();
    ex_->rec.status = status;
    ex_->rec.cause = cause;
    end_exchange(ExchangeEnd::kLocalReply);
  }
  worker()->release_string(out);
  after_response(!keep, true, uploading);  // closing: the rest of the request may still be on its way
}

void ClientConn::release_upstream(bool reusable) {
  if (!upstream_) return;
  UpstreamConn* u = upstream_;
  upstream_ = nullptr;
  u->release(reusable);
}

void ClientConn::abort_exchange(ExchangeEnd end, const char* cause) {
  if (ex_) {
    ex_->close_end = end;
    if (*cause) ex_->rec.cause = cause;
  }
  release_upstream(false);
  close();
}

void ClientConn::on_flushed_shutdown() {
  if (!linger_on_close_) {
    // Bytes the client sent that Berth never read would turn close() into a reset.
    if (transport().has_unread_input()) linger_on_close_ = true;
  }
  if (linger_on_close_) linger();
  else close();
}

// After a final response on a closing connection: keep reading (and discarding) for a moment,
// so that unread request bytes in the kernel don't turn our close into a reset that destroys
// the response before the client has read it.
void ClientConn::linger() {
  if (peer_eof_) {
    close();
    return;
  }
  if (phase_ != Phase::kClosing) {  // not through close_after_answer
    drop_pending();
    phase_ = Phase::kClosing;
    set_discard_window(false);
  }
  lingering_ = true;
  start_timer(kLingerMs);
  set_reading(true);
}

void ClientConn::update_reading() {
  bool want = false;
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kHead:
      // A request is read only while the answers before it that wait for the client fit in
      // write_buffer_bytes: a client pipelining requests that Berth answers itself (a 404, a
      // redirect), and reading nothing, must not have all of them answered and held. (Input
      // ends mid-head more often than not: the head being read is held back too.)
      want = pending_block_ == nullptr && answers_fit();
      break;
    case Phase::kUpstream:
      // Keep reading even while the response is awaited: stopping and restarting would cost two
      // epoll_ctl calls per request. Early bytes (a pipelined request) are kept pending, and
      // reading stops only then.
      want = !backpressured_ && pending_block_ == nullptr && !peer_eof_;
      break;
    case Phase::kTunnel:
      want = !backpressured_ && upstream_ != nullptr && !peer_eof_;
      break;
    case Phase::kClosing:
      // Lingering, or the last answer still going out while the rest of the request may come.
      want = !peer_eof_ && (lingering_ || linger_on_close_);
      break;
  }
  set_reading(want);
}

void ClientConn::arm_timer() {
  const Runtime& rt = *worker()->runtime();
  const uint64_t t = now();
  uint64_t due = 0;
  switch (phase_) {
    case Phase::kIdle:
    case Phase::kHead:
      due = deadline_;
      break;
    case Phase::kUpstream:
      if (ex_ && ex_->request_done && upstream_ && upstream_->read_paused()) {
        due = deadline_;  // send_wait
        break;
      }
      if (!ex_ || !ex_->head_sent || ex_->request_done) {
        stop_timer();
        return;
      }
      due = std::min(ex_->body_deadline,
                     ex_->last_body_at + static_cast<uint64_t>(rt.timeouts.request_body_idle.count()));
      break;
    case Phase::kTunnel:
      due = deadline_ + static_cast<uint64_t>(rt.timeouts.tunnel_idle.count());
      break;
    case Phase::kClosing:
      if (lingering_) return;  // its own time (linger)
      due = deadline_;           // the last answer waits for the client (send_wait)
      break;
  }
  start_timer(due > t ? due - t : 0);
}

void ClientConn::on_timer() {
  const Runtime& rt = *worker()->runtime();
  const uint64_t t = now();
  switch (phase_) {
    case Phase::kIdle:
      if (!kept_alive_) {
        // A fresh connection sends its first request within request_header, whatever else
        // moves (TLS key updates are not an answer being read).
        if (t >= deadline_) close();
        else arm_timer();
        return;
      }
      // A client still reading a response's tail is not cut: closing would lose keep-alive,
      // and a request it sends meanwhile would turn the close into a reset that cuts the tail.
      close_when_sent_or_stalled(t);
      return;
    case Phase::kHead:
      if (t >= deadline_) {
        worker()->stats().add(Counter::kRequestsRejected);
        log::debug("request_header_timeout").kv("client", conn().peer_ip.text());
        if (ex_) ex_->rec.note_unparsed_method(ex_->head_reader.pending());
        local_reply(408, "request-header-timeout", true);
      } else {
        arm_timer();
      }
      return;
    case Phase::kUpstream: {
      if (ex_ && ex_->request_done && upstream_ && upstream_->read_paused()) {
        // The instance waits on a client that has taken nothing of the response for
        // keepalive_idle: both connections are freed.
        if (send_wait(t) != SendWait::kWaiting) {
          cut_unsent_answer();
          abort_exchange(ExchangeEnd::kAborted, "response-send-timeout");
        }
        return;
      }
      if (!ex_ || ex_->request_done || !ex_->head_sent) return;
      const uint64_t idle_due = ex_->last_body_at + static_cast<uint64_t>(rt.timeouts.request_body_idle.count());
      if (t >= ex_->body_deadline || t >= idle_due) {
        if (backpressured_ && upstream_) {
          // Berth stopped reading the body because the instance took too little of what it was
          // sent. An instance still reading (its TCP acknowledged bytes since the last look)
          // gets request_body_idle again; one that stalled is given up (504, counted against
          // it), not the client (408).
          const uint64_t acked = upstream_->transport().peer_acked();
          if (acked != ex_->upstream_acked && t < ex_->body_deadline) {
            ex_->upstream_acked = acked;
            ex_->last_body_at = t;
            arm_timer();
            return;
          }
          log::info("upstream_send_timeout").kv("endpoint", upstream_->pool()->key());
          upstream_->give_up(UpstreamFailure::kSendTimeout);
          return;
        }
        worker()->stats().add(Counter::kRequestsRejected);
        log::info("request_body_timeout").kv("client", conn().peer_ip.text());
        if (ex_->response_started) {
          abort_exchange(ExchangeEnd::kAborted, "request-body-timeout");
        } else {
          release_upstream(false);
          local_reply(408, "request-body-timeout", true);
        }
      } else {
        arm_timer();
      }
      return;
    }
    case Phase::kTunnel:
      if (t >= deadline_ + static_cast<uint64_t>(rt.timeouts.tunnel_idle.count())) {
        release_upstream(false);
        close();
      } else {
        arm_timer();
      }
      return;
    case Phase::kClosing:
      if (!lingering_) {
        close_when_sent_or_stalled(t);
      } else if (discarded_input()) {
        start_timer(kLingerMs);  // the client is still sending: it may read the answer after
      } else {
        close();
      }
      return;
  }
}

// An answer cut short (the instance failed or stalled mid-body, the end of a drain): the close
// is a reset. A clean close would end a body that runs until the close (HTTP/1.0) as if it
// were whole, for the client and for any cache between.
void ClientConn::on_closing() {
  if (ex_ && ex_->response_started && !ex_->response_done && phase_ != Phase::kTunnel) transport().reset_on_close();
}

void ClientConn::on_closed() {
  release_upstream(false);
  // A head cut off by the client's leaving: named by the method its bytes start with.
  if (ex_ && phase_ == Phase::kHead && !ex_->rec.head_parsed) ex_->rec.note_unparsed_method(ex_->head_reader.pending());
  if (ex_) end_exchange(phase_ == Phase::kTunnel ? ExchangeEnd::kTunnelClosed : ex_->close_end);
  drop_pending();
  worker()->on_client_closed(this);
}

}  // namespace berth
