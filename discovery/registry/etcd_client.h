// A client of the etcd v3 JSON gateway (POST /v3/...) on the control loop, through Berth's own
// HTTP client (discovery/docker_client: one connection per request, Content-Length bodies, no
// full duplex). Every request carries `Grpc-Metadata-hasleader: true`, so a member without a
// leader fails fast instead of hanging, and has a timeout. Unary calls fail over across the
// member list: a transport error, a timeout, or a 503 moves on to the next member, until each
// was tried once. A watch is one long POST on the current member; cancel closes it.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discovery/docker_client.h"
#include "discovery/line_splitter.h"
#include "discovery/tls_layer.h"

namespace berth::discovery::registry {

struct EtcdReply {
  int status = 0;            // HTTP status of the last attempt (0: no response)
  nlohmann::json body;       // the reply object (for a stream-shaped reply, its first "result")
  std::string error;         // empty when the call succeeded (2xx and no error object)
  std::string member;        // the member that answered (or failed last)
  bool ok() const { return error.empty(); }
};

class EtcdClient {
 public:
  using Id = uint64_t;
  struct WatchCallbacks {
    std::function<void()> on_open;                              // 200 received
    std::function<void(const nlohmann::json&)> on_message;      // each {"result":{...}} object's result
    std::function<void(const std::string&)> on_end;            // once: why the watch ended
    // A line over the cap was skipped and the watch goes on: what it said is lost, so the
    // owner reads the whole range again (as Docker discovery lists again after a long event).
    std::function<void()> on_skipped;
  };

  // urls: "http://host:port" / "https://host:port" (validated by the config loader).
  EtcdClient(uv_loop_t* loop, const std::vector<std::string>& urls, std::shared_ptr<TlsContext> tls);
  ~EtcdClient();  // drops every call without calling back
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // POST /v3/<path>. pinned: only the current member (no failover).
  void call(const std::string& path, const nlohmann::json& body, std::chrono::milliseconds timeout,
            std::function<void(EtcdReply)> done, bool pinned = false);
  // POST /v3/watch on the current member; head_timeout bounds the wait for the 200.
  Id watch(const nlohmann::json& create_request, std::chrono::milliseconds head_timeout, WatchCallbacks callbacks);
  void cancel_watch(Id id);
  // After a failure seen outside a unary call (a watch that broke): use the next member.
  void next_member() { current_ = (current_ + 1) % members_.size(); }
  std::string current_member() const { return urls_[current_]; }
  size_t members() const { return members_.size(); }

 private:
  struct Attempt;
  void attempt(std::shared_ptr<Attempt> a);
  DockerClient::Request request(const std::string& path, const std::string& body) const;
  void end_watch_with(Id id, const std::shared_ptr<WatchCallbacks>& cb, const std::string& why);

  uv_loop_t* loop_;
  std::vector<std::string> urls_;
  std::vector<std::unique_ptr<DockerClient>> members_;
  std::vector<std::string> hosts_;  // Host header per member
  size_t current_ = 0;
  struct Watch {
    size_t member;
    DockerClient::Id id;
  };
  std::map<Id, Watch> watches_;
  Id next_watch_ = 1;
};

// One read of a watch stream: `bytes` split by `splitter` (which skips lines over its cap and
// counts them) and each {"result":{...}} line's result handed to on_result, which returns
// false once the watch is gone. What ends the watch ("" while it goes on): a line that is not
// JSON, or an error line. *skipped: a line over the cap was dropped meanwhile.
std::string read_watch_bytes(LineSplitter& splitter, std::string_view bytes,
                             const std::function<bool(const nlohmann::json&)>& on_result, bool* skipped);

// Parses one reply body of the gateway: a plain object, or stream-shaped lines
// {"result":{...}} / {"error":{...}} (keepalive). The reply object or result, and *error set
// when the body carries an error.
nlohmann::json parse_etcd_body(const std::string& body, std::string* error);
// Whether the error a reply carries (what parse_etcd_body returned with *error set) says the
// member cannot serve now, gRPC code 14 (unavailable: "request timed out", "no leader"): another
// member may. A stream answers 200 and puts such an error in its body.
bool etcd_unavailable_error(const nlohmann::json& reply);

}  // namespace berth::discovery::registry
