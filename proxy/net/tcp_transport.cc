#include "proxy/net/tcp_transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>

#include <cstring>

namespace berth {

TcpTransport::TcpTransport(IoContext* io) {
  uv_tcp_init(io->loop(), &tcp_);
  tcp_.data = this;
}

int TcpTransport::open(int fd) {
  int rc = uv_tcp_open(&tcp_, fd);
  if (rc == 0) uv_tcp_nodelay(&tcp_, 1);
  return rc;
}

const ConnectionInfo& TcpTransport::info() {
  if (!info_filled_) fill_info();
  return info_;
}

// Asked once, by the accepting side; an outbound connection never pays the two syscalls.
void TcpTransport::fill_info() {
  info_filled_ = true;
  sockaddr_storage ss{};
  int len = sizeof ss;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) {
      auto* sa = reinterpret_cast<sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &sa->sin_addr, info_.peer_ip, sizeof info_.peer_ip);
      info_.peer_port = ntohs(sa->sin_port);
      std::memcpy(info_.peer_addr, &sa->sin_addr, 4);
      info_.peer_family = 4;
    } else if (ss.ss_family == AF_INET6) {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &sa->sin6_addr, info_.peer_ip, sizeof info_.peer_ip);
      info_.peer_port = ntohs(sa->sin6_port);
      std::memcpy(info_.peer_addr, &sa->sin6_addr, 16);
      info_.peer_family = 6;
    }
  }
  len = sizeof ss;
  if (uv_tcp_getsockname(&tcp_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    if (ss.ss_family == AF_INET) info_.local_port = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
    else if (ss.ss_family == AF_INET6) info_.local_port = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
}

// The request is freed in its callback, which libuv always runs (UV_ECANCELED at close).
int TcpTransport::connect(const sockaddr* addr) {
  auto* req = new uv_connect_t;
  req->data = this;
  int rc = uv_tcp_connect(req, &tcp_, addr, connect_cb);
  if (rc != 0) delete req;
  return rc;
}

void TcpTransport::connect_cb(uv_connect_t* req, int status) {
  auto* self = static_cast<TcpTransport*>(req->data);
  delete req;
  if (status == 0) uv_tcp_nodelay(&self->tcp_, 1);
  self->events_->on_transport_connected(status);
}

void TcpTransport::alloc_cb(uv_handle_t* h, size_t, uv_buf_t* buf) {
  Block* b = IoContext::of(h->loop)->pool().acquire();
  buf->base = b->data();
  buf->len = b->capacity;
}

void TcpTransport::read_cb(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* self = static_cast<TcpTransport*>(s->data);
  Block* block = buf->base ? Block::from_data(buf->base) : nullptr;
  if (nread <= 0) {
    if (block) BufferPool::unref(block);
    if (nread < 0) self->events_->on_transport_read(nullptr, nread);
    return;
  }
  self->events_->on_transport_read(block, nread);
}

int TcpTransport::read_start() { return uv_read_start(stream(), alloc_cb, read_cb); }

void TcpTransport::read_stop() { uv_read_stop(stream()); }

// Tried at once with uv_try_write (one writev, as uv_write would make): when every byte goes, the
// completion is reported from the loop's idle phase (IoContext::defer_write_done) and libuv's
// write queue is never used, so its drain does not re-register the socket with epoll (an
// epoll_ctl per write, measured: two per proxied request). What does not go at once (the socket
// buffer is full, a write is queued, a connect is pending, an error) takes the uv_write path as
// before, errors included.
int TcpTransport::write(WriteReq* wr) {
  uv_buf_t bufs[WriteReq::kMaxSegments] = {};
  size_t total = 0;
  for (uint8_t i = 0; i < wr->nsegments; ++i) {
    bufs[i] = uv_buf_init(const_cast<char*>(wr->segment_data(i)), wr->segments[i].len);
    total += wr->segments[i].len;
  }
  uv_buf_t* rest = bufs;
  unsigned nrest = wr->nsegments;
  const int n = uv_try_write(stream(), bufs, wr->nsegments);
  if (n > 0 && static_cast<size_t>(n) == total) {
    IoContext::of(tcp_.loop)->defer_write_done(events_, wr);
    return 0;
  }
  if (n > 0) {  // part of it: uv_write takes the rest
    size_t skip = static_cast<size_t>(n);
    while (skip >= rest->len) {
      skip -= rest->len;
      ++rest;
      --nrest;
    }
    rest->base += skip;
    rest->len -= skip;
  }
  wr->req.data = wr;
  return uv_write(&wr->req, stream(), rest, nrest, write_cb);
}

void TcpTransport::write_cb(uv_write_t* req, int status) {
  auto* self = static_cast<TcpTransport*>(req->handle->data);
  self->events_->on_transport_write_done(static_cast<WriteReq*>(req->data), status);
}

int TcpTransport::shutdown() {
  auto* req = new uv_shutdown_t;
  req->data = this;
  int rc = uv_shutdown(req, stream(), shutdown_cb);
  if (rc != 0) delete req;
  return rc;
}

void TcpTransport::shutdown_cb(uv_shutdown_t* req, int status) {
  auto* self = static_cast<TcpTransport*>(req->data);
  delete req;
  self->events_->on_transport_shutdown(status);
}

void TcpTransport::close() {
  if (closing_) return;
  closing_ = true;
  IoContext::of(tcp_.loop)->flush_write_done(events_);
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), close_cb);
}

void TcpTransport::close_cb(uv_handle_t* h) {
  static_cast<TcpTransport*>(h->data)->events_->on_transport_closed();
}

bool TcpTransport::has_unread_input() {
  uv_os_fd_t fd;
  int unread = 0;
  return uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) == 0 && ioctl(fd, FIONREAD, &unread) == 0 &&
         unread > 0;
}

}  // namespace berth
