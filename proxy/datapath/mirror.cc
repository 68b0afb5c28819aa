#include "proxy/datapath/mirror.h"

#include "proxy/base/clock.h"
#include "proxy/base/log.h"
#include "proxy/datapath/upstream.h"
#include "proxy/datapath/worker.h"
#include "proxy/model/route_table.h"

namespace berth {
namespace {

// One copy in flight: an upstream connection to a shadow instance, the bytes to send, and the
// snapshot its names come from. Owned by itself: deleted when the connection reports the end
// (answer complete, or any failure, including the worker closing its streams when it stops).
class MirrorCall final : private UpstreamClient {
 public:
  MirrorCall(Worker& worker, const RuntimeRef& rt, const Route& route, bool method_head, std::string request)
      : worker_(worker), rt_(rt), route_(route), method_head_(method_head), request_(std::move(request)) {
    ++worker_.mirrors_in_flight;
  }

  // Takes a pooled connection (and sends at once) or opens one; may end the call before it returns.
  void start(EndpointPool* pool) {
    if (UpstreamConn* u = pool->take_idle()) {
      u->attach(this);
      send(u);
      return;
    }
    auto* u = UpstreamConn::create(&worker_, pool);
    u->connect(this, static_cast<uint64_t>(rt_->timeouts.upstream_connect.count()));
  }

 private:
  ~MirrorCall() { --worker_.mirrors_in_flight; }

  void send(UpstreamConn* u) {
    u->begin_exchange(method_head_, /*upgrade_offered=*/nullptr);
    // A refused write closes the connection, which reports the failure.
    if (!u->write_copy(request_)) return;
    std::string().swap(request_);  // written (copied into the connection's batch)
    const int64_t timeout = rt_->timeouts.upstream_response.count();
    u->request_complete(static_cast<uint64_t>(timeout));
    deadline_ms_ = health_clock_ms() + timeout;
  }

  void end(MirrorResult result) {
    count_mirror(worker_, *rt_->routes, route_, result);
    delete this;
  }

  // UpstreamClient
  void on_upstream_connected(UpstreamConn* u) override { send(u); }
  void on_upstream_failed(UpstreamConn* u, UpstreamFailure, bool) override {
    log::debug("mirror_failed").kv("route", route_.name).kv("endpoint", u->pool()->key());
    end(MirrorResult::kDropped);
  }
  void on_response_head(UpstreamConn*, const http::ResponseHead&) override {}
  // Discarded. The connection's timer restarts with each piece of an answer; a copy's slot must
  // not be held longer than upstream_response in all (a shadow streaming slowly, an event
  // stream, would keep it and, with the others, stop mirroring on every route of the worker).
  void on_response_body(UpstreamConn* u, Block*, const char*, size_t) override {
    if (health_clock_ms() <= deadline_ms_) return;
    log::debug("mirror_deadline").kv("route", route_.name).kv("endpoint", u->pool()->key());
    u->release(false);  // closed, never pooled mid-answer; reports nothing more to this call
    end(MirrorResult::kDropped);
  }
  void on_response_complete(UpstreamConn* u) override {
    u->release(true);  // back to the pool when the answer allows it
    end(MirrorResult::kSent);
  }
  void on_tunnel_data(UpstreamConn*, Block*, const char*, size_t) override {}
  void on_tunnel_closed(UpstreamConn*, bool) override { end(MirrorResult::kDropped); }  // never upgraded
  void on_upstream_writable(UpstreamConn*) override {}

  Worker& worker_;
  RuntimeRef rt_;  // keeps route_ and its service alive
  const Route& route_;
  bool method_head_;
  std::string request_;
  int64_t deadline_ms_ = 0;  // health_clock_ms() by which the answer must be complete
};

}  // namespace

void count_mirror(Worker& worker, const RouteTable& table, const Route& route, MirrorResult result) {
  if (RecordSink* sink = worker.record_sink())
    sink->on_mirror(route.name, table.service(route.mirror->service).name, result);
}

void send_mirror(Worker& worker, const RuntimeRef& rt, const Route& route, const PickKey& key, bool method_head,
                 std::string request) {
  if (worker.mirrors_in_flight >= Worker::kMaxMirrorsInFlight) {
    count_mirror(worker, *rt->routes, route, MirrorResult::kDropped);
    return;
  }
  const uint32_t service = route.mirror->service;
  bool blocked = false;
  const int idx = worker.pick_endpoint(*rt, service, key, nullptr, 0, &blocked);
  if (idx < 0) {
    count_mirror(worker, *rt->routes, route, MirrorResult::kDropped);
    return;
  }
  EndpointPool* pool = worker.endpoint_pool(*rt, service, idx);
  (new MirrorCall(worker, rt, route, method_head, std::move(request)))->start(pool);
}

}  // namespace berth
