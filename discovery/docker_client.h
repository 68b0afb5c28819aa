// A Docker Engine API client on the control loop: one connection per request (Connection:
// close), responses parsed with llhttp. get() buffers a whole response; stream() hands the
// de-chunked body of a long-lived response (/events) over as it arrives. Every request has a
// timeout (for stream(): until the response head). Callbacks run on the loop, never inside
// the call that started the request... except when the connection cannot even be attempted.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "discovery/docker_endpoint.h"
#include "discovery/http_response_parser.h"
#include "discovery/tls_layer.h"
#include "discovery/uv_handle.h"

namespace berth::discovery {

struct HttpResult {
  int status = 0;         // 0 when no response arrived
  ResponseHead head;
  std::string body;
  std::string error;      // transport problem; empty when a whole response arrived
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
  // "HTTP 404: No such container: x" / the transport error, for logs.
  std::string describe() const;
};

class DockerClient {
 public:
  using Id = uint64_t;
  struct StreamCallbacks {
    std::function<void(const ResponseHead&)> on_head;
    std::function<void(std::string_view)> on_data;
    std::function<void(const std::string&)> on_end;  // why the stream ended (never empty)
  };

  // A request other than a plain GET (the etcd gateway speaks POST with a JSON body).
  struct Request {
    std::string method = "GET";
    std::string target;
    std::string body;  // sent with Content-Length unless the method is GET and the body empty
    std::vector<std::pair<std::string, std::string>> headers;  // extra header lines
    std::string host = "docker";  // the Host header
  };

  DockerClient(uv_loop_t* loop, DockerEndpoint endpoint, std::shared_ptr<TlsContext> tls);
  ~DockerClient();  // drops every request without calling back
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  Id get(const std::string& target, std::chrono::milliseconds timeout, std::function<void(HttpResult)> done);
  Id stream(const std::string& target, std::chrono::milliseconds head_timeout, StreamCallbacks callbacks);
  Id send(Request request, std::chrono::milliseconds timeout, std::function<void(HttpResult)> done);
  Id stream(Request request, std::chrono::milliseconds head_timeout, StreamCallbacks callbacks);
  void cancel(Id id);  // no callback
  void cancel_all();
  size_t in_flight() const { return active_.size(); }
  const DockerEndpoint& endpoint() const { return endpoint_; }

 private:
  class Exchange;
  friend class Exchange;
  Id start(std::unique_ptr<Exchange> exchange);
  // Moves the exchange out of the active set; it is deleted on a later loop turn.
  void retire(Id id);

  uv_loop_t* loop_;
  DockerEndpoint endpoint_;
  std::shared_ptr<TlsContext> tls_;
  Id next_id_ = 1;
  std::map<Id, std::unique_ptr<Exchange>> active_;
  std::vector<std::unique_ptr<Exchange>> retired_;
  Timer reaper_;
};

}  // namespace berth::discovery
