// A transport that first reads a PROXY protocol header (proxy/net/proxy_protocol.h) from the
// transport below it, then passes everything through. Used on listeners with
// proxy_protocol: true, under TLS on a TLS listener (the header comes before the handshake).
// Until the header is complete nothing is reported up; the bytes after it in the same read are
// reported as the first read. A malformed or missing header is counted
// (proxy_protocol_rejected) and reported up as a read error (UV_EPROTO), so the connection
// above closes without reading a byte of it; a connection that never completes its header is
// closed by the connection's request_header deadline, as any silent connection is.
// Honours the Transport contract (proxy/net/transport.h).
#pragma once

#include <memory>

#include "proxy/base/stats.h"
#include "proxy/net/proxy_protocol.h"
#include "proxy/net/transport.h"

namespace berth {

class ProxyProtocolTransport final : public Transport, private TransportEvents {
 public:
  // inner: an accepted connection (nothing bound to it yet). stats: where rejections count.
  ProxyProtocolTransport(std::unique_ptr<Transport> inner, StatsSink* stats);

  // The inner transport's facts, with the peer the header named (once it is read).
  const ConnectionInfo& info() override;
  int connect(const sockaddr* addr) override;  // server side only: UV_ENOTSUP
  int read_start() override { return inner_->read_start(); }
  void read_stop() override { inner_->read_stop(); }
  int write(WriteReq* wr) override { return inner_->write(wr); }
  int shutdown() override { return inner_->shutdown(); }
  void close() override { inner_->close(); }
  size_t buffered_bytes() const override { return inner_->buffered_bytes(); }
  uint64_t peer_acked() override { return inner_->peer_acked(); }
  uint64_t peer_outstanding() override { return inner_->peer_outstanding(); }
  void reset_on_close() override { inner_->reset_on_close(); }
  bool has_unread_input() override { return inner_->has_unread_input(); }
  Waiting waiting_input() override { return inner_->waiting_input(); }
  bool write_failed() const override { return inner_->write_failed(); }

  bool header_done() const { return done_; }

 private:
  void on_transport_read(Block* block, ssize_t nread) override;
  void on_transport_write_done(WriteReq* wr, int status) override { events_->on_transport_write_done(wr, status); }
  void on_transport_connected(int status) override { events_->on_transport_connected(status); }
  void on_transport_shutdown(int status) override { events_->on_transport_shutdown(status); }
  void on_transport_closed() override { events_->on_transport_closed(); }

  std::unique_ptr<Transport> inner_;
  StatsSink* stats_;
  ProxyHeaderParser parser_;
  ConnectionInfo info_;
  bool done_ = false;
  bool failed_ = false;
};

}  // namespace berth
