#include "discovery/docker_connection.h"

#include <cstring>

namespace berth::discovery {

namespace {
struct WriteReq {
  uv_write_t req;
  std::string data;
};

std::string uv_text(int status) { return std::string(uv_err_name(status)) + " (" + uv_strerror(status) + ")"; }
}  // namespace

DockerConnection::DockerConnection(uv_loop_t* loop, DockerEndpoint endpoint, SSL_CTX* tls, Callbacks callbacks)
    : loop_(loop), endpoint_(std::move(endpoint)), tls_ctx_(tls), callbacks_(std::move(callbacks)),
      read_buffer_(std::make_unique<std::array<char, 65536>>()) {}

DockerConnection::~DockerConnection() { close(); }

uv_stream_t* DockerConnection::stream() const {
  if (pipe_) return reinterpret_cast<uv_stream_t*>(pipe_.get());
  return reinterpret_cast<uv_stream_t*>(tcp_.get());
}

void DockerConnection::open() {
  if (endpoint_.kind == DockerEndpoint::Kind::kUnix) {
    uv_pipe_init(loop_, pipe_.allocate(), 0);
    pipe_.get()->data = this;
    connect_req_ = new uv_connect_t{};
    connect_req_->data = this;
    uv_pipe_connect(connect_req_, pipe_.get(), endpoint_.path.c_str(), on_connect);
    return;
  }
  resolve_req_ = new uv_getaddrinfo_t{};
  resolve_req_->data = this;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  std::string port = std::to_string(endpoint_.port);
  int rc = uv_getaddrinfo(loop_, resolve_req_, on_resolved, endpoint_.host.c_str(), port.c_str(), &hints);
  if (rc != 0) {
    delete resolve_req_;
    resolve_req_ = nullptr;
    fail("cannot resolve " + endpoint_.host + ": " + uv_text(rc));
  }
}

void DockerConnection::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result) {
  auto* self = static_cast<DockerConnection*>(req->data);
  delete req;
  if (!self) {
    if (result) uv_freeaddrinfo(result);
    return;
  }
  self->resolve_req_ = nullptr;
  if (status != 0 || !result) {
    if (result) uv_freeaddrinfo(result);
    self->fail("cannot resolve " + self->endpoint_.host + ": " + uv_text(status));
    return;
  }
  uv_tcp_init(self->loop_, self->tcp_.allocate());
  self->tcp_.get()->data = self;
  uv_tcp_nodelay(self->tcp_.get(), 1);
  self->connect_req_ = new uv_connect_t{};
  self->connect_req_->data = self;
  int rc = uv_tcp_connect(self->connect_req_, self->tcp_.get(), result->ai_addr, on_connect);
  uv_freeaddrinfo(result);
  if (rc != 0) {
    delete self->connect_req_;
    self->connect_req_ = nullptr;
    self->fail("connect to " + self->endpoint_.to_string() + ": " + uv_text(rc));
  }
}

void DockerConnection::on_connect(uv_connect_t* req, int status) {
  auto* self = static_cast<DockerConnection*>(req->data);
  delete req;
  if (!self) return;
  self->connect_req_ = nullptr;
  if (status != 0) {
    self->fail("connect to " + self->endpoint_.to_string() + ": " + uv_text(status));
    return;
  }
  uv_read_start(self->stream(), on_alloc, on_read);
  if (self->tls_ctx_) {
    self->tls_ = std::make_unique<TlsSession>(self->tls_ctx_, self->endpoint_.host);
    std::string out, error;
    if (!self->tls_->start(&out, &error)) {
      self->fail(error);
      return;
    }
    if (!out.empty()) self->write_raw(std::move(out));
    if (self->tls_->established()) self->connected();
    return;
  }
  self->connected();
}

void DockerConnection::connected() {
  open_ = true;
  if (callbacks_.on_connected) callbacks_.on_connected();
}

void DockerConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* self = static_cast<DockerConnection*>(h->data);
  if (!self) {
    buf->base = nullptr;
    buf->len = 0;
    return;
  }
  buf->base = self->read_buffer_->data();
  buf->len = self->read_buffer_->size();
}

void DockerConnection::on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
  auto* self = static_cast<DockerConnection*>(s->data);
  if (!self || self->closed_ || n == 0) return;
  if (n < 0) {
    std::string why = n == UV_EOF ? std::string() : uv_text(static_cast<int>(n));
    if (n == UV_ECONNRESET) why.clear();  // the engine treats both the same way; so do we
    self->close();
    if (self->callbacks_.on_closed) self->callbacks_.on_closed(why);
    return;
  }
  std::string_view bytes(buf->base, static_cast<size_t>(n));
  if (!self->tls_) {
    if (self->callbacks_.on_data) self->callbacks_.on_data(bytes);
    return;
  }
  std::string plain, out, error;
  bool peer_closed = false;
  bool was_established = self->tls_->established();
  if (!self->tls_->receive(bytes, &plain, &out, &peer_closed, &error)) {
    self->fail(error);
    return;
  }
  if (!out.empty()) self->write_raw(std::move(out));
  if (!was_established && self->tls_->established()) self->connected();
  if (self->closed_) return;
  if (!plain.empty() && self->callbacks_.on_data) self->callbacks_.on_data(plain);
  if (peer_closed && !self->closed_) {
    self->close();
    if (self->callbacks_.on_closed) self->callbacks_.on_closed("");
  }
}

void DockerConnection::write(std::string_view plain) {
  if (closed_) return;
  if (!tls_) {
    write_raw(std::string(plain));
    return;
  }
  std::string out, error;
  if (!tls_->send(plain, &out, &error)) {
    fail(error);
    return;
  }
  if (!out.empty()) write_raw(std::move(out));
}

void DockerConnection::write_raw(std::string bytes) {
  if (closed_ || !stream()) return;
  auto* w = new WriteReq{};
  w->data = std::move(bytes);
  uv_buf_t buf = uv_buf_init(w->data.data(), static_cast<unsigned>(w->data.size()));
  int rc = uv_write(&w->req, stream(), &buf, 1, [](uv_write_t* req, int) {
    delete reinterpret_cast<WriteReq*>(req);  // errors surface as read errors
  });
  if (rc != 0) {
    delete w;
    fail("write: " + uv_text(rc));
  }
}

void DockerConnection::fail(const std::string& why) {
  if (closed_) return;
  close();
  if (callbacks_.on_closed) callbacks_.on_closed(why.empty() ? "connection failed" : why);
}

void DockerConnection::close() {
  if (closed_) return;
  closed_ = true;
  open_ = false;
  if (connect_req_) {
    connect_req_->data = nullptr;  // its callback still runs (ECANCELED) and frees it
    connect_req_ = nullptr;
  }
  if (resolve_req_) {
    resolve_req_->data = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(resolve_req_));
    resolve_req_ = nullptr;
  }
  pipe_.close();
  tcp_.close();
}

}  // namespace berth::discovery
