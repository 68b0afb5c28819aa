#include "proxy/datapath/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <optional>
#include <random>
#include <system_error>

#include "proxy/base/heap_trim.h"
#include "proxy/datapath/client.h"
#include "proxy/base/log.h"
#include "proxy/base/random.h"
#include "proxy/health/outlier.h"
#include "proxy/datapath/upstream.h"
#include "proxy/net/proxy_protocol_transport.h"
#include "proxy/net/tcp_transport.h"
#include "proxy/tls/tls_transport.h"

namespace berth {
namespace {
// Connections accepted per wakeup of a listener. A plain connection costs microseconds before
// its first request; a TLS one costs a handshake (hundreds of microseconds of CPU) in the turn its
// ClientHello arrives. Taking TLS connections one per loop turn interleaves handshakes with the
// requests of open connections instead of queueing a burst of them ahead: the rest wait in the
// kernel's accept queue, where they cost nothing.
constexpr int kAcceptBatch = 64;
// At the connection limit, idle keep-alive connections closed at once to make room.
constexpr size_t kReclaimBatch = 16;
constexpr int kTlsAcceptBatch = 1;
constexpr uint64_t kAcceptPauseMs = 100;
// Free-list bound: enough for steady state at a few hundred concurrent requests per worker.
constexpr size_t kMaxFreeExchanges = 256;
constexpr size_t kWarmExchanges = 16;
constexpr uint64_t kTrimIntervalMs = 500;
}  // namespace

// An endpoint pool with its count of listings in rt_ (see worker.h).
struct Worker::ListedPool final : EndpointPool {
  using EndpointPool::EndpointPool;
  uint32_t refs = 0;
};

Worker::Worker(unsigned index, std::vector<ListenSocket> listeners, std::shared_ptr<const Runtime> initial,
               std::function<void(unsigned)> on_stopped)
    : client_slots_(ClientConn::slot_bytes()),
      upstream_slots_(UpstreamConn::slot_bytes()),
      index_(index),
      on_stopped_(std::move(on_stopped)),
      rt_(std::move(initial)) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  uv_poll_init(loop(), &wake_poll_, wake_fd_);
  wake_poll_.data = this;
  uv_poll_start(&wake_poll_, UV_READABLE, on_wake);
  uv_timer_init(loop(), &accept_timer_);
  accept_timer_.data = this;
  uv_timer_init(loop(), &drain_timer_);
  drain_timer_.data = this;
  uv_timer_init(loop(), &trim_timer_);
  trim_timer_.data = this;
  for (const ListenSocket& socket : listeners) {
    auto l = std::make_unique<Listener>();
    l->fd = socket.fd;
    l->index = listeners_.size();
    l->port = socket.port;
    l->worker = this;
    uv_poll_init(loop(), &l->poll, socket.fd);
    l->poll.data = l.get();
    listeners_.push_back(std::move(l));
  }
  std::random_device rd;
  id_state_ = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ (static_cast<uint64_t>(index) << 56);
  generation_seen_.store(rt_ ? rt_->generation : 0);
  pinned_ = RuntimeRef::hold(rt_);
  rebuild_selection_state();
}

Worker::~Worker() {
  // A worker that never ran (startup failed after it was made) still has its handles open: the
  // loop is not running anywhere, so they are closed from here, before their fds go.
  if (!stopping_) shutdown_loop();
  for (auto* e : free_exchanges_) delete e;
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void Worker::start() {
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::publish(std::shared_ptr<const Runtime> rt) {
  {
    std::lock_guard lock(mailbox_mu_);
    mailbox_rt_ = std::move(rt);
  }
  wake();
}

void Worker::wake() {
  const uint64_t one = 1;
  ssize_t n;
  do n = ::write(wake_fd_, &one, sizeof one);
  while (n < 0 && errno == EINTR);
  // EAGAIN: the counter is saturated, so the loop has a wake-up pending anyway.
}

void Worker::drain() {
  {
    std::lock_guard lock(mailbox_mu_);
    mailbox_drain_ = true;
  }
  wake();
}

void Worker::run() {
  // Signals belong to the control thread.
  sigset_t set;
  sigfillset(&set);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  set_accepting(true);
  // Once a second, free read buffers beyond a few warm ones: after a burst of concurrent reads
  // (thousands of connections sending at once), idle connections hold no buffer and neither
  // does the pool.
  uv_timer_start(&trim_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->trim_pools(); }, kTrimIntervalMs,
                 kTrimIntervalMs);
  uv_run(loop(), UV_RUN_DEFAULT);
  // Everything is closed; run once more so close callbacks complete.
  uv_run(loop(), UV_RUN_NOWAIT);
  if (on_stopped_) on_stopped_(index_);
}

void Worker::on_wake(uv_poll_t* p, int, int) {
  auto* self = static_cast<Worker*>(p->data);
  uint64_t count;
  while (::read(self->wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
  }
  self->apply_mailbox();
}

void Worker::apply_mailbox() {
  std::shared_ptr<const Runtime> rt;
  bool drain = false;
  {
    std::lock_guard lock(mailbox_mu_);
    rt = std::move(mailbox_rt_);
    mailbox_rt_.reset();
    drain = mailbox_drain_;
  }
  if (rt) {
    std::shared_ptr<const Runtime> previous = std::move(rt_);
    rt_ = std::move(rt);
    pinned_ = RuntimeRef::hold(rt_);  // requests still on the previous one keep its holder
    rebuild_selection_state(previous.get());
    if (filter_states_.size()) retain_filter_states();
    if (!route_states_.empty() && (!previous || !rt_->routes->same_layout(*previous->routes))) route_states_.clear();
    applied_at_ns_.store(realtime_ns(), std::memory_order_release);
    generation_seen_.store(rt_->generation, std::memory_order_release);
  }
  if (drain && !draining_) begin_drain();
}

Worker::RouteState& Worker::route_state(const RouteTable& table, const Route& route) {
  const uint32_t index = table.index_of(route);
  if (index == UINT32_MAX) return stray_route_state_;  // not a table's route (never, from match())
  if (index >= route_states_.size()) route_states_.resize(table.routes().size());
  return route_states_[index];
}

uint32_t Worker::pick_split_target(const RouteTable& table, const Route& route) {
  std::vector<int64_t>& current = route_state(table, route).split_current;
  if (current.size() != route.split->targets.size()) current.assign(route.split->targets.size(), 0);
  return berth::pick_split_target(*route.split, table.services(), health_clock_ms(), current.data());
}

bool Worker::mirror_chosen(const RouteTable& table, const Route& route) {
  uint32_t& credit = route_state(table, route).mirror_credit;
  credit += route.mirror->percent_bp;
  if (credit < 10000) return false;
  credit -= 10000;
  return true;
}

// Drops this worker's state of filters the new snapshot no longer has.
void Worker::retain_filter_states() {
  std::vector<const RequestFilter*> live;
  for (const Route& route : rt_->routes->routes())
    if (route.filters)
      for (const auto& f : route.filters->filters()) live.push_back(f.get());
  filter_states_.retain(std::move(live));
}


Worker::ListedPool* Worker::acquire_pool(const Service& service, const Endpoint& endpoint) {
  std::string key = EndpointPool::pool_key(service, endpoint);
  auto it = endpoint_pools_.find(key);
  if (it == endpoint_pools_.end())
    it = endpoint_pools_.emplace(std::move(key), std::make_unique<ListedPool>(this, service, endpoint)).first;
  ListedPool* pool = it->second.get();
  ++pool->refs;
  pool->in_snapshot = true;
  return pool;
}

bool Worker::release_pool(EndpointPool* p) {
  auto* pool = static_cast<ListedPool*>(p);  // every pool of the worker is one
  if (--pool->refs != 0) return false;
  pool->in_snapshot = false;
  return true;
}

// The pools for the endpoints of `now`, one reference each. `old` (may be null) is the service
// it replaces at its position, with `old_pools` its pools (still referenced): its endpoints at
// the same place from either end (common_ends) hand their pools on without a lookup.
void Worker::take_pools(const Service& now, const Service* old, const std::vector<EndpointPool*>& old_pools,
                        std::vector<EndpointPool*>& out) {
  const std::vector<Endpoint>& eps = now.endpoints;
  if (old && (old_pools.size() != old->endpoints.size() || !EndpointPool::same_pool_keys(*old, now)))
    old = nullptr;  // its pools went with it to another position, or are not these endpoints'
  const size_t n = eps.size(), m = old ? old->endpoints.size() : 0;
  const auto [head, tail] = old ? common_ends(eps, old->endpoints, same_key) : CommonEnds{};
  out.reserve(n);
  for (size_t j = 0; j < n; ++j) {
    if (j >= head && j < n - tail) {
      out.push_back(acquire_pool(now, eps[j]));
      continue;
    }
    auto* pool = static_cast<ListedPool*>(old_pools[j < head ? j : m - (n - j)]);  // every pool of the worker is one
    ++pool->refs;
    pool->in_snapshot = true;
    out.push_back(pool);
  }
}

// Pools of services that were not carried: one reference each goes. Endpoints that left the
// snapshot with that close their idle connections; the pool goes away with its last connection
// (in-flight requests keep theirs).
void Worker::release_pools(const std::vector<EndpointPool*>& pools, std::vector<EndpointPool*>& departed) {
  for (EndpointPool* pool : pools)
    if (release_pool(pool)) departed.push_back(pool);
}

void Worker::close_departed(const std::vector<EndpointPool*>& departed) {
  for (EndpointPool* p : departed) {
    p->close_idle();
    if (p->total() == 0 && p->active == 0) endpoint_pools_.erase(endpoint_pools_.find(p->map_key()));
  }
}

// Services whose instances did not change keep their selector (its round-robin position) and
// endpoint pools, so an update elsewhere in the table costs them a comparison only. A new
// service object comes with the table the control thread built for it (Service::lb_table): its
// selector here only reads that table and adds the per-pick state, a few words per endpoint.
// The usual publish replaces a few service objects and leaves every other one at its position:
// then only those positions are touched (replace_in_place); otherwise every position is laid
// out again, and state moves with its service object.
void Worker::rebuild_selection_state(const Runtime* previous) {
  if (!rt_) return;
  const auto& services = rt_->routes->services();
  const std::vector<ServicePtr>* before = previous ? &previous->routes->services() : nullptr;
  if (before && before->size() == services.size() && selectors_.size() == services.size() &&
      service_pools_.size() == services.size())
    return replace_in_place(*before);
  std::vector<std::unique_ptr<Selector>> old_selectors = std::move(selectors_);
  std::vector<std::vector<EndpointPool*>> old_pools = std::move(service_pools_);
  std::vector<std::vector<uint8_t>> old_routable = std::move(routable_);
  selectors_.clear();
  selectors_.reserve(services.size());
  service_pools_.assign(services.size(), {});
  routable_.assign(services.size(), {});
  routable_at_.assign(services.size(), 0);
  routable_epoch_.assign(services.size(), 0);  // refresh on first use
  ramp_until_.assign(services.size(), 0);      // rewritten by that refresh
  std::vector<uint8_t> old_panic = std::move(panic_);
  panic_.assign(services.size(), 0);
  // Previous positions with state to hand on.
  const size_t carried_limit = before ? std::min(before->size(), old_selectors.size()) : 0;
  auto at_same_position = [&](size_t p) { return p < services.size() && services[p].get() == (*before)[p].get(); };
  // The previous snapshot's services by object, built on the first service that is not at its
  // position: a service shared with it keeps its state wherever it moved. A snapshot lists a
  // service object once, so a moved object comes from a position whose object changed: only
  // those are indexed.
  std::vector<std::pair<const Service*, size_t>> previous_index;
  bool indexed = false;
  auto previous_position = [&](size_t s) -> std::optional<size_t> {
    if (!before) return std::nullopt;
    if (s < carried_limit && at_same_position(s)) return s;
    if (!indexed) {
      indexed = true;
      for (size_t p = 0; p < carried_limit; ++p)
        if (!at_same_position(p)) previous_index.emplace_back((*before)[p].get(), p);
      std::sort(previous_index.begin(), previous_index.end());
    }
    auto it = std::lower_bound(previous_index.begin(), previous_index.end(),
                               std::pair<const Service*, size_t>{services[s].get(), 0});
    if (it != previous_index.end() && it->first == services[s].get()) return it->second;
    // Not shared: the same position still counts if its instances and policy are the same.
    if (s < carried_limit && same_selection_input(*(*before)[s], *services[s])) return s;
    return std::nullopt;
  };
  // New services take their pool references before the services that left release theirs, so
  // a pool that moves from one service to another never looks departed.
  for (size_t s = 0; s < services.size(); ++s) {
    auto& pools = service_pools_[s];
    std::optional<size_t> p = previous_position(s);
    if (p && old_selectors[*p]) {
      selectors_.push_back(std::move(old_selectors[*p]));
      pools.swap(old_pools[*p]);  // keeps its references; leaves old_pools[*p] empty
      routable_[s] = std::move(old_routable[*p]);
      if (*p < old_panic.size()) panic_[s] = old_panic[*p];
      continue;
    }
    selectors_.push_back(make_selector(*services[s], id_state_ ^ (s * kGoldenGamma)));
    static const std::vector<EndpointPool*> kNone;
    const Service* old = before && s < carried_limit ? (*before)[s].get() : nullptr;
    take_pools(*services[s], old, old ? old_pools[s] : kNone, pools);
  }
  std::vector<EndpointPool*> departed;
  for (auto& pools : old_pools) release_pools(pools, departed);
  close_departed(departed);
}

// The same number of services as before: positions whose object stayed keep everything as it
// is (their routable view refreshes on the health epoch as always); only the positions whose
// object changed are made again. A service object that moved between two of those positions
// takes its state along, as on the whole path.
void Worker::replace_in_place(const std::vector<ServicePtr>& before) {
  const auto& services = rt_->routes->services();
  struct Taken {
    const Service* object;
    std::unique_ptr<Selector> selector;
    std::vector<EndpointPool*> pools;
    std::vector<uint8_t> routable;
    uint8_t panic;
  };
  std::vector<size_t> changed;
  for (size_t s = 0; s < services.size(); ++s)
    if (services[s].get() != before[s].get()) changed.push_back(s);
  if (changed.empty()) return;
  std::vector<Taken> taken;
  taken.reserve(changed.size());
  for (size_t s : changed)
    taken.push_back({before[s].get(), std::move(selectors_[s]), std::move(service_pools_[s]), std::move(routable_[s]),
                     panic_[s]});
  // The replaced objects, sorted: a whole-table change (a resync) stays n log n.
  std::vector<std::pair<const Service*, size_t>> by_object;
  by_object.reserve(taken.size());
  for (size_t i = 0; i < taken.size(); ++i) by_object.emplace_back(taken[i].object, i);
  std::sort(by_object.begin(), by_object.end());
  for (size_t i = 0; i < changed.size(); ++i) {
    const size_t s = changed[i];
    service_pools_[s].clear();
    routable_[s].clear();
    routable_at_[s] = 0;
    routable_epoch_[s] = 0;  // refresh on first use
    ramp_until_[s] = 0;
    panic_[s] = 0;
    // Its own state if the object moved here; else the same position's, if its instances and
    // policy are the same.
    Taken* from = nullptr;
    auto it = std::lower_bound(by_object.begin(), by_object.end(), std::pair<const Service*, size_t>{services[s].get(), 0});
    if (it != by_object.end() && it->first == services[s].get()) from = &taken[it->second];
    if (!from && same_selection_input(*taken[i].object, *services[s])) from = &taken[i];
    if (from && from->selector) {
      selectors_[s] = std::move(from->selector);
      service_pools_[s] = std::move(from->pools);  // keeps its references
      from->pools.clear();
      routable_[s] = std::move(from->routable);
      panic_[s] = from->panic;
      continue;
    }
    selectors_[s] = make_selector(*services[s], id_state_ ^ (s * kGoldenGamma));
    take_pools(*services[s], taken[i].object, taken[i].pools, service_pools_[s]);
  }
  std::vector<EndpointPool*> departed;
  for (const Taken& t : taken) release_pools(t.pools, departed);
  close_departed(departed);
}

namespace {

// The view of a service's endpoints a selector gets for one pick.
class PickStatus final : public EndpointStatus {
 public:
  // ramp_until: the worker's per-service end of slow start (0 = no endpoint in its window).
  PickStatus(const Service& svc, const uint8_t* routable, EndpointPool* const* pools, const uint32_t* tried,
             size_t tried_count, bool enforce_circuit, int64_t ramp_until = 0)
      : svc_(svc), routable_(routable), pools_(pools), tried_(tried), tried_count_(tried_count),
        max_requests_(enforce_circuit ? svc.policy.circuit.max_requests : 0), ramp_until_(ramp_until) {}
  bool eligible(size_t i) const override {
    if (!(routable_[i] & accept_)) return false;
    for (size_t t = 0; t < tried_count_; ++t)
      if (tried_[t] == i) return false;
    if (max_requests_) {
      const EndpointHealth* h = svc_.endpoints[i].health.get();
      if (h && h->requests.load(std::memory_order_relaxed) >= max_requests_) {
        blocked_by_circuit = true;
        return false;
      }
    }
    return true;
  }
  // Also other hosts' instances standing by for this host's (locality): when none of those is
  // eligible (retries have tried them, breakers hold them).
  void accept_standby() noexcept { accept_ = kRoutable | kStandby; }
  uint32_t active(size_t i) const override { return pools_ ? pools_[i]->active : 0; }
  bool ramping() const override { return ramp_until_ != 0; }
  uint32_t weight_permille(size_t i) const override {
    const EndpointHealth* h = svc_.endpoints[i].health.get();
    if (!h) return kFullWeightPermille;
    if (now_ < 0) now_ = health_clock_ms();  // once per pick, and only while ramping
    return slow_start_permille(h->ramp_start_ms(), now_, svc_.policy.lb.slow_start.count());
  }
  mutable bool blocked_by_circuit = false;

 private:
  const Service& svc_;
  const uint8_t* routable_;
  EndpointPool* const* pools_;
  const uint32_t* tried_;
  size_t tried_count_;
  uint32_t max_requests_;
  int64_t ramp_until_;
  uint8_t accept_ = kRoutable;
  mutable int64_t now_ = -1;
};

bool has_standby(const uint8_t* routable, size_t n) noexcept {
  for (size_t i = 0; i < n; ++i)
    if (routable[i] == kStandby) return true;
  return false;
}

// Whether the service (nullptr: none) lists an instance with this key (its address).
bool lists_key(const Service* svc, const std::string& key) {
  return svc && std::any_of(svc->endpoints.begin(), svc->endpoints.end(),
                            [&](const Endpoint& e) { return e.key == key; });
}

}  // namespace

// The worker's view of which instances are routable is recomputed when any health state changed
// (probe results, ejections: health_epoch) or an ejection ends; otherwise it is reused.
void Worker::refresh_routable(size_t s) {
  const uint64_t epoch = health_epoch();
  const int64_t now = health_clock_ms();
  if (epoch == routable_epoch_[s] && now < routable_at_[s]) return;
  routable_epoch_[s] = epoch;
  const Service& svc = rt_->routes->service(static_cast<uint32_t>(s));
  const bool panic = compute_routable(svc, now, routable_[s], &routable_at_[s], &ramp_until_[s]);
  if (panic != (panic_[s] != 0)) {
    panic_[s] = panic;
    if (index_ == 0) {
      auto line = panic ? log::warn("panic_mode") : log::info("panic_mode");
      line.kv("service", svc.name).kv("on", panic ? "true" : "false");
    }
  }
}

int Worker::pick_endpoint(const Runtime& rt, uint32_t service_index, const PickKey& key, const uint32_t* tried,
                          size_t tried_count, bool* circuit_open) {
  const Service& svc = rt.routes->service(service_index);
  *circuit_open = false;
  if (svc.endpoints.empty()) return -1;
  if (&rt == rt_.get() && service_index < selectors_.size()) {
    refresh_routable(service_index);
    const uint8_t* routable = routable_[service_index].data();
    EndpointPool* const* pools = service_pools_[service_index].data();
    PickStatus status(svc, routable, pools, tried, tried_count, true, ramp_until_[service_index]);
    int idx = selectors_[service_index]->pick(key, status);
    if (idx < 0 && has_standby(routable, svc.endpoints.size())) {
      status.accept_standby();
      idx = selectors_[service_index]->pick(key, status);
    }
    *circuit_open = idx < 0 && status.blocked_by_circuit;
    return idx;
  }
  // A request still on an older snapshot (a retry across a reload): plain rotation over the
  // instances routable now, and listed now by the service: one the reload took out of it is out
  // of its service (its health there no longer kept), whatever the older snapshot says, and
  // whichever other service lists the address. A rare path: a scan by name.
  std::vector<uint8_t> routable;
  compute_routable(svc, health_clock_ms(), routable);
  const Service* now = service_now(svc.name);
  for (size_t i = 0; i < svc.endpoints.size(); ++i)
    if (routable[i] && !lists_key(now, svc.endpoints[i].key)) routable[i] = 0;
  PickStatus status(svc, routable.data(), nullptr, tried, tried_count, true);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1) {
      if (!has_standby(routable.data(), routable.size())) break;
      status.accept_standby();
    }
    for (size_t k = 0; k < svc.endpoints.size(); ++k) {
      const size_t i = (id_counter_ + k) % svc.endpoints.size();
      if (status.eligible(i)) {
        ++id_counter_;
        return static_cast<int>(i);
      }
    }
  }
  *circuit_open = status.blocked_by_circuit;
  return -1;
}

int Worker::pick_ejected(const Runtime& rt, uint32_t service_index, const uint32_t* tried, size_t tried_count) {
  const Service& svc = rt.routes->service(service_index);
  const int64_t now = health_clock_ms();
  const size_t n = svc.endpoints.size();
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (id_counter_ + k) % n;
    const EndpointHealth* h = svc.endpoints[i].health.get();
    if (!h || !h->out_by_ejection(now)) continue;
    const ProbeState p = h->probe.load(std::memory_order_relaxed);
    if (p == ProbeState::kPending || (p == ProbeState::kUnhealthy && !h->held_by_ejection.load(std::memory_order_relaxed)))
      continue;
    if (std::find(tried, tried + tried_count, static_cast<uint32_t>(i)) != tried + tried_count) continue;
    if (svc.policy.circuit.max_requests && h->requests.load(std::memory_order_relaxed) >= svc.policy.circuit.max_requests)
      continue;
    if (!still_listed(rt, service_index, static_cast<int>(i))) continue;
    ++id_counter_;
    return static_cast<int>(i);
  }
  return -1;
}

bool Worker::still_listed(const Runtime& rt, uint32_t service_index, int endpoint_index) const {
  if (&rt == rt_.get()) return true;
  if (endpoint_index < 0) return false;
  const Service& svc = rt.routes->service(service_index);
  return lists_key(service_now(svc.name), svc.endpoints[static_cast<size_t>(endpoint_index)].key);
}

const Service* Worker::service_now(std::string_view name) const {
  if (!rt_) return nullptr;
  for (const ServicePtr& s : rt_->routes->services())
    if (s->name == name) return s.get();
  return nullptr;
}

void Worker::begin_attempt(Exchange* ex, const Endpoint& endpoint, EndpointPool* pool) {
  end_attempt(ex);
  ex->attempt_pool = pool;
  ++pool->active;
  ++requests_in_flight_;
  const Service& svc = ex->rt->routes->service(ex->service);
  count_requests(svc, endpoint, +1);
}

// The counts shared by all workers (atomic read-modify-writes on lines every worker writes) are
// kept only for the circuit-breaker limits the service has; begin and end of an attempt read the
// same snapshot's policy, so each count is matched. The in-flight figure of /api/routes is this
// worker's own (in_flight_).
void Worker::count_requests(const Service& svc, const Endpoint& ep, int delta) {
  const config::CircuitBreaker& cb = svc.policy.circuit;
  const auto d = static_cast<uint32_t>(delta);  // +1 or -1 (wraps to subtraction)
  if (ep.health) {
    if (delta > 0) in_flight_.add(*ep.health);
    else in_flight_.remove(*ep.health);
    if (cb.max_requests) ep.health->requests.fetch_add(d, std::memory_order_relaxed);
  }
  if (cb.service_max_requests && svc.counters) svc.counters->requests.fetch_add(d, std::memory_order_relaxed);
}

namespace {
// Connects in progress for the exchange's instance and service, kept only for the limits that
// read them (circuit breakers' max_pending, service_max_pending).
void count_pending(const Exchange* ex, int delta) {
  const Service& svc = ex->rt->routes->service(ex->service);
  const config::CircuitBreaker& cb = svc.policy.circuit;
  if (!cb.max_pending && !cb.service_max_pending) return;
  const Endpoint& ep = svc.endpoints[static_cast<size_t>(ex->endpoint)];
  const auto d = static_cast<uint32_t>(delta);  // +1 or -1 (wraps to subtraction)
  if (cb.max_pending && ep.health) ep.health->pending.fetch_add(d, std::memory_order_relaxed);
  if (cb.service_max_pending && svc.counters) svc.counters->pending.fetch_add(d, std::memory_order_relaxed);
}
}  // namespace

void Worker::begin_connect(Exchange* ex) {
  if (ex->connecting || !ex->attempt_pool) return;
  ex->connecting = true;
  count_pending(ex, +1);
}

void Worker::end_connect(Exchange* ex) {
  if (!ex->connecting) return;
  ex->connecting = false;
  count_pending(ex, -1);
}

void Worker::end_attempt(Exchange* ex) {
  if (!ex->attempt_pool) return;
  end_connect(ex);
  const Service& svc = ex->rt->routes->service(ex->service);
  const Endpoint& ep = svc.endpoints[static_cast<size_t>(ex->endpoint)];
  count_requests(svc, ep, -1);
  EndpointPool* pool = ex->attempt_pool;
  ex->attempt_pool = nullptr;
  --requests_in_flight_;
  if (--pool->active == 0 && !pool->in_snapshot && pool->total() == 0) on_upstream_pool_empty(pool);
}

void Worker::on_retry_started(Exchange* ex) {
  if (ex->is_retry) return;
  ex->is_retry = true;
  ++retries_in_flight_;
}

bool Worker::retry_allowed(const Service& service) const {
  const config::RetryPolicy& r = service.policy.retry;
  const uint64_t budget = static_cast<uint64_t>(requests_in_flight_) * r.budget_percent / 100;
  return retries_in_flight_ < std::max<uint64_t>(r.min_retries, budget);
}

EndpointPool* Worker::endpoint_pool(const Runtime& rt, uint32_t service_index, int endpoint_index) {
  if (&rt == rt_.get() && service_index < service_pools_.size())
    return service_pools_[service_index][static_cast<size_t>(endpoint_index)];
  const Service& svc = rt.routes->service(service_index);
  const Endpoint& ep = svc.endpoints[static_cast<size_t>(endpoint_index)];
  std::string key = EndpointPool::pool_key(svc, ep);
  auto it = endpoint_pools_.find(key);
  if (it == endpoint_pools_.end()) {
    it = endpoint_pools_.emplace(std::move(key), std::make_unique<ListedPool>(this, svc, ep)).first;
    it->second->in_snapshot = false;  // refs == 0: not listed by rt_
  }
  return it->second.get();
}

void Worker::on_upstream_pool_empty(EndpointPool* p) {
  // Deferred: the pool may be on the caller's stack.
  struct Ctx { Worker* w; std::string key; };
  auto* t = new uv_timer_t;
  t->data = new Ctx{this, p->map_key()};
  uv_timer_init(loop(), t);
  uv_timer_start(t, [](uv_timer_t* timer) {
    auto* ctx = static_cast<Ctx*>(timer->data);
    auto it = ctx->w->endpoint_pools_.find(ctx->key);
    if (it != ctx->w->endpoint_pools_.end() && !it->second->in_snapshot && it->second->total() == 0 &&
        it->second->active == 0)
      ctx->w->endpoint_pools_.erase(it);
    delete ctx;
    uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
  }, 0, 0);
}

void Worker::next_request_id(char out[32]) {
  static const char hex[] = "0123456789abcdef";
  uint64_t a = splitmix64(id_state_);
  uint64_t b = splitmix64(id_state_);
  for (int i = 0; i < 16; ++i) {
    out[i] = hex[(a >> (i * 4)) & 0xf];
    out[16 + i] = hex[(b >> (i * 4)) & 0xf];
  }
}

void Worker::trim_pools() {
  const size_t before = free_exchanges_.size() + pool().blocks_free();
  IoContext::trim_pools();
  // Taken from the back: the front is the least recently used.
  const size_t release = free_exchanges_low_.surplus(free_exchanges_.size(), kWarmExchanges);
  for (size_t i = 0; i < release; ++i) delete free_exchanges_[i];
  free_exchanges_.erase(free_exchanges_.begin(), free_exchanges_.begin() + static_cast<ptrdiff_t>(release));
  free_exchanges_low_.restart(release, free_exchanges_.size());
  // What a burst freed lies in the heap between the connections that stay: after a trim, have
  // the control loop hand the whole free pages among it back to the kernel (only then, not
  // every tick).
  if (free_exchanges_.size() + pool().blocks_free() < before) request_heap_trim();
}

Exchange* Worker::acquire_exchange() {
  if (free_exchanges_.empty()) {
    free_exchanges_low_.taken(0);
    return new Exchange();
  }
  Exchange* e = free_exchanges_.back();
  free_exchanges_.pop_back();
  free_exchanges_low_.taken(free_exchanges_.size());
  return e;
}

void Worker::release_exchange(Exchange* e) {
  e->head_reader.reset(strings());  // a head cut short (closed, timed out, refused)
  end_attempt(e);
  if (e->is_retry) --retries_in_flight_;
  e->reset();
  if (free_exchanges_.size() >= kMaxFreeExchanges) {
    delete e;
    return;
  }
  free_exchanges_.push_back(e);
}

// ------------------------------------------------------------------ accepting

void Worker::set_accepting(bool on) {
  if (on == accepting_ || draining_) return;
  accepting_ = on;
  for (auto& l : listeners_) {
    if (on) uv_poll_start(&l->poll, UV_READABLE, on_poll);
    else uv_poll_stop(&l->poll);
  }
}

void Worker::on_poll(uv_poll_t* p, int status, int events) {
  auto* l = static_cast<Listener*>(p->data);
  if (status < 0) return;
  l->worker->accept_ready(l);
}

void Worker::accept_ready(Listener* l, bool all_queued) {
  const uint32_t max_conns = rt_->limits.max_connections_per_worker;
  // A PROXY protocol listener: the header is read first (under TLS, before the handshake).
  const bool proxied = l->index < rt_->listeners.size() && rt_->listeners[l->index].proxy_protocol;
  const bool tls = l->index < rt_->tls.size() && rt_->tls[l->index];
  const int batch = all_queued ? INT_MAX : tls ? kTlsAcceptBatch : kAcceptBatch;
  for (int i = 0; i < batch; ++i) {
    if (client_count_ >= max_conns && !all_queued) {
      // Full. Connections idle between requests make room, those idle longest first (as nginx
      // reuses keep-alive connections when worker_connections runs out): otherwise a few clients
      // each sending a request now and then would hold the worker and leave new ones waiting.
      if (const size_t closed = close_idle_streams(kReclaimBatch)) {
        stats_.add(Counter::kIdleReclaimed, closed);
        if (client_count_ < max_conns) continue;  // already gone: room now
      }
      // Stop accepting until a connection closes or goes idle (the kernel queues the rest).
      stats_.add(Counter::kAcceptPauses);
      set_accepting(false);
      accept_paused_ = true;
      full_ = true;
      return;
    }
    sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    int fd = accept4(l->fd, reinterpret_cast<sockaddr*>(&peer), &peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: pause accepting instead of spinning on a readable listener.
        const uint64_t t = uv_now(loop());
        if (t - emfile_logged_at_ > 1000 || emfile_logged_at_ == 0) {
          log::warn("accept_paused").kv("worker", index_).kv("error", std::strerror(errno)).kv("pause_ms", kAcceptPauseMs);
          emfile_logged_at_ = t;
        }
        stats_.add(Counter::kAcceptPauses);
        pause_accept(kAcceptPauseMs);
        return;
      }
      log::warn("accept_failed").kv("worker", index_).kv("error", std::strerror(errno));
      return;
    }
    if (proxied && !proxy_header_allowed(l->index, reinterpret_cast<sockaddr*>(&peer))) {
      ::close(fd);
      continue;
    }
    ClientConn* c;
    if (!proxied && !tls) {
      c = ClientConn::create_plain(this, fd, reinterpret_cast<sockaddr*>(&peer), l->port);
    } else {
      auto tcp = std::make_unique<TcpTransport>(this);
      // A socket libuv refuses leaves the connection unreadable: its header timeout closes it.
      if (tcp->open(fd, reinterpret_cast<sockaddr*>(&peer), l->port) != 0) ::close(fd);
      std::unique_ptr<Transport> transport = std::move(tcp);
      if (proxied) transport = std::make_unique<ProxyProtocolTransport>(std::move(transport), &stats_);
      // A TLS listener: the handshake runs under the connection's request_header deadline.
      if (tls) transport = std::make_unique<tls::TlsTransport>(this, std::move(transport), rt_->tls[l->index]);
      c = ClientConn::create(this, std::move(transport));
    }
    ++client_count_;
    gauges_.connections.store(client_count_, std::memory_order_relaxed);
    stats_.add(Counter::kConnectionsAccepted);
    c->start(/*peer_known=*/!proxied);
  }
}

bool Worker::proxy_header_allowed(size_t listener, const sockaddr* peer) {
  if (listener >= rt_->listeners.size()) return true;
  const std::vector<config::Cidr>& from = rt_->listeners[listener].proxy_protocol_from;
  if (from.empty()) return true;
  const ClientAddress a = socket_address(peer);
  if (in_ranges(a, from)) return true;
  // Anyone else could name any client in a header: closed unread, as a missing header is.
  stats_.add(Counter::kProxyProtocolRejected);
  log::info("proxy_protocol_rejected").kv("peer", a.text()).kv("reason", "peer not in proxy_protocol_from");
  return false;
}

void Worker::pause_accept(uint64_t ms) {
  set_accepting(false);
  accept_paused_ = true;
  uv_timer_start(&accept_timer_, [](uv_timer_t* t) { static_cast<Worker*>(t->data)->resume_accept(); }, ms, 0);
}

void Worker::resume_accept() {
  if (draining_) return;
  accept_paused_ = false;
  full_ = false;
  set_accepting(true);
}

void Worker::on_client_idle_when_full() {
  // Paused at the connection limit: accept again, and the next accept makes room by closing the
  // connection idle longest (accept_ready).
  if (full_ && !draining_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&accept_timer_))) resume_accept();
}

void Worker::on_client_closed(ClientConn*) {
  --client_count_;
  gauges_.connections.store(client_count_, std::memory_order_relaxed);
  stats_.add(Counter::kConnectionsClosed);
  if (accept_paused_ && !draining_ && !uv_is_active(reinterpret_cast<uv_handle_t*>(&accept_timer_)) &&
      client_count_ < rt_->limits.max_connections_per_worker)
    resume_accept();
  if (draining_) maybe_finish_drain();
}

// ------------------------------------------------------------------ draining

void Worker::begin_drain() {
  set_accepting(false);
  uv_timer_stop(&accept_timer_);
  // Closing a listening socket resets the connections the kernel completed and queued on it
  // (a hand-over's new process shares the port, but its sockets do not get them). They are
  // taken first, the connection limit aside (the queue is bounded by the backlog), and served
  // like any connection not yet served: their first request, with Connection: close.
  for (auto& l : listeners_) accept_ready(l.get(), /*all_queued=*/true);
  draining_ = true;
  for (auto& l : listeners_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), nullptr);
    ::close(l->fd);
    l->fd = -1;
  }
  drain_streams();
  uv_timer_start(&drain_timer_, [](uv_timer_t* t) {
    auto* w = static_cast<Worker*>(t->data);
    log::warn("drain_timeout").kv("worker", w->index_).kv("connections", w->client_count_);
    w->shutdown_loop();
  }, static_cast<uint64_t>(rt_->timeouts.drain.count()), 0);
  maybe_finish_drain();
}

void Worker::maybe_finish_drain() {
  if (client_count_ == 0 && !stopping_) shutdown_loop();
}

void Worker::shutdown_loop() {
  if (stopping_) return;
  stopping_ = true;
  // Close every stream still open (they own their handles and free themselves), then the
  // worker's own handles; libuv then runs out of active handles and uv_run returns.
  close_streams();
  for (auto& l : listeners_) {
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&l->poll))) uv_close(reinterpret_cast<uv_handle_t*>(&l->poll), nullptr);
    if (l->fd >= 0) ::close(l->fd);
    l->fd = -1;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&wake_poll_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&accept_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&trim_timer_), nullptr);
}

}  // namespace berth
