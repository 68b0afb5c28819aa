#include "proxy/tls/tls_transport.h"

#include <openssl/err.h>

#include <algorithm>
#include <cstring>

#include "proxy/base/log.h"

namespace berth::tls {

namespace {

// SSL_get_error reads this thread's error queue, so nothing stale may be in it before an SSL
// call. Emptying the queue (ERR_clear_error walks every slot of it) is done only when it holds
// something: the look is cheaper than the clear, and after each failure the queue is emptied.
inline void clear_stale_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

HandshakeError classify(int ssl_error) {
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) return HandshakeError::kPeerClosed;
  if (ssl_error != SSL_ERROR_SSL) return HandshakeError::kOther;
  switch (ERR_GET_REASON(ERR_peek_last_error())) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_UNKNOWN_PROTOCOL:
      return HandshakeError::kProtocolVersion;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_NO_CIPHERS_AVAILABLE:
      return HandshakeError::kNoSharedCipher;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_NO_CERTIFICATES_RETURNED:
      return HandshakeError::kClientCertificate;
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      return HandshakeError::kHttpRequest;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
      return HandshakeError::kPeerClosed;
    default:
      return HandshakeError::kOther;
  }
}

// Ciphertext up to this size is gathered in a write's own string (handshake flights, small
// responses); beyond it, in pool blocks, so that a large body's ciphertext is copied once and
// an idle connection keeps no buffer.
constexpr size_t kSmallCiphertext = 16 * 1024;

}  // namespace

// The write side of the SSL: a sink that appends each record to the write being built, with no
// intermediate memory BIO (which zero-fills and copies every byte once more).
BIO_METHOD* TlsTransport::sink_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "berth ciphertext sink");
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    BIO_meth_set_write(m, [](BIO* b, const char* data, int len) {
      if (len <= 0) return 0;
      static_cast<TlsTransport*>(BIO_get_data(b))->append_ciphertext(data, static_cast<size_t>(len));
      return len;
    });
    BIO_meth_set_ctrl(m, [](BIO*, int cmd, long, void*) -> long { return cmd == BIO_CTRL_FLUSH ? 1 : 0; });
    return m;
  }();
  return method;
}

TlsTransport::TlsTransport(IoContext* io, std::unique_ptr<Transport> inner, std::shared_ptr<const ServerContext> ctx)
    : io_(io), inner_(std::move(inner)) {
  inner_->bind(this);
  ssl_ = ctx->new_session(&sni_, &server_flight_);
  keep_ = std::move(ctx);
  attach_bios();
}

TlsTransport::TlsTransport(IoContext* io, std::unique_ptr<Transport> inner, SSL* ssl, std::shared_ptr<const void> keep)
    : io_(io), inner_(std::move(inner)), keep_(std::move(keep)), ssl_(ssl), client_(true) {
  inner_->bind(this);
  attach_bios();
}

void TlsTransport::attach_bios() {
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(sink_method());
  if (!ssl_ || !rbio_ || !wbio_) {
    // Out of memory: the connection reports an error as soon as it reads.
    BIO_free(rbio_);
    BIO_free(wbio_);
    if (ssl_) SSL_free(ssl_);
    ssl_ = nullptr;
    rbio_ = wbio_ = nullptr;
    failed_ = true;
    pending_end_ = UV_ENOMEM;
    return;
  }
  // An empty BIO means "more to come", not end of file.
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_data(wbio_, this);
  SSL_set_bio(ssl_, rbio_, wbio_);
}

TlsTransport::~TlsTransport() {
  io_->cancel_heavy(this);
  if (ssl_) SSL_free(ssl_);
  for (WriteReq* wr : filled_) io_->release_write(wr);
  if (out_) io_->release_write(out_);
}

const ConnectionInfo& TlsTransport::info() {
  if (!info_filled_) {
    info_ = inner_->info();
    info_.scheme = "https";
    info_filled_ = true;
  }
  info_.tls = handshake_done_ ? &tls_info_ : nullptr;
  return info_;
}

int TlsTransport::connect(const sockaddr* addr) {
  if (!client_) return UV_ENOTSUP;
  if (closing_ || connect_pending_) return UV_EINVAL;
  if (!ssl_) return UV_ENOMEM;
  const int rc = inner_->connect(addr);
  if (rc == 0) connect_pending_ = true;
  return rc;
}

void TlsTransport::report_connected(int status) {
  if (!connect_pending_) return;
  connect_pending_ = false;
  events_->on_transport_connected(status);
}

Transport::Waiting TlsTransport::waiting_input() {
  if (ssl_ && SSL_pending(ssl_) > 0) return Waiting::kBytes;
  // Records not read yet: data, a ticket or a close_notify. Not usable, whichever.
  if (inner_->waiting_input() != Waiting::kNothing || (ssl_ && BIO_ctrl_pending(rbio_) > 0)) return Waiting::kEnd;
  return Waiting::kNothing;
}

bool TlsTransport::has_unread_input() {
  return inner_->has_unread_input() || (ssl_ && (BIO_ctrl_pending(rbio_) > 0 || SSL_pending(ssl_) > 0));
}

// ------------------------------------------------------------------ reading

void TlsTransport::update_inner_reading() {
  // During the handshake the inner side reads whether or not the stream above does.
  const bool want = !closing_ && pending_end_ == 0 && (reading_ || (!handshake_done_ && !failed_)) &&
                    control_in_flight_ <= kMaxControlInFlight;
  if (want && !inner_reading_) {
    if (inner_->read_start() == 0) inner_reading_ = true;
  } else if (!want && inner_reading_) {
    inner_->read_stop();
    inner_reading_ = false;
  }
}

int TlsTransport::read_start() {
  if (closing_) return UV_EINVAL;
  reading_ = true;
  if (pending_end_ == 0 && !inner_reading_ && control_in_flight_ <= kMaxControlInFlight) {
    int rc = inner_->read_start();
    if (rc != 0) {
      reading_ = false;
      return rc;
    }
    inner_reading_ = true;
  }
  schedule_delivery();
  return 0;
}

void TlsTransport::read_stop() {
  reading_ = false;
  update_inner_reading();
}

void TlsTransport::on_transport_read(Block* block, ssize_t nread) {
  if (closing_) {
    if (block) BufferPool::unref(block);
    return;
  }
  if (nread < 0) {
    inner_reading_ = false;
    if (!handshake_done_ && !failed_) {
      failed_ = true;
      if (client_) {
        failure_reason_ = "the instance closed the connection during the handshake";
        if (pending_end_ == 0) pending_end_ = nread;
        report_connected(UV_EPROTO);
        return;
      }
      count_handshake_error(HandshakeError::kPeerClosed);
    }
    if (pending_end_ == 0) pending_end_ = nread;
    deliver_plaintext();
    return;
  }
  if (failed_ || pending_end_ != 0) {
    BufferPool::unref(block);
    return;
  }
  BIO_write(rbio_, block->data(), static_cast<int>(nread));
  BufferPool::unref(block);
  if (!client_ && !handshake_done_ && !server_flight_) {
    io_->queue_heavy(this);
    return;
  }
  advance();
}

void TlsTransport::run_heavy() {
  // Closed, failed (the peer left while this waited) or ended meanwhile: no handshake to run.
  if (closing_ || failed_ || handshake_done_ || pending_end_ != 0) return;
  advance();
}

void TlsTransport::advance() {
  if (!handshake_done_) {
    clear_stale_errors();
    const int r = SSL_do_handshake(ssl_);
    const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
    // The server's flight, or the alert that ends a failed handshake.
    if (int rc = flush_ciphertext(nullptr); rc != 0 && pending_end_ == 0) pending_end_ = rc;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
    if (e != SSL_ERROR_NONE) {
      fail_handshake(e);
      return;
    }
    on_handshake_done();
    if (closing_) return;
  }
  deliver_plaintext();
}

void TlsTransport::on_handshake_done() {
  handshake_done_ = true;
  if (!client_) SSL_set_msg_callback(ssl_, nullptr);  // it watched the handshake only (new_session)
  tls_info_.version = SSL_get_version(ssl_);
  tls_info_.cipher = SSL_get_cipher_name(ssl_);
  // Server side: sni_ was set from the ClientHello (ServerContext::new_session).
  if (client_)
    if (const char* name = SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name)) sni_ = name;
  tls_info_.sni = sni_;
  const unsigned char* alpn = nullptr;
  unsigned int alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  if (alpn) alpn_.assign(reinterpret_cast<const char*>(alpn), alpn_len);
  tls_info_.alpn = alpn_;
  if (info_filled_) info_.tls = &tls_info_;
  // Writes made during the handshake go now, in order.
  while (!queued_.empty() && !closing_) {
    WriteReq* wr = queued_.front();
    queued_.pop_front();
    queued_bytes_ -= wr->total_bytes();
    if (int rc = send(wr); rc != 0) events_->on_transport_write_done(wr, rc);
  }
  if (shutdown_queued_ && !closing_) {
    shutdown_queued_ = false;
    if (int rc = start_shutdown(); rc != 0) events_->on_transport_shutdown(rc);
  }
  if (!closing_) update_inner_reading();
  if (client_ && !closing_) report_connected(0);
}

void TlsTransport::fail_handshake(int ssl_error) {
  failed_ = true;
  if (client_) {
    const long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) {
      failure_reason_ = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    } else {
      char buf[256] = "handshake failed";
      if (const unsigned long e = ERR_peek_last_error(); e) ERR_error_string_n(e, buf, sizeof buf);
      failure_reason_ = buf;
    }
    ERR_clear_error();
    if (pending_end_ == 0) pending_end_ = UV_EPROTO;
    update_inner_reading();
    report_connected(UV_EPROTO);
    return;
  }
  const HandshakeError cause = classify(ssl_error);
  ERR_clear_error();
  count_handshake_error(cause);
  const ConnectionInfo& facts = info();
  log::debug("tls_handshake_failed").kv("client", facts.peer_ip.text()).kv("cause", handshake_error_name(cause));
  if (pending_end_ == 0) pending_end_ = UV_EPROTO;
  update_inner_reading();
  deliver_plaintext();
}

void TlsTransport::deliver_plaintext() {
  if (delivering_ || closing_) return;
  delivering_ = true;
  clear_stale_errors();
  bool ended = failed_ || !ssl_;  // no more plaintext will come
  while (reading_ && !closing_ && handshake_done_ && !ended && !end_delivered_) {
    if (SSL_pending(ssl_) == 0 && BIO_ctrl_pending(rbio_) == 0) break;
    Block* b = io_->pool().acquire();
    size_t filled = 0;
    int err = SSL_ERROR_NONE;
    while (filled < b->capacity) {
      size_t n = 0;
      const int r = SSL_read_ex(ssl_, b->data() + filled, b->capacity - filled, &n);
      if (r == 1) {
        filled += n;
        continue;
      }
      err = SSL_get_error(ssl_, r);
      break;
    }
    if (filled > 0) events_->on_transport_read(b, static_cast<ssize_t>(filled));
    else BufferPool::unref(b);
    if (err == SSL_ERROR_NONE || err == SSL_ERROR_WANT_READ) continue;
    // close_notify, or a broken record: nothing more can be read.
    if (err != SSL_ERROR_ZERO_RETURN) ERR_clear_error();
    if (pending_end_ == 0) pending_end_ = err == SSL_ERROR_ZERO_RETURN ? UV_EOF : UV_EPROTO;
    ended = true;
    failed_ = failed_ || err != SSL_ERROR_ZERO_RETURN;
  }
  delivering_ = false;
  if (closing_) return;
  // Post-handshake messages (tickets, key updates) and alerts go out; while too many of them
  // wait for the peer, it is not read (control_in_flight_).
  if (ssl_) {
    flush_ciphertext(nullptr, handshake_done_);
    if (control_in_flight_ > kMaxControlInFlight) update_inner_reading();
  }
  if (pending_end_ != 0 && !ended && ssl_ && (SSL_pending(ssl_) > 0 || BIO_ctrl_pending(rbio_) > 0) &&
      handshake_done_)
    return;  // plaintext first; read_start brings the rest and then the end
  if (pending_end_ != 0) {
    update_inner_reading();
    deliver_end();
  }
}

void TlsTransport::deliver_end() {
  if (end_delivered_ || !reading_ || closing_) return;
  end_delivered_ = true;
  // Towards an instance, the end of TCP without close_notify is a truncation (RFC 8446 6.1): a
  // response delimited by the close must not pass for complete. A client that just goes away
  // without it (browsers do) ends its connection either way.
  if (client_ && pending_end_ == UV_EOF && ssl_ && !(SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN))
    pending_end_ = UV_EPROTO;
  events_->on_transport_read(nullptr, pending_end_);
}

void TlsTransport::schedule_delivery() {
  if (!reading_ || closing_ || delivering_) return;
  const bool buffered = handshake_done_ && ssl_ && (SSL_pending(ssl_) > 0 || BIO_ctrl_pending(rbio_) > 0);
  const bool end = pending_end_ != 0 && !end_delivered_;
  if (!buffered && !end) return;
  // Never from inside read_start(): the stream above is still changing its state.
  if (!idle_) {
    idle_ = new uv_idle_t;
    uv_idle_init(io_->loop(), idle_);
    idle_->data = this;
  }
  uv_idle_start(idle_, idle_cb);
}

void TlsTransport::idle_cb(uv_idle_t* h) {
  auto* self = static_cast<TlsTransport*>(h->data);
  uv_idle_stop(h);
  if (self->closing_ || !self->reading_) return;
  self->deliver_plaintext();
}

// ------------------------------------------------------------------ writing

int TlsTransport::write(WriteReq* wr) {
  if (closing_) return UV_EPIPE;
  if (!handshake_done_) {
    if (failed_) return UV_EPROTO;
    queued_.push_back(wr);
    queued_bytes_ += wr->total_bytes();
    return 0;
  }
  if (failed_) return UV_EPROTO;
  return send(wr);
}

int TlsTransport::send(WriteReq* app) {
  clear_stale_errors();
  size_t total = app->total_bytes();
  bool ok = true;
  size_t written = 0;
  if (app->nsegments > 1 && total <= 16384) {
    // Small pieces (a head, a chunk header, a body slice) leave in one record.
    scratch_.clear();
    for (uint8_t i = 0; i < app->nsegments; ++i) scratch_.append(app->segment_data(i), app->segments[i].len);
    ok = SSL_write_ex(ssl_, scratch_.data(), scratch_.size(), &written) == 1;
  } else {
    for (uint8_t i = 0; ok && i < app->nsegments; ++i) {
      if (app->segments[i].len == 0) continue;
      ok = SSL_write_ex(ssl_, app->segment_data(i), app->segments[i].len, &written) == 1;
    }
  }
  if (!ok) {
    ERR_clear_error();
    return UV_EPROTO;
  }
  return flush_ciphertext(app);
}

void TlsTransport::append_ciphertext(const char* data, size_t len) {
  while (len > 0) {
    if (!out_) {
      out_ = io_->acquire_write();
      out_->nblocks = 0;
      out_->nsegments = 0;
    }
    WriteReq* wr = out_;
    if (wr->nblocks == 0 && wr->owned.size() + len <= kSmallCiphertext) {
      if (wr->nsegments == 0) wr->segments[wr->nsegments++] = {nullptr, 0, 0};
      wr->owned.append(data, len);
      wr->segments[0].len += static_cast<uint32_t>(len);
      return;
    }
    // Into the last block, or a new one (after what the string holds: the order is kept).
    Block* b = wr->nblocks ? wr->blocks[wr->nblocks - 1] : nullptr;
    WriteReq::Segment* seg = b ? &wr->segments[wr->nsegments - 1] : nullptr;
    if (!b || seg->len == b->capacity) {
      if (wr->nblocks == WriteReq::kMaxBlocks) {  // full: it leaves first, the rest follows
        filled_.push_back(wr);
        out_ = nullptr;
        continue;
      }
      b = io_->pool().acquire();
      wr->blocks[wr->nblocks++] = b;
      wr->segments[wr->nsegments++] = {b->data(), 0, 0};
      seg = &wr->segments[wr->nsegments - 1];
    }
    const size_t n = std::min<size_t>(len, b->capacity - seg->len);
    std::memcpy(b->data() + seg->len, data, n);
    seg->len += static_cast<uint32_t>(n);
    data += n;
    len -= n;
  }
}

int TlsTransport::hand_down(WriteReq* wr, WriteReq* app, bool control) {
  const size_t control_bytes = control ? wr->total_bytes() : 0;
  in_flight_.push_back(InFlight{wr, app, control_bytes});
  control_in_flight_ += control_bytes;
  const int rc = inner_->write(wr);
  if (rc != 0) {
    in_flight_.pop_back();
    control_in_flight_ -= control_bytes;
    io_->release_write(wr);
  }
  return rc;
}

int TlsTransport::flush_ciphertext(WriteReq* app, bool control) {
  for (size_t i = 0; i < filled_.size(); ++i) {
    if (int rc = hand_down(filled_[i], nullptr, control); rc != 0) {
      for (size_t j = i + 1; j < filled_.size(); ++j) io_->release_write(filled_[j]);
      filled_.clear();
      return rc;
    }
  }
  filled_.clear();
  if (!out_ && !app) return 0;
  WriteReq* wr = out_;
  out_ = nullptr;
  if (!wr) {  // nothing to send, but `app` is reported done in order
    wr = io_->acquire_write();
    wr->nblocks = 0;
    wr->segments[0] = {nullptr, 0, 0};
    wr->nsegments = 1;
  }
  return hand_down(wr, app, control);
}

void TlsTransport::on_transport_write_done(WriteReq* wr, int status) {
  // Inner writes complete in the order they were made.
  WriteReq* app = nullptr;
  size_t control_bytes = 0;
  for (auto it = in_flight_.begin(); it != in_flight_.end(); ++it) {
    if (it->inner != wr) continue;
    app = it->app;
    control_bytes = it->control_bytes;
    in_flight_.erase(it);
    break;
  }
  io_->release_write(wr);
  if (control_bytes > 0) {
    control_in_flight_ -= control_bytes;
    if (!inner_reading_ && !closing_) update_inner_reading();
  }
  if (app) events_->on_transport_write_done(app, status);
}

int TlsTransport::shutdown() {
  if (closing_) return UV_EINVAL;
  if (!handshake_done_ && !queued_.empty()) {
    shutdown_queued_ = true;
    return 0;
  }
  return start_shutdown();
}

int TlsTransport::start_shutdown() {
  if (handshake_done_ && !failed_ && ssl_) {
    // close_notify, then the TCP FIN once it is out.
    SSL_shutdown(ssl_);
    ERR_clear_error();
    if (int rc = flush_ciphertext(nullptr); rc != 0) return rc;
  }
  return inner_->shutdown();
}

void TlsTransport::on_transport_shutdown(int status) { events_->on_transport_shutdown(status); }

void TlsTransport::on_transport_connected(int status) {
  if (!client_) {
    events_->on_transport_connected(status);
    return;
  }
  if (status < 0 || closing_) {
    report_connected(status < 0 ? status : UV_ECANCELED);
    return;
  }
  // TCP is up: the ClientHello goes out, and the handshake runs as the instance answers.
  update_inner_reading();
  advance();
}

// ------------------------------------------------------------------ closing

void TlsTransport::close() {
  if (closing_) return;
  closing_ = true;
  io_->cancel_heavy(this);
  // Closed before the handshake finished (the request_header deadline, a drain).
  if (!handshake_done_ && !failed_ && !client_) count_handshake_error(HandshakeError::kIncomplete);
  if (idle_) uv_close(reinterpret_cast<uv_handle_t*>(idle_), idle_closed_cb);
  inner_->close();
}

void TlsTransport::idle_closed_cb(uv_handle_t* h) {
  auto* self = static_cast<TlsTransport*>(h->data);
  delete reinterpret_cast<uv_idle_t*>(h);
  self->idle_ = nullptr;
  self->maybe_closed();
}

void TlsTransport::on_transport_closed() {
  inner_closed_ = true;
  maybe_closed();
}

void TlsTransport::maybe_closed() {
  if (!inner_closed_ || idle_) return;
  // The inner transport has reported its own writes cancelled; these never reached it.
  while (!queued_.empty()) {
    WriteReq* wr = queued_.front();
    queued_.pop_front();
    events_->on_transport_write_done(wr, UV_ECANCELED);
  }
  queued_bytes_ = 0;
  if (shutdown_queued_) {
    shutdown_queued_ = false;
    events_->on_transport_shutdown(UV_ECANCELED);
  }
  report_connected(UV_ECANCELED);
  events_->on_transport_closed();  // the owner may delete this now
}

}  // namespace berth::tls
