// TLS over a transport: an OpenSSL session over memory BIOs, driven by the worker's loop; the
// server side of an accepted connection, or the client side of a connection to an instance. Ciphertext from the inner transport (plain TCP) goes into the read BIO;
// plaintext is read into the loop's pool blocks and handed up; plaintext batches are encrypted
// at once into one inner write each, whose completion reports the batch done. Nothing blocks:
// OpenSSL never touches the socket. Writes made before the handshake completes wait for it.
// Honours the Transport contract (proxy/net/transport.h). Client side: connect() reports
// success only once the handshake (and the verification of the instance's certificate) is
// done, and UV_EPROTO when the handshake fails (failure_reason() says why).
#pragma once

#include <openssl/ssl.h>
#include <uv.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "proxy/net/io_context.h"
#include "proxy/net/transport.h"
#include "proxy/tls/server_context.h"

namespace berth::tls {

class TlsTransport final : public Transport, private TransportEvents, private HeavyStep {
 public:
  // inner: an accepted connection (nothing bound to it yet). ctx: the listener's current TLS
  // context, kept alive by this connection.
  TlsTransport(IoContext* io, std::unique_ptr<Transport> inner, std::shared_ptr<const ServerContext> ctx);
  // Client side. ssl: a client-mode session (taken; null means out of memory: connect fails);
  // keep: what it refers to (its context, its session slot), held while this lives.
  TlsTransport(IoContext* io, std::unique_ptr<Transport> inner, SSL* ssl, std::shared_ptr<const void> keep);
  ~TlsTransport() override;
  TlsTransport(const TlsTransport&) = delete;
  TlsTransport& operator=(const TlsTransport&) = delete;

  const ConnectionInfo& info() override;
  int connect(const sockaddr* addr) override;  // client side only (server side: UV_ENOTSUP)
  int read_start() override;
  void read_stop() override;
  int write(WriteReq* wr) override;
  int shutdown() override;
  void close() override;
  size_t buffered_bytes() const override { return inner_->buffered_bytes() + queued_bytes_; }
  uint64_t peer_acked() override { return inner_->peer_acked(); }  // TLS records' bytes
  uint64_t peer_outstanding() override { return inner_->peer_outstanding(); }
  void reset_on_close() override { inner_->reset_on_close(); }
  bool has_unread_input() override;
  Waiting waiting_input() override;
  bool write_failed() const override { return failed_ || inner_->write_failed(); }

  bool handshake_done() const { return handshake_done_; }
  // Why the handshake failed (client side), e.g. "certificate verify failed: ..."; "" if not.
  const std::string& failure_reason() const { return failure_reason_; }
  // Whether the handshake resumed an earlier session.
  bool resumed() const { return ssl_ && SSL_session_reused(ssl_) == 1; }

 private:
  // From the inner transport.
  void on_transport_read(Block* block, ssize_t nread) override;
  void on_transport_write_done(WriteReq* wr, int status) override;
  void on_transport_connected(int status) override;
  void on_transport_shutdown(int status) override;
  void on_transport_closed() override;

  // The server's first handshake step (the ClientHello's key exchange and the signature) waits
  // its turn in the loop's heavy queue; the steps after it run as their bytes arrive.
  void run_heavy() override;

  void attach_bios();
  void report_connected(int status);  // client side: the outcome of connect(), once
  void advance();            // handshake, then plaintext up
  void on_handshake_done();
  void fail_handshake(int ssl_error);
  void deliver_plaintext();  // while the stream above reads
  void deliver_end();        // the pending EOF / error, once
  // Encrypts a batch (null: only what OpenSSL has to send) and hands the ciphertext down as one
  // inner write that reports `app` done. 0 or a libuv error.
  int send(WriteReq* app);
  // control: the bytes are OpenSSL's own answer to what it read (control_in_flight_).
  int flush_ciphertext(WriteReq* app, bool control = false);
  // The write BIO's sink: ciphertext appended to out_ (its string, then pool blocks).
  static BIO_METHOD* sink_method();
  void append_ciphertext(const char* data, size_t len);
  int hand_down(WriteReq* wr, WriteReq* app, bool control);  // one inner write; 0 or a libuv error
  int start_shutdown();
  void update_inner_reading();
  void schedule_delivery();  // plaintext or an end left while reading was stopped
  static void idle_cb(uv_idle_t* h);
  static void idle_closed_cb(uv_handle_t* h);
  void maybe_closed();

  IoContext* io_;
  std::unique_ptr<Transport> inner_;
  std::shared_ptr<const void> keep_;  // the context (and session slot) ssl_ refers to
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // network -> SSL (owned by ssl_)
  BIO* wbio_ = nullptr;  // SSL -> network (owned by ssl_): appends to out_
  ConnectionInfo info_;
  TlsInfo tls_info_;
  std::string sni_;
  std::string alpn_;
  std::string failure_reason_;
  std::string scratch_;  // a batch of small pieces gathered into one TLS record

  struct InFlight {
    WriteReq* inner;
    WriteReq* app;         // null: handshake or alert bytes
    size_t control_bytes;  // counted in control_in_flight_
  };
  std::deque<InFlight> in_flight_;  // inner writes, in order
  std::deque<WriteReq*> queued_;     // batches waiting for the handshake
  WriteReq* out_ = nullptr;          // ciphertext not yet handed down
  std::vector<WriteReq*> filled_;    // full ones before out_, in order
  size_t queued_bytes_ = 0;
  // Bytes OpenSSL wrote back for what it read after the handshake (key updates, alerts) that the
  // inner transport has not yet sent. Over kMaxControlInFlight, the inner side is not read: a
  // peer asking for key updates and reading nothing would otherwise grow it without bound.
  size_t control_in_flight_ = 0;
  static constexpr size_t kMaxControlInFlight = 64 * 1024;

  uv_idle_t* idle_ = nullptr;  // made the first time delivery has to be deferred
  ssize_t pending_end_ = 0;    // UV_EOF or an error to report once the plaintext is read
  bool info_filled_ = false;
  bool handshake_done_ = false;
  // Server side: the server's first real flight was written (not a HelloRetryRequest, whose
  // second ClientHello waits in the heavy queue like the first).
  bool server_flight_ = false;
  bool failed_ = false;
  bool reading_ = false;       // the stream above wants data
  bool inner_reading_ = false;
  bool end_delivered_ = false;
  bool shutdown_queued_ = false;
  bool closing_ = false;
  bool inner_closed_ = false;
  bool delivering_ = false;
  bool client_ = false;
  bool connect_pending_ = false;  // client side: connect() made, its outcome not yet reported
};

}  // namespace berth::tls
