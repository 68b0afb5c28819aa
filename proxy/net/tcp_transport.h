// Plain TCP under a Stream: one uv_tcp_t, read into the loop's pool blocks, batches written
// with a single uv_write (one writev), shutdown and close through libuv. The handle's memory
// lives in this object, which its owner deletes only after on_transport_closed. The connect and
// shutdown requests are allocated only when made (an accepted connection never connects, and
// most never shut down), so an idle connection holds the handle, its facts and little else.
#pragma once

#include <uv.h>

#include "proxy/net/io_context.h"
#include "proxy/net/transport.h"

namespace berth {

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(IoContext* io);
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // Takes an accepted, non-blocking socket. 0 or a libuv error.
  int open(int fd);

  const ConnectionInfo& info() override;
  int connect(const sockaddr* addr) override;
  int read_start() override;
  void read_stop() override;
  int write(WriteReq* wr) override;
  int shutdown() override;
  void close() override;
  size_t buffered_bytes() const override { return tcp_.write_queue_size; }
  bool has_unread_input() override;

 private:
  static void alloc_cb(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void write_cb(uv_write_t* req, int status);
  static void connect_cb(uv_connect_t* req, int status);
  static void shutdown_cb(uv_shutdown_t* req, int status);
  static void close_cb(uv_handle_t* h);
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp_); }
  void fill_info();

  uv_tcp_t tcp_;
  ConnectionInfo info_;
  bool info_filled_ = false;
  bool closing_ = false;
};

}  // namespace berth
