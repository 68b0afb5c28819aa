#include "proxy/net/tcp_transport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "proxy/net/listen_socket.h"

namespace berth {
namespace {

void set_nodelay(int fd) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

}  // namespace

TcpTransport::TcpTransport(IoContext* io) { poll_.loop = io->loop(); }

TcpTransport::~TcpTransport() {
  if (deferred_) io()->cancel_deferred(this);
}

int TcpTransport::open(int fd) {
  int rc = uv_poll_init_socket(poll_.loop, &poll_, fd);
  if (rc != 0) return rc;
  poll_.data = this;
  polling_ = true;
  set_nodelay(fd);
  return 0;
}

int TcpTransport::open(int fd, const sockaddr* peer, uint16_t local_port) {
  const int rc = open(fd);
  if (rc == 0 && peer && peer->sa_family != AF_UNSPEC) {
    set_peer(peer);
    local_port_ = local_port;
    info_filled_ = true;
  }
  return rc;
}

void TcpTransport::set_peer(const sockaddr* sa) {
  peer_port_ = sockaddr_port(sa);
  if (const uint8_t family = sockaddr_ip(sa, peer_bytes_)) peer_family_ = family;
}

// Made on demand from the binary facts (an idle connection carries 21 bytes, not a
// ConnectionInfo): valid until the next call on this thread, as the Transport contract says.
const ConnectionInfo& TcpTransport::info() {
  if (!info_filled_) fill_info();
  // Field by field: a plain TCP transport's scheme and tls never change from the defaults.
  thread_local ConnectionInfo made;
  made.peer_port = peer_port_;
  made.local_port = local_port_;
  made.peer_ip.family = peer_family_;
  if (peer_family_) std::memcpy(made.peer_ip.bytes, peer_bytes_, sizeof peer_bytes_);
  return made;
}

// Asked at most once, by the accepting side when accept4 gave no address; an outbound connection
// never pays the two syscalls.
void TcpTransport::fill_info() {
  info_filled_ = true;
  if (!polling_) return;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) set_peer(reinterpret_cast<sockaddr*>(&ss));
  len = sizeof ss;
  if (getsockname(fd(), reinterpret_cast<sockaddr*>(&ss), &len) == 0)
    local_port_ = sockaddr_port(reinterpret_cast<sockaddr*>(&ss));
}

// A refused connect (loopback may refuse at once) is reported later, as libuv does.
int TcpTransport::connect(const sockaddr* addr) {
  if (polling_ || closing_) return UV_EINVAL;
  const int fd = ::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  const socklen_t len = addr->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  int rc;
  do rc = ::connect(fd, addr, len);
  while (rc != 0 && errno == EINTR);
  const int err = rc == 0 ? 0 : errno;
  if (err != 0 && err != EINPROGRESS && err != ECONNREFUSED) {
    ::close(fd);
    return -err;
  }
  if (int r = open(fd); r != 0) {
    ::close(fd);
    return r;
  }
  connecting_ = true;
  if (err == ECONNREFUSED) {
    error_ = static_cast<int16_t>(UV_ECONNREFUSED);
    defer();
  } else {
    watch();
  }
  return 0;
}

int TcpTransport::read_start() {
  if (closing_) return UV_EINVAL;
  if (!polling_) return UV_ENOTCONN;
  reading_ = true;
  watch();
  return 0;
}

void TcpTransport::read_stop() {
  reading_ = false;
  watch();
}

size_t TcpTransport::buffered_bytes() const {
  size_t n = 0;
  for (const WriteReq* wr = queue_; wr; wr = wr->next_free) n += wr->size - wr->sent;
  return n;
}

WriteReq* TcpTransport::unsent() const {
  WriteReq* wr = queue_;
  while (wr && wr->sent == wr->size) wr = wr->next_free;
  return wr;
}

int TcpTransport::write(WriteReq* wr) {
  if (closing_ || !polling_) return UV_EPIPE;
  if (error_ != 0) return error_;
  wr->next_free = nullptr;
  wr->size = static_cast<uint32_t>(wr->total_bytes());
  wr->sent = 0;
  if (!queue_) {
    queue_ = wr;
  } else {
    WriteReq* last = queue_;
    while (last->next_free) last = last->next_free;
    last->next_free = wr;
  }
  if (connecting_) return 0;  // sent once connected
  const bool ok = send_queued();
  if (!ok || queue_->sent == queue_->size) defer();  // what finished is reported from the next turn
  watch();
  return 0;
}

bool TcpTransport::send_queued() {
  for (WriteReq* wr = unsent(); wr; wr = wr->next_free) {
    while (wr->sent < wr->size) {
      iovec iov[WriteReq::kMaxSegments];
      int n = 0;
      size_t skip = wr->sent;
      for (uint8_t i = 0; i < wr->nsegments; ++i) {
        const size_t len = wr->segments[i].len;
        if (skip >= len) {
          skip -= len;
          continue;
        }
        iov[n].iov_base = const_cast<char*>(wr->segment_data(i)) + skip;
        iov[n].iov_len = len - skip;
        skip = 0;
        ++n;
      }
      msghdr msg{};
      msg.msg_iov = iov;
      msg.msg_iovlen = static_cast<size_t>(n);
      const ssize_t w = ::sendmsg(fd(), &msg, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return true;  // the rest when writable
        error_ = static_cast<int16_t>(-errno);
        return false;
      }
      wr->sent += static_cast<uint32_t>(w);
    }
  }
  return true;
}

void TcpTransport::report_finished() {
  while (!closing_ && queue_ && queue_->sent == queue_->size) {
    WriteReq* wr = queue_;
    queue_ = wr->next_free;
    wr->next_free = nullptr;
    events_->on_transport_write_done(wr, 0);
  }
  if (closing_) return;
  if (error_ != 0 && queue_) {
    // The batch that failed; the ones after it wait for close (UV_ECANCELED).
    WriteReq* wr = queue_;
    queue_ = wr->next_free;
    wr->next_free = nullptr;
    events_->on_transport_write_done(wr, error_);
    if (closing_) return;
  }
  if (shutdown_pending_ && !queue_) {
    shutdown_pending_ = false;
    events_->on_transport_shutdown(::shutdown(fd(), SHUT_WR) == 0 ? 0 : -errno);
  }
}

void TcpTransport::on_writable() {
  if (connecting_) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == EINPROGRESS) return;
    connecting_ = false;
    if (err == 0) set_nodelay(fd());
    else error_ = static_cast<int16_t>(-err);
    watch();
    events_->on_transport_connected(err == 0 ? 0 : -err);
    if (closing_ || err != 0) return;
  }
  send_queued();
  report_finished();
}

void TcpTransport::on_readable() {
  Block* b = io()->pool().acquire();
  ssize_t n;
  // recv, not read: the socket call skips the file layer's checks and its indirect call.
  do n = ::recv(fd(), b->data(), b->capacity, 0);
  while (n < 0 && errno == EINTR);
  if (n > 0) {
    events_->on_transport_read(b, n);
    return;
  }
  const int err = errno;
  BufferPool::unref(b);
  if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) return;
  // End of stream or an error: reported once; the socket is not read again.
  reading_ = false;
  watch();
  events_->on_transport_read(nullptr, n == 0 ? UV_EOF : -err);
}

void TcpTransport::poll_cb(uv_poll_t* p, int status, int events) {
  auto* self = static_cast<TcpTransport*>(p->data);
  if (self->closing_) return;
  if (status < 0) {
    // The socket itself failed (libuv says UV_EBADF for any POLLERR and stops the handle): the
    // socket's own error, if it has one, is what whoever waits on it hears.
    self->watched_ = 0;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(self->fd(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) status = -err;
    if (self->error_ == 0) self->error_ = static_cast<int16_t>(status);
    if (self->connecting_) {
      self->connecting_ = false;
      self->watch();
      self->events_->on_transport_connected(status);
      return;
    }
    self->report_finished();
    if (!self->closing_ && self->reading_) {
      self->reading_ = false;
      self->watch();
      self->events_->on_transport_read(nullptr, status);
    }
    return;
  }
  if (events & UV_WRITABLE) self->on_writable();
  if (!self->closing_ && (events & UV_READABLE) && self->reading_) self->on_readable();
  if (!self->closing_) self->watch();
}

int TcpTransport::shutdown() {
  if (closing_ || !polling_) return UV_ENOTCONN;
  if (shutdown_pending_) return UV_EALREADY;
  // Done from the next turn, once the writes before it are out (report_finished).
  shutdown_pending_ = true;
  defer();
  return 0;
}

void TcpTransport::watch() {
  if (!polling_ || closing_) return;
  const bool want_write = connecting_ || unsent() != nullptr;
  const uint8_t want = static_cast<uint8_t>((reading_ ? UV_READABLE : 0) | (want_write ? UV_WRITABLE : 0));
  if (want == watched_) return;
  watched_ = want;
  if (want) uv_poll_start(&poll_, want, poll_cb);
  else uv_poll_stop(&poll_);
}

void TcpTransport::defer() {
  if (deferred_) return;
  deferred_ = true;
  io()->defer(this);
}

void TcpTransport::run_deferred() {
  deferred_ = false;
  if (closing_) {
    if (!polling_) finish_close();  // never opened: no handle to wait for
    return;
  }
  if (connecting_ && error_ != 0) {
    connecting_ = false;
    watch();
    events_->on_transport_connected(error_);
    return;
  }
  report_finished();
  if (!closing_) watch();
}

void TcpTransport::close() {
  if (closing_) return;
  closing_ = true;
  if (polling_) uv_close(reinterpret_cast<uv_handle_t*>(&poll_), close_cb);
  else defer();
}

void TcpTransport::close_cb(uv_handle_t* h) { static_cast<TcpTransport*>(h->data)->finish_close(); }

// Everything still owed is reported, then the close: batches sent whole with 0 (as libuv
// reports its completed writes before the close callback), the rest cancelled.
void TcpTransport::finish_close() {
  if (deferred_) {
    io()->cancel_deferred(this);
    deferred_ = false;
  }
  if (polling_) ::close(fd());
  if (connecting_) {
    connecting_ = false;
    events_->on_transport_connected(UV_ECANCELED);
  }
  while (queue_) {
    WriteReq* wr = queue_;
    queue_ = wr->next_free;
    wr->next_free = nullptr;
    events_->on_transport_write_done(wr, wr->sent == wr->size ? 0 : UV_ECANCELED);
  }
  if (shutdown_pending_) {
    shutdown_pending_ = false;
    events_->on_transport_shutdown(UV_ECANCELED);
  }
  events_->on_transport_closed();
}

void TcpTransport::reset_on_close() {
  if (fd() < 0) return;
  const linger hard{1, 0};  // close() then sends RST and drops what the kernel still holds
  ::setsockopt(fd(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
}

Transport::Waiting TcpTransport::waiting_input() {
  if (fd() < 0 || closing_) return Waiting::kEnd;
  char byte;
  const ssize_t n = ::recv(fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return Waiting::kBytes;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return Waiting::kNothing;
  return Waiting::kEnd;  // 0: the peer ended its side; or an error waits (a reset)
}

bool TcpTransport::has_unread_input() {
  int unread = 0;
  return polling_ && !closing_ && ioctl(fd(), FIONREAD, &unread) == 0 && unread > 0;
}

}  // namespace berth
