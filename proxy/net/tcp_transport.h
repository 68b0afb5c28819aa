// Plain TCP under a Stream: the socket watched by one uv_poll_t (160 bytes, where a uv_tcp_t
// takes 248: every idle connection carries one), read into the loop's pool blocks, each batch
// sent with one sendmsg (one writev) and the rest, if the kernel takes only part, when the
// socket is writable again. Connect, shutdown and close are done here too. What finishes at once
// (a batch the kernel took whole, a shutdown, a refused connect) is reported from the loop's
// next turn (IoContext::defer), never from inside the call. The handle's memory lives in this
// object, which its owner deletes only after on_transport_closed.
#pragma once

#include <uv.h>

#include "proxy/net/io_context.h"
#include "proxy/net/transport.h"

namespace berth {

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(IoContext* io);
  ~TcpTransport() override;
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  // Takes an accepted, non-blocking socket. 0 or a libuv error (then the socket is not taken).
  int open(int fd);
  // The same, with the peer's address from accept4 and the listener's port: info() then needs
  // no getpeername or getsockname.
  int open(int fd, const sockaddr* peer, uint16_t local_port);

  const ConnectionInfo& info() override;
  int connect(const sockaddr* addr) override;
  int read_start() override;
  void read_stop() override;
  int write(WriteReq* wr) override;
  int shutdown() override;
  void close() override;
  size_t buffered_bytes() const override;
  uint64_t peer_acked() override { return tcp_bytes_acked(fd()); }
  uint64_t peer_outstanding() override { return tcp_bytes_outstanding(fd()); }
  void reset_on_close() override;
  bool has_unread_input() override;
  Waiting waiting_input() override;
  bool write_failed() const override { return error_ != 0; }

 private:
  friend class IoContext;  // run_deferred
  static void poll_cb(uv_poll_t* p, int status, int events);
  static void close_cb(uv_handle_t* h);
  void fill_info();
  void set_peer(const sockaddr* sa);
  int fd() const { return polling_ ? poll_.io_watcher.fd : -1; }
  void on_readable();
  void on_writable();
  // The first queued batch not sent whole, or nullptr.
  WriteReq* unsent() const;
  // Sends queued batches until the kernel takes no more; false on an error (kept in error_).
  bool send_queued();
  // Reports the batches sent whole, then a write error, then shuts down if asked and nothing
  // is left to send; stops when the owner closes meanwhile.
  void report_finished();
  // Starts/stops watching the socket for what is wanted now.
  void watch();
  void defer();
  void run_deferred();
  void finish_close();

  // Its context: poll_.loop is set at construction (before the socket is known) and stays.
  IoContext* io() const { return IoContext::of(poll_.loop); }

  uv_poll_t poll_;
  // Batches in order, linked by next_free; each knows its size and the bytes sent. Those sent
  // whole are at the front until reported.
  WriteReq* queue_ = nullptr;
  // The peer's facts in binary, read once (fill_info); info() makes a ConnectionInfo of them.
  uint16_t peer_port_ = 0;
  uint16_t local_port_ = 0;
  int16_t error_ = 0;                  // a write or connect error (a libuv code), to report
  // Flags, packed: every idle connection carries them.
  uint8_t peer_family_ : 3 = 0;        // 0, 4 or 6
  uint8_t watched_ : 2 = 0;            // UV_READABLE | UV_WRITABLE being watched
  bool polling_ : 1 = false;           // poll_ is initialised (the socket is open)
  bool reading_ : 1 = false;
  bool connecting_ : 1 = false;
  bool shutdown_pending_ : 1 = false;  // shutdown() asked, not yet done and reported
  bool deferred_ : 1 = false;          // in the IoContext's list for its next turn
  bool closing_ : 1 = false;
  bool info_filled_ : 1 = false;
  uint8_t peer_bytes_[16];
};

}  // namespace berth
