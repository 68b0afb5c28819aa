// One downstream (client) connection and the exchange it is carrying. Requests on a connection
// are served one at a time, in order: pipelined bytes wait, unparsed, until the response before
// them is complete. An idle keep-alive connection holds no buffer and no exchange.
#pragma once

#include <memory>
#include <string>

#include "proxy/base/slot_pool.h"
#include "proxy/filter/filter.h"
#include "proxy/http/head_reader.h"
#include "proxy/http/http_head.h"
#include "proxy/http/http_rewrite.h"
#include "proxy/lb/lb.h"
#include "proxy/http/message_parser.h"
#include "proxy/http/replay_buffer.h"
#include "proxy/datapath/runtime.h"
#include "proxy/net/client_address.h"
#include "proxy/net/stream.h"
#include "proxy/record/exchange_record.h"
#include "proxy/datapath/upstream.h"

namespace berth {

class TcpTransport;
class Worker;

// Per-request state, borrowed from the worker from the first byte of a request head until the
// exchange ends (ClientConn::end_exchange, the one place that finalises its record).
struct Exchange {
  RuntimeRef rt;                        // the snapshot this request started with
  HeadReader head_reader;               // the request head, while it arrives
  const Route* route = nullptr;
  uint32_t service = 0;                 // route->service, or the one its split chose for this request
  int endpoint = -1;
  http::RequestHead req;
  // Who the request came from (proxy/net/client_address.h): the peer, or the client a trusted
  // proxy named; xff_used: the X-Forwarded-For entries walked to find it (kept upstream).
  ClientAddress client;
  uint32_t xff_used = 0;
  bool peer_trusted = false;            // the peer is in trusted_proxies
  ExchangeRecord rec;                   // what happened, for the record sink
  ExchangeEnd close_end = ExchangeEnd::kClientClosed;  // the ending if the connection closes now
  FilterRun filters;                    // the route's filter chain for this request
  std::string held_head;                // the head, kept while a filter is pending
  bool head_only = false;               // the head held no body bytes still to come
  MessageParser body;                   // request body framing
  Block* body_block = nullptr;          // the read block body bytes are fed from (zero-copy)
  ReplayBuffer replay;                  // the body read so far, while small enough to replay
  std::string upstream_head;            // kept until the response starts, for a safe retry
  http::ResponsePlan plan;
  uint64_t body_limit = 0;              // 0 = unlimited
  uint64_t body_deadline = 0;           // loop ms
  uint64_t last_body_at = 0;
  uint64_t upstream_acked = 0;          // the instance's acknowledged bytes at the last look (body timer)
  uint8_t version_minor = 1;
  http::Framing req_framing = http::Framing::kNone;
  bool keep_alive = true;
  bool method_head = false;
  bool upgrade = false;
  std::string upgrade_protocol;         // upgrade: what the client's Upgrade offers
  bool head_sent = false;               // upstream_head written to the current upstream
  bool has_body = false;                // the request declares a body
  bool request_done = false;            // whole request forwarded
  bool response_started = false;        // final response head written to the client
  Stream::WriteMark before_head;        // where the client's output stood before that head
  uint64_t bytes_out_before_head = 0;
  bool response_done = false;
  bool outcome_pending = false;         // a non-5xx answer's body is on its way: its end is the outcome
  bool response_chunked = false;        // re-framing the body as chunks for the client
  char request_id[32];                  // generated; a NUL first byte: the client's own goes on
  // Load balancing, retries and circuit breaking (Worker::begin_attempt / end_attempt).
  PickKey pick_key;                     // computed from the request head (hash / sticky cookie)
  uint32_t tried[config::RetryPolicy::kMaxAttempts];  // endpoints already tried, for retries elsewhere
  uint8_t tried_count = 0;
  EndpointPool* attempt_pool = nullptr; // set while an attempt is counted
  bool connecting = false;              // counted as a pending connect
  bool is_retry = false;                // counted in the worker's retries in flight
  bool fresh_connection = false;        // retry on the same instance: not on a pooled connection
  uint8_t stale_resends = 0;            // tries re-sent after a stale pooled connection (not counted as attempts)
  bool set_cookie = false;              // sticky: (re-)pin the cookie on the response
  uint64_t sticky_id = 0;
  uint32_t split_target = UINT32_MAX;   // split routes: the target chosen (index into split->targets)
  // Request mirroring: a copy is owed once the whole request is read (cleared when it goes).
  bool mirror = false;
  PickKey mirror_key;                   // for the shadow service's balancer
  void reset();
};

class ClientConn final : public Stream, private UpstreamClient, private BodySink, private FilterRunOwner {
 public:
  // Connections serve accepted sockets. Worker-owned: the worker's IoContext lists each with its
  // other streams.
  // A plain TCP connection on accepted socket `fd`: the connection and its TcpTransport in one
  // slot of the worker's client slots (what every idle keep-alive connection costs). Closes fd
  // if libuv refuses it (the connection then stays unreadable and its header timeout closes it).
  static ClientConn* create_plain(Worker* worker, int fd, const sockaddr* peer, uint16_t local_port);
  // A connection over any other transport (TLS, PROXY protocol), in a slot of the same pool.
  static ClientConn* create(Worker* worker, std::unique_ptr<Transport> transport);
  // Both kinds live in the worker's SlotPool (Worker::client_slots), never on the heap.
  static size_t slot_bytes();  // what one slot must hold
  static void* operator new(size_t) = delete;
  static void* operator new(size_t, void* at) { return at; }
  static void operator delete(void* p) { SlotPool::release(p); }
  // peer_known: the transport knows the peer now (false: a PROXY header names it later, so its
  // facts are not read, and not cached by a TLS layer, before that).
  void start(bool peer_known = true);
  // Drain: close now if idle after a response; otherwise close after the current (or, on a
  // connection not yet served, the first) response.
  void drain() override;
  // Between requests with nothing to do: no input waiting, and the last response all handed to
  // the socket (a drain or a reclaim closing it then would cut the response's tail).
  bool idle() const {
    return phase_ == Phase::kIdle && pending_len_ == 0 && !(ex_ && ex_->head_reader.started()) &&
           write_queue_bytes() == 0;
  }
  // Kept alive and waiting for its next request: closed first when the worker is full.
  uint64_t reclaimable_until() const override { return kept_alive_ && idle() ? deadline_ : 0; }

 private:
  enum class Phase : uint8_t { kIdle, kHead, kUpstream, kTunnel, kClosing };

  ClientConn(Worker* worker, std::unique_ptr<Transport> transport);  // create
  ClientConn(Worker* worker, TcpTransport& embedded);  // create_plain

  // Stream
  void on_read(Block* block, ssize_t nread) override;
  void on_write_done(int status) override;
  void on_timer() override;
  void on_closed() override;
  void on_closing() override;
  void on_flushed_shutdown() override;

  // UpstreamClient
  void on_upstream_connected(UpstreamConn* u) override;
  void on_upstream_failed(UpstreamConn* u, UpstreamFailure why, bool any_response_bytes) override;
  void on_response_head(UpstreamConn* u, const http::ResponseHead& head) override;
  void on_response_body(UpstreamConn* u, Block* block, const char* data, size_t len) override;
  void on_response_complete(UpstreamConn* u) override;
  void on_tunnel_data(UpstreamConn* u, Block* block, const char* data, size_t len) override;
  void on_tunnel_closed(UpstreamConn* u, bool eof) override;
  void on_upstream_writable(UpstreamConn* u) override;

  // BodySink (request body)
  void on_body_data(const char* data, size_t len) override;

  // FilterRunOwner: a pending filter answered.
  void on_filter_done() override;

  void process_input(Block* block, size_t off, size_t len);
  void resume_pending();
  bool consume_head(Block* block, const char*& data, size_t& len);
  bool skip_empty_lines(const char*& data, size_t& len);
  void begin_exchange(int64_t read_ns);
  // The one place an exchange ends: its record is finalised and handed to the sink, and the
  // exchange goes back to the worker. Idempotent (nothing happens without an exchange).
  void end_exchange(ExchangeEnd end);
  // early_body: bytes that arrived after the head in the same read (checked, not consumed).
  void handle_request_head(std::string_view head, std::string_view early_body);
  void copy_request_details(const http::RequestHead& req);
  // Sets ex_->client from the peer and, behind a trusted proxy, the request's X-Forwarded-For.
  void resolve_client(const http::RequestHead& req);
  void record_client();
  // After the route's filters passed: forward the request to an instance.
  void forward_request();
  // routes[].mirror (proxy/datapath/mirror.h): whether this request is to be copied; and the
  // copy's sending, once the whole request has been read.
  bool choose_mirror(const http::RequestHead& req);
  void launch_mirror();
  void reply_from_filter();
  void redirect_to_https(const http::RequestHead& req);
  // 200 text/plain with the http-01 key authorization (the ACME server's validation request).
  void answer_acme_challenge(const std::string& key_authorization);
  AttemptRecord* current_attempt();
  int64_t stamp() const;  // monotonic ns for the record, 0 when no sink reads records
  // chosen: an endpoint already picked (a retry), or -1 to pick one now.
  void choose_upstream(int chosen = -1);
  bool retry_elsewhere(UpstreamConn* u, UpstreamFailure why, bool any_response_bytes);
  void record_outcome(bool failed);
  void send_request_head();
  bool feed_request_body(Block* block, const char*& data, size_t& len);
  void finish_request_body();
  void finish_exchange();
  // After the response went out (proxied or local): close (lingering if asked), or go idle and
  // take the next pipelined request.
  // uploading: the request's body was still coming (close_after_answer).
  void after_response(bool close_client, bool linger, bool uploading = false);
  // Closes a kept-alive connection between requests without losing the last response's tail.
  void close_between_requests();
  void local_reply(uint16_t status, const char* cause, bool close, std::string_view extra = {});
  // Whether a local reply leaves the connection open (close: the caller must close it).
  bool local_reply_keeps(bool close) const;
  bool hsts_applies();
  void append_hsts(std::string& headers) const;
  void send_local_reply(std::string* out, uint16_t status, const char* cause, bool keep);
  // Cuts the exchange short and closes: `end` and `cause` go into its record.
  void abort_exchange(ExchangeEnd end, const char* cause);
  void release_upstream(bool reusable);
  void update_reading();
  void arm_timer();
  void hold_back_if_unread(UpstreamConn* u);
  // What waits for the client fits in write_buffer_bytes: the instance is read, and the next
  // pipelined request taken, only then.
  bool answers_fit() const;
  enum class SendWait : uint8_t { kWaiting, kDone, kStalled };
  void reset_send_deadline();
  SendWait send_wait(uint64_t t);
  void close_when_sent_or_stalled(uint64_t t);
  void cut_unsent_answer();
  void close_after_answer(bool linger, bool uploading = false);
  void keep_pending(Block* block, const char* data, size_t len);
  void drop_pending();
  void linger();
  void set_discard_window(bool open);
  bool discarded_input();
  uint64_t ex_rt_timeout_header() const;

  // The worker is the stream's IoContext; the peer's facts stay in the transport (no copies).
  Worker* worker() const;
  const ConnectionInfo& conn() { return transport().info(); }

  Exchange* ex_ = nullptr;
  UpstreamConn* upstream_ = nullptr;
  Block* pending_block_ = nullptr;      // unprocessed input (pipelined request, early body)
  uint64_t deadline_ = 0;               // header/idle/send deadline, or last tunnel activity (loop ms)
  uint64_t peer_acked_ = 0;             // the client's acknowledged bytes at the last look (send_wait)
  union {
    uint32_t pending_len_ = 0;  // bytes of pending_block_ (every phase but kClosing)
    // kClosing: until when (loop seconds) input read and discarded counts as the client moving
    // (set_discard_window); pending input is dropped before.
    uint32_t discard_until_s_;
  };
  // Packed with the offset (blocks are 128 KiB: IoContext's pool; 21 bits reach 2 MiB, and leave
  // the 3-bit phase within one byte): every idle connection has them.
  uint32_t pending_off_ : 21 = 0;
  Phase phase_ : 3 = Phase::kIdle;
  bool peer_eof_ : 1 = false;
  bool draining_ : 1 = false;
  bool backpressured_ : 1 = false;      // upstream write queue above the bound
  bool lingering_ : 1 = false;
  bool linger_on_close_ : 1 = false;    // unread request bytes may follow: linger before close
  bool kept_alive_ : 1 = false;         // has answered a request and kept the connection
  bool input_moved_ : 1 = false;        // kClosing: input was discarded since the last look
  bool cr_carried_ : 1 = false;         // kIdle: a read ended in a CR where a request line may start
};

}  // namespace berth
