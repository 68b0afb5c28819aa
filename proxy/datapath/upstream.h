// Connections from a worker to one endpoint, and the per-worker pool of idle keep-alive ones.
// An UpstreamConn carries one exchange at a time: it is handed the request bytes by the client
// side, parses the response (strictly: a response with conflicting framing is refused and the
// connection is never reused) and streams it back through the UpstreamClient callbacks.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <string>

#include "proxy/base/slot_pool.h"
#include "proxy/http/head_reader.h"
#include "proxy/http/http_head.h"
#include "proxy/http/message_parser.h"
#include "proxy/net/stream.h"

namespace berth::tls {
class ClientContext;
class SessionSlot;
}  // namespace berth::tls

namespace berth {

class UpstreamConn;
class Worker;
struct Endpoint;
struct Service;

// Why an upstream exchange failed; decides the local reply and whether a retry is safe.
enum class UpstreamFailure : uint8_t {
  kConnectRefused,     // connect failed (502)
  kConnectTimeout,     // (504)
  kResetBeforeResponse,// closed/reset before any response byte (502; retryable if reused)
  kResponseTimeout,    // (504)
  kBadResponse,        // malformed or conflicting framing (502)
  kResetMidResponse,   // closed before the response body was complete
  kTlsFailed,          // upstream TLS handshake or certificate verification failed (502, like a connect failure)
  kSendTimeout,        // took none of the request body for request_body_idle (504; never retried)
};

// The side of an exchange that feeds an upstream connection (the client connection).
class UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;
  virtual void on_upstream_connected(UpstreamConn* u) = 0;
  virtual void on_upstream_failed(UpstreamConn* u, UpstreamFailure why, bool any_response_bytes) = 0;
  // An interim (1xx other than 101) or final response head; nothing sent to the client yet.
  virtual void on_response_head(UpstreamConn* u, const http::ResponseHead& head) = 0;
  virtual void on_response_body(UpstreamConn* u, Block* block, const char* data, size_t len) = 0;
  virtual void on_response_complete(UpstreamConn* u) = 0;
  // Tunnel mode (after 101): raw bytes, and the upstream's end of the tunnel.
  virtual void on_tunnel_data(UpstreamConn* u, Block* block, const char* data, size_t len) = 0;
  // eof: the instance ended its sending side cleanly (a half-close); the connection stays open
  // for the client's bytes, and end_tunnel() ends it. Else the connection is gone.
  virtual void on_tunnel_closed(UpstreamConn* u, bool eof) = 0;
  // The upstream's write queue fell below the bound again.
  virtual void on_upstream_writable(UpstreamConn* u) = 0;
};

class EndpointPool {
 public:
  // service: whose connections these are (its upstream TLS settings decide the transport).
  EndpointPool(Worker* worker, const Service& service, const Endpoint& endpoint);
  ~EndpointPool();
  // The worker's map key of the pool for this service's connections to this endpoint: the
  // endpoint key, and for TLS the client context too (plain and TLS connections never mix).
  static std::string pool_key(const Service& service, const Endpoint& endpoint);
  // Whether an endpoint of `a` and one of `b` with the same address have the same pool_key.
  static bool same_pool_keys(const Service& a, const Service& b);
  const std::string& key() const { return key_; }
  const std::string& map_key() const { return map_key_; }
  bool tls() const { return tls_required_; }
  const tls::ClientContext* tls_context() const { return tls_.get(); }
  const sockaddr* addr() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  // What a new connection to the endpoint travels over: plain TCP, or TLS over it (null when
  // the TLS session cannot be made: the connect then fails as kTlsFailed).
  std::unique_ptr<Transport> new_transport();

  UpstreamConn* take_idle();          // most recently used first
  void put_idle(UpstreamConn* u);     // closes it when the pool is full
  void on_conn_created();
  void on_conn_closed(UpstreamConn* u);
  void close_idle();
  uint32_t total() const { return total_; }
  uint32_t idle_count() const { return idle_count_; }
  bool in_snapshot = true;
  uint32_t active = 0;                // exchanges of this worker using the endpoint (least request)

 private:
  Worker* worker_;
  std::string key_;
  std::string map_key_;
  sockaddr_storage addr_{};
  std::shared_ptr<const tls::ClientContext> tls_;
  std::shared_ptr<tls::SessionSlot> session_;  // resumption across this pool's connections
  bool tls_required_ = false;
  UpstreamConn* idle_head_ = nullptr;
  uint32_t idle_count_ = 0;
  uint32_t total_ = 0;
  friend class UpstreamConn;
};

class UpstreamConn final : public Stream, private BodySink {
 public:
  // A new connection of `pool`, in a slot of the worker's upstream slots (Worker::upstream_slots):
  // a plain one holds its TcpTransport in the same slot. Idle pooled connections live long, so
  // they are kept apart from the heap that requests churn (see proxy/base/slot_pool.h).
  static UpstreamConn* create(Worker* worker, EndpointPool* pool);
  static size_t slot_bytes();  // what one slot must hold
  static void* operator new(size_t) = delete;
  static void* operator new(size_t, void* at) { return at; }
  static void operator delete(void* p) { SlotPool::release(p); }

  // Starts a new connection for `client`; the result arrives via on_upstream_connected/failed.
  void connect(UpstreamClient* client, uint64_t timeout_ms);
  // Takes a pooled connection for `client`.
  void attach(UpstreamClient* client);
  // The request head is about to be written; prepares response parsing. upgrade_offered: an
  // upgrade request's Upgrade value (kept by the caller until the exchange ends), else null.
  void begin_exchange(bool method_head, const std::string* upgrade_offered);
  // The whole request has been written: the response timeout starts now.
  void request_complete(uint64_t response_timeout_ms);
  // The client side gives the connection up for `why` (it is closed, and the client told
  // through on_upstream_failed as for any failure).
  void give_up(UpstreamFailure why) { fail(why); }
  // The client side is done with this connection. reusable: return it to the pool.
  void release(bool reusable);
  // The client side is done with a tunnel: what it sent goes out, then the connection closes.
  void end_tunnel();
  // Whether the instance has ended its side of the tunnel (on_tunnel_closed with eof).
  bool tunnel_eof() const { return tunnel_eof_; }
  // Forward tunnel bytes / end the tunnel from the client side.
  void set_read_paused(bool paused);
  bool read_paused() const { return read_paused_; }
  bool reused() const { return reused_; }
  bool reusable_after_response() const;
  EndpointPool* pool() const { return pool_; }
  // The instance sent bytes that answer no request (after a whole response, or while the
  // connection lay idle): it is never reused; counted (upstream_unsolicited_bytes in
  // /api/stats) and logged once. drop_unsolicited closes it as well.
  void note_unsolicited(const char* when);
  void drop_unsolicited(const char* when);

 private:
  UpstreamConn(Worker* worker, EndpointPool* pool, std::unique_ptr<Transport> transport);
  UpstreamConn(Worker* worker, EndpointPool* pool, TcpTransport& embedded);
  enum class Phase : uint8_t { kConnecting, kIdle, kHead, kBody, kDone, kTunnel, kFailed };
  void on_read(Block* block, ssize_t nread) override;
  void on_write_done(int status) override;
  void on_timer() override;
  void on_connected(int status) override;
  void on_closed() override;
  void on_body_data(const char* data, size_t len) override;
  void process(Block* block, const char* data, size_t len);
  // `bytes_follow`: more bytes came after the head in the same read.
  void handle_head(std::string_view head, bool bytes_follow);
  void fail(UpstreamFailure why);
  void update_reading();

  Worker* worker_;
  EndpointPool* pool_;
  UpstreamClient* client_ = nullptr;
  UpstreamConn* idle_next_ = nullptr;
  UpstreamConn* idle_prev_ = nullptr;
  HeadReader head_reader_;
  http::ResponseHead head_;
  MessageParser parser_;
  Block* current_block_ = nullptr;
  uint64_t response_bytes_ = 0;
  uint64_t deadline_ = 0;         // response/idle deadline (loop ms), checked lazily
  uint64_t timeout_ms_ = 0;
  Phase phase_ = Phase::kConnecting;
  bool method_head_ = false;
  const std::string* upgrade_offered_ = nullptr;
  bool reused_ = false;
  bool request_done_ = false;
  bool read_paused_ = false;
  bool broken_ = false;           // framing violated or extra bytes: never reuse
  bool tunnel_eof_ = false;       // the instance half-closed the tunnel
  friend class EndpointPool;
};

}  // namespace berth
