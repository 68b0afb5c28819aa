// The seam between a byte stream's state machine (Stream and the connections built on it) and
// what carries its bytes: plain TCP today (TcpTransport), TLS later. A transport moves bytes
// and reports what it knows about the connection; it knows nothing of HTTP.
//
// Contract, for every implementation:
// - Reads land in blocks of the loop's BufferPool, taken only when bytes are ready (an idle
//   connection holds no buffer). on_transport_read gets the read's reference to the block, the
//   bytes at block->data()[0, nread). nread < 0 is end of stream (UV_EOF) or an error, with no
//   block. A zero-byte read is never reported.
// - write() takes a batch and reports it done exactly once via on_transport_write_done, never
//   from inside write(); the batch (and the blocks it references) must stay untouched until
//   then. A write still pending at close is reported done with UV_ECANCELED before closing ends.
// - shutdown() and connect() report their outcome once, later, likewise (UV_ECANCELED at close).
// - close() is idempotent and ends with on_transport_closed, never from inside close(); after
//   that the transport reports nothing more and may be deleted.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/base/buffer_pool.h"
#include "proxy/net/tcp_info.h"
#include "proxy/net/write_req.h"

namespace berth {

// What a TLS transport learned in its handshake. Strings point into the transport.
struct TlsInfo {
  std::string_view version;
  std::string_view cipher;
  std::string_view sni;
  std::string_view alpn;
};

// A peer's IP address, kept in binary (what an idle connection carries); its text is made only
// where it is needed (X-Forwarded-For, log lines, the client address of a request).
struct PeerIp {
  static constexpr size_t kTextMax = 46;  // INET6_ADDRSTRLEN
  uint8_t bytes[16] = {0};                // network byte order (4 bytes used for IPv4)
  uint8_t family = 0;                     // 0 (unknown), 4 or 6

  // The textual form, written into `buf`; empty if unknown.
  std::string_view format(char (&buf)[kTextMax]) const;
  // The textual form by value, for a log line: each call has its own buffer.
  struct Text {
    char buf[kTextMax];
    std::string_view view;
    operator std::string_view() const { return view; }
  };
  Text text() const;
};

// What the accepting side knows about a connection. Strings point into the transport (or are
// static) and stay valid while it lives. Kept small: every idle connection carries one.
struct ConnectionInfo {
  std::string_view scheme = "http";  // sent upstream as X-Forwarded-Proto
  const TlsInfo* tls = nullptr;      // set by a TLS transport once its handshake is done
  uint16_t peer_port = 0;
  uint16_t local_port = 0;           // the port the client connected to
  PeerIp peer_ip;                    // family 0 if unknown
};

// What a transport reports to the stream above it.
class TransportEvents {
 public:
  virtual void on_transport_read(Block* block, ssize_t nread) = 0;
  virtual void on_transport_write_done(WriteReq* wr, int status) = 0;
  virtual void on_transport_connected(int status) = 0;
  virtual void on_transport_shutdown(int status) = 0;
  virtual void on_transport_closed() = 0;

 protected:
  ~TransportEvents() = default;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Who gets the callbacks; set once, before any other call.
  void bind(TransportEvents* events) { events_ = events; }

  // Scheme and peer facts, for the accepting side. The reference is good until the next info()
  // call on this thread (a transport may make it on demand instead of carrying it): copy what
  // is to be kept.
  virtual const ConnectionInfo& info() = 0;

  // Opens an outbound connection; 0 or a libuv error (then nothing is reported).
  virtual int connect(const sockaddr* addr) = 0;
  virtual int read_start() = 0;
  virtual void read_stop() = 0;
  // 0 or a libuv error (then the batch is not taken and nothing is reported).
  virtual int write(WriteReq* wr) = 0;
  // Ends the sending side once the writes before it are out. 0 or a libuv error.
  virtual int shutdown() = 0;
  virtual void close() = 0;

  // Bytes accepted by write() and not yet handed to the kernel: the backpressure figure.
  virtual size_t buffered_bytes() const = 0;
  // How far the peer has taken the output, by TCP's counts (proxy/net/tcp_info.h). After a
  // pause the kernel signals room only once a third of its send buffer is free, so a peer
  // reading slowly but steadily shows no write completion for long: these counts show it.
  virtual uint64_t peer_acked() = 0;        // bytes the peer has acknowledged so far
  virtual uint64_t peer_outstanding() = 0;  // bytes the kernel still holds for the peer
  // The close that follows sends a reset, not a FIN: the peer learns that the connection was cut,
  // not ended (an answer whose end is the close would otherwise look whole).
  virtual void reset_on_close() = 0;
  // True when the peer has sent bytes nobody read yet (closing then would send a reset).
  virtual bool has_unread_input() = 0;
  // What waits, unread, on a connection between exchanges (a pooled upstream one), looked at
  // without reading it: nothing; bytes; or the end (the peer's FIN, an error, or for TLS records
  // not read yet, which may be data, a ticket or a close). One syscall.
  enum class Waiting : uint8_t { kNothing, kBytes, kEnd };
  virtual Waiting waiting_input() = 0;
  // True once a write to the peer has failed (a reset), before that is reported.
  virtual bool write_failed() const = 0;

 protected:
  TransportEvents* events_ = nullptr;
};

}  // namespace berth
