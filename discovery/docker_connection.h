// One byte-stream connection to the Docker engine on the control loop: a Unix socket, or TCP
// (name resolved with uv_getaddrinfo) with an optional TLS layer. Callbacks must not destroy
// the connection synchronously (DockerClient defers deletion to a later loop turn).
#pragma once

#include <uv.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "discovery/docker_endpoint.h"
#include "discovery/tls_layer.h"
#include "discovery/uv_handle.h"

namespace berth::discovery {

class DockerConnection {
 public:
  struct Callbacks {
    std::function<void()> on_connected;                // TLS: after the handshake
    std::function<void(std::string_view)> on_data;     // plaintext
    std::function<void(const std::string&)> on_closed; // "" = clean EOF, else the error
  };
  DockerConnection(uv_loop_t* loop, DockerEndpoint endpoint, SSL_CTX* tls, Callbacks callbacks);
  ~DockerConnection();
  DockerConnection(const DockerConnection&) = delete;
  DockerConnection& operator=(const DockerConnection&) = delete;

  void open();
  void write(std::string_view plain);
  // Closes without any further callback. Idempotent.
  void close();

 private:
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* result);
  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* buf);
  void connected();
  void fail(const std::string& why);
  void write_raw(std::string bytes);
  uv_stream_t* stream() const;

  uv_loop_t* loop_;
  DockerEndpoint endpoint_;
  SSL_CTX* tls_ctx_;
  Callbacks callbacks_;
  UvHandle<uv_pipe_t> pipe_;
  UvHandle<uv_tcp_t> tcp_;
  uv_connect_t* connect_req_ = nullptr;   // freed in its callback; data cleared when we go away
  uv_getaddrinfo_t* resolve_req_ = nullptr;
  std::unique_ptr<TlsSession> tls_;
  std::unique_ptr<std::array<char, 65536>> read_buffer_;
  bool open_ = false;     // connected (and handshake done)
  bool closed_ = false;
};

}  // namespace berth::discovery
