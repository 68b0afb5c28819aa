// One worker: a thread running its own libuv loop with its own SO_REUSEPORT listening sockets,
// its own buffer pool, upstream connection pools and load-balancer state. Nothing on the
// request path takes a lock; the control thread talks to it only through the mailbox.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/filter/filter.h"
#include "proxy/lb/lb.h"
#include "proxy/datapath/runtime.h"
#include "proxy/base/low_water.h"
#include "proxy/base/slot_pool.h"
#include "proxy/base/stats.h"
#include "proxy/net/io_context.h"
#include "proxy/net/listen_socket.h"
#include "proxy/net/stream.h"
#include "proxy/record/exchange_record.h"

namespace berth {

class ClientConn;
class EndpointPool;
struct Exchange;

class Worker final : public IoContext {
 public:
  // listeners: bound, listening, non-blocking sockets; the worker owns and closes them.
  Worker(unsigned index, std::vector<ListenSocket> listeners, std::shared_ptr<const Runtime> initial,
         std::function<void(unsigned)> on_stopped);
  ~Worker();

  // --- any thread ---
  void start();
  void publish(std::shared_ptr<const Runtime> rt);  // latest wins
  void drain();                                     // stop accepting, finish, stop
  void join();
  const WorkerStats& stats() const { return stats_; }
  const WorkerGauges& gauges() const { return gauges_; }
  unsigned index() const { return index_; }
  uint64_t runtime_generation() const { return generation_seen_.load(std::memory_order_acquire); }
  // CLOCK_REALTIME ns at which this worker started serving runtime_generation() (0: at start).
  int64_t runtime_applied_at_ns() const { return applied_at_ns_.load(std::memory_order_acquire); }

  // --- worker thread ---
  WorkerStats& stats() { return stats_; }
  WorkerGauges& gauges() { return gauges_; }
  const std::shared_ptr<const Runtime>& runtime() const { return rt_; }
  // The current snapshot, for a request to keep: copies count on this worker's own line.
  const RuntimeRef& pinned_runtime() const { return pinned_; }
  FilterStates& filter_states() { return filter_states_; }
  // The split target (index into route.split->targets) this request goes to: smooth weighted
  // round-robin with this worker's own state per split (see berth::pick_split_target), among the
  // split services that serve.
  uint32_t pick_split_target(const RouteTable& table, const Route& route);
  // Whether this request of a route with a mirror is one of its copied share: each worker adds
  // the mirror's percent to its own accumulator per request and copies when that reaches 100 %,
  // so exactly P of every 100 of its requests of the route are copied, evenly spread.
  bool mirror_chosen(const RouteTable& table, const Route& route);
  // Mirror copies in flight on this worker (proxy/datapath/mirror.h), at most kMaxMirrorsInFlight.
  static constexpr uint32_t kMaxMirrorsInFlight = 64;
  uint32_t mirrors_in_flight = 0;
  // Where finished exchanges' records go (null: nowhere). Set before start(); the sink is
  // called on this worker's loop and must outlive the worker.
  void set_record_sink(RecordSink* sink) {
    record_sink_ = sink;
    record_details_ = sink && sink->wants_request_details();
  }
  RecordSink* record_sink() const { return record_sink_; }
  bool record_details() const { return record_details_; }
  bool draining() const { return draining_; }

  // Where this worker's connections live (ClientConn::create_plain / create, UpstreamConn::create).
  SlotPool& client_slots() { return client_slots_; }
  SlotPool& upstream_slots() { return upstream_slots_; }

  Exchange* acquire_exchange();
  void release_exchange(Exchange* ex);
  std::string* acquire_string() { return strings().acquire(); }
  void release_string(std::string* s) { strings().release(s); }

  // Chooses an endpoint of the route's service for a request: one that is routable (health,
  // outlier ejection, panic mode), not among `tried` and under its circuit-breaker limit.
  // -1 when none; *circuit_open then says whether only circuit breakers were in the way.
  int pick_endpoint(const Runtime& rt, uint32_t service_index, const PickKey& key,
                    const uint32_t* tried, size_t tried_count, bool* circuit_open);
  // For a retry that pick_endpoint found no instance for: one out only because outlier detection
  // ejected it (its probes, if any, pass, or it waits for the one the ejection asks for), not
  // among `tried`, under its max_requests and still listed by the service. An ejection is a guess from past answers;
  // the alternative is a certain error. -1 when none.
  int pick_ejected(const Runtime& rt, uint32_t service_index, const uint32_t* tried, size_t tried_count);
  // Whether the service's endpoint of an older snapshot `rt` is still one of that service's (by
  // name, by address) in the snapshot this worker runs now; true for the current snapshot.
  bool still_listed(const Runtime& rt, uint32_t service_index, int endpoint_index) const;
  // Per-attempt accounting of an exchange: this worker's active count per endpoint and its
  // in-flight count per instance (/api/routes), the retry budget, and the counts shared by all
  // workers (requests in flight and pending connects per instance and service) only for the
  // circuit-breaker limits the service has.
  void begin_attempt(Exchange* ex, const Endpoint& endpoint, EndpointPool* pool);
  void begin_connect(Exchange* ex);
  void end_connect(Exchange* ex);
  void end_attempt(Exchange* ex);
  // May one more retry start now (retries in flight within the budget of the service)?
  bool retry_allowed(const Service& service) const;
  // Counts the exchange as a retry until it is released.
  void on_retry_started(Exchange* ex);
  EndpointPool* endpoint_pool(const Runtime& rt, uint32_t service_index, int endpoint_index);
  // Writes a fresh 32-hex-digit request id into out[32].
  void next_request_id(char out[32]);

  void on_client_closed(ClientConn* c);
  // A client connection now waits for its next request (kept alive).
  void on_client_idle() {
    if (full_) on_client_idle_when_full();
  }
  void on_upstream_pool_empty(EndpointPool* p);

 private:
  struct Listener {
    uv_poll_t poll;
    int fd;
    size_t index;  // position in the config's listeners (Runtime::tls)
    uint16_t port;  // the bound port: every connection accepted on it has it as its local port
    Worker* worker;
  };
  void run();
  void apply_mailbox();
  void rebuild_selection_state(const Runtime* previous = nullptr);
  void replace_in_place(const std::vector<ServicePtr>& before);
  void take_pools(const Service& now, const Service* old, const std::vector<EndpointPool*>& old_pools,
                  std::vector<EndpointPool*>& out);
  static void release_pools(const std::vector<EndpointPool*>& pools, std::vector<EndpointPool*>& departed);
  void close_departed(const std::vector<EndpointPool*>& departed);
  void retain_filter_states();
  void trim_pools();  // what the I/O pools and the free exchanges held unused since the last trim
  // Accepts what the listener has queued, up to a batch and the connection limit; with
  // `all_queued`, everything queued, the limit aside (a drain, before the socket closes).
  void accept_ready(Listener* l, bool all_queued = false);
  void pause_accept(uint64_t ms);
  // Whether `peer` may open a connection on a PROXY protocol listener (its proxy_protocol_from);
  // counts and logs the refusal.
  bool proxy_header_allowed(size_t listener, const sockaddr* peer);
  void resume_accept();
  void on_client_idle_when_full();
  void set_accepting(bool on);
  void begin_drain();
  void maybe_finish_drain();
  void shutdown_loop();

  // The control thread wakes the loop through an eventfd: a plain write, which the loop reads.
  // (uv_async_send's handshake makes the woken loop spin while the sender is descheduled
  // between its flag updates, which on a busy machine costs the worker more than the update.)
  void wake();
  static void on_wake(uv_poll_t* p, int status, int events);
  static void on_poll(uv_poll_t* p, int status, int events);

  // First, so the last to go: connections closed while the worker is torn down release into them.
  SlotPool client_slots_;
  SlotPool upstream_slots_;
  unsigned index_;
  std::function<void(unsigned)> on_stopped_;
  int wake_fd_ = -1;  // eventfd, closed by the destructor (the control thread may still write)
  uv_poll_t wake_poll_;
  uv_timer_t accept_timer_;
  uv_timer_t drain_timer_;
  uv_timer_t trim_timer_;  // hands read buffers left over from a burst back to the kernel
  std::thread thread_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  bool accepting_ = false;
  bool accept_paused_ = false;
  bool full_ = false;  // accepting paused at max_connections_per_worker
  bool draining_ = false;
  bool stopping_ = false;

  std::mutex mailbox_mu_;
  std::shared_ptr<const Runtime> mailbox_rt_;
  bool mailbox_drain_ = false;

  std::shared_ptr<const Runtime> rt_;
  RuntimeRef pinned_;  // rt_, in this worker's holder (see RuntimeRef)
  std::atomic<int64_t> applied_at_ns_{0};
  std::atomic<uint64_t> generation_seen_{0};
  std::vector<Exchange*> free_exchanges_;
  LowWater free_exchanges_low_;
  void refresh_routable(size_t service_index);
  // The service of that name in the snapshot this worker runs now; nullptr when none. A scan,
  // for the rare request still on an older snapshot.
  const Service* service_now(std::string_view name) const;
  std::vector<std::unique_ptr<Selector>> selectors_;      // [service]
  std::vector<std::vector<uint8_t>> routable_;            // [service][endpoint], refreshed lazily
  std::vector<int64_t> routable_at_;                      // [service] refresh at this health_clock_ms
  std::vector<uint64_t> routable_epoch_;                  // [service] health_epoch() of the view
  std::vector<uint8_t> panic_;                            // [service] in panic mode (logged by worker 0)
  std::vector<int64_t> ramp_until_;                       // [service] last slow-start window ends (0 = none)
  void count_requests(const Service& svc, const Endpoint& ep, int delta);
  InFlightCounts in_flight_;                              // per instance, for /api/routes
  uint32_t requests_in_flight_ = 0;                       // exchanges with an attempt running
  uint32_t retries_in_flight_ = 0;
  // An endpoint pool and how many times the services of rt_ list it (service_pools_ entries).
  // in_snapshot == (refs > 0), kept in sync by acquire_pool/release_pool. Every pool in
  // endpoint_pools_ is a ListedPool; pools outside the snapshot have refs == 0.
  struct ListedPool;
  ListedPool* acquire_pool(const Service& service, const Endpoint& endpoint);
  // Returns true when the pool left the snapshot (its count dropped to zero).
  static bool release_pool(EndpointPool* pool);
  std::vector<std::vector<EndpointPool*>> service_pools_;  // [service][endpoint], each entry one ref
  std::unordered_map<std::string, std::unique_ptr<ListedPool>> endpoint_pools_;
  uint64_t client_count_ = 0;
  uint64_t id_state_;
  uint64_t id_counter_ = 0;
  uint64_t emfile_logged_at_ = 0;
  FilterStates filter_states_;
  // This worker's state of each split or mirrored route, by route index (RouteTable::index_of):
  // smooth weighted round-robin slots (one per split target) and the mirror's accumulator
  // (hundredths of a percent). Sized lazily; cleared when the route layout changes, since a
  // layout's routes (and their splits and mirrors) do not change.
  struct RouteState {
    std::vector<int64_t> split_current;
    uint32_t mirror_credit = 0;
  };
  std::vector<RouteState> route_states_;
  RouteState stray_route_state_;
  RouteState& route_state(const RouteTable& table, const Route& route);
  RecordSink* record_sink_ = nullptr;
  bool record_details_ = false;
  WorkerStats stats_;
  WorkerGauges gauges_;

  friend class ClientConn;
};

}  // namespace berth
