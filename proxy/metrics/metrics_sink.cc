#include "proxy/metrics/metrics_sink.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "proxy/model/route_table.h"

namespace berth {

namespace {

constexpr std::array<int64_t, kLatencyBucketsSeconds.size()> bucket_bounds_ns() {
  std::array<int64_t, kLatencyBucketsSeconds.size()> out{};
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(kLatencyBucketsSeconds[i] * 1e9 + 0.5);
  return out;
}
constexpr auto kBoundsNs = bucket_bounds_ns();

bool is_connect_failure(const char* failure) noexcept {
  // A failed upstream TLS handshake is part of connecting.
  return std::strncmp(failure, "upstream-connect-", 17) == 0 || std::strcmp(failure, "upstream-tls-failed") == 0;
}

}  // namespace

void HistogramCells::observe_ns(int64_t ns) noexcept {
  if (ns < 0) ns = 0;
  size_t i = 0;
  while (i < kBoundsNs.size() && ns > kBoundsNs[i]) ++i;  // le: a value on a bound counts in it
  buckets[i].add(1);
  count.add(1);
  sum_ns.add(static_cast<uint64_t>(ns));
}

void HistogramSum::add(const HistogramCells& cells) noexcept {
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += cells.buckets[i].get();
  count += cells.count.get();
  sum_ns += cells.sum_ns.get();
}

void HistogramSum::add(const HistogramSum& other) noexcept {
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += other.buckets[i];
  count += other.count;
  sum_ns += other.sum_ns;
}

size_t NamePairHash::operator()(const NameViews& k) const noexcept {
  const size_t a = std::hash<std::string_view>{}(k.first);
  const size_t b = std::hash<std::string_view>{}(k.second);
  return a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
}

bool LiveNames::has_route(std::string_view route, std::string_view service) const {
  return names->routes.find(NameViews{route, service}) != names->routes.end();
}
InstanceKeys::InstanceKeys(std::shared_ptr<const Service> service) : service_(std::move(service)) {
  const std::vector<Endpoint>& eps = service_->endpoints;
  size_t size = 4;
  while (size < eps.size() * 2) size *= 2;  // at most half full
  slots_.assign(size, 0);
  for (size_t i = 0; i < eps.size(); ++i) {
    size_t at = std::hash<std::string_view>{}(eps[i].key) & (size - 1);
    while (slots_[at] != 0) at = (at + 1) & (size - 1);
    slots_[at] = static_cast<uint32_t>(i + 1);
  }
}

bool InstanceKeys::contains(std::string_view key) const {
  const size_t mask = slots_.size() - 1;
  for (size_t at = std::hash<std::string_view>{}(key) & mask; slots_[at] != 0; at = (at + 1) & mask)
    if (service_->endpoints[slots_[at] - 1].key == key) return true;
  return false;
}

bool LiveNames::has_instance(std::string_view service, std::string_view instance) const {
  auto it = names->services.find(service);
  if (it == names->services.end()) return false;
  for (uint32_t p : it->second)
    if (p < keys.size() && keys[p]->contains(instance)) return true;
  return false;
}
bool LiveNames::has_mirror(std::string_view route, std::string_view service) const {
  return names->mirrors.find(NameViews{route, service}) != names->mirrors.end();
}
bool LiveNames::has_service(std::string_view service) const { return names->services.find(service) != names->services.end(); }

// Finds the cell without a lock (only this worker changes the map); adds it under the mutex.
template <class Map, class Key>
auto& MetricsRecordSink::cell(Map& map, const Key& key) {
  auto it = map.find(key);
  if (it != map.end()) return it->second;
  std::lock_guard<std::mutex> lock(mu_);
  if constexpr (std::is_same_v<Key, NameViews>)
    return map.try_emplace(NamePair(key.first, key.second)).first->second;
  else if constexpr (std::is_same_v<Key, std::string_view>)
    return map.try_emplace(std::string(key)).first->second;
  else
    return map.try_emplace(key).first->second;
}

// The record's route cells: by index when the record says where its route is in the snapshot,
// else (no route, or a record built by hand) by name.
MetricsRecordSink::RouteCells& MetricsRecordSink::route_cells(const ExchangeRecord& r) {
  if (!r.snapshot || r.route_index == UINT32_MAX) return cell(routes_, NameViews{r.route, r.service});
  ByIndex& b = by_index_;
  if (r.snapshot != b.snapshot || r.snapshot_generation != b.generation) {
    b.reset();
    b.snapshot = r.snapshot;
    b.generation = r.snapshot_generation;
  }
  RouteCells** slot;
  if (r.split_target == UINT32_MAX) {
    if (r.route_index >= b.routes.size()) b.routes.resize(r.route_index + 1u, nullptr);
    slot = &b.routes[r.route_index];
  } else {  // a split route's series are per (route, chosen service)
    if (r.route_index >= b.split_routes.size()) b.split_routes.resize(r.route_index + 1u);
    std::vector<RouteCells*>& targets = b.split_routes[r.route_index];
    if (r.split_target >= targets.size()) targets.resize(r.split_target + 1u, nullptr);
    slot = &targets[r.split_target];
  }
  if (!*slot) *slot = &cell(routes_, NameViews{r.route, r.service});
  return **slot;
}

// Called after route_cells() for the same record: by_index_ is that record's snapshot.
MetricsRecordSink::InstanceCells& MetricsRecordSink::instance_cells(const ExchangeRecord& r, const AttemptRecord& a) {
  if (!r.snapshot || r.service_index == UINT32_MAX || a.endpoint_index == UINT32_MAX || r.snapshot != by_index_.snapshot)
    return cell(instances_, NameViews{r.service, a.instance});
  auto& services = by_index_.instances;
  if (r.service_index >= services.size()) services.resize(r.service_index + 1u);
  auto& endpoints = services[r.service_index];
  if (a.endpoint_index >= endpoints.size()) endpoints.resize(a.endpoint_index + 1u, nullptr);
  InstanceCells*& ic = endpoints[a.endpoint_index];
  if (!ic) ic = &cell(instances_, NameViews{r.service, a.instance});
  return *ic;
}

void MetricsRecordSink::on_exchange(const ExchangeRecord& r) {
  if (prune_pending_.load(std::memory_order_relaxed)) prune();

  RouteCells& rc = route_cells(r);
  const uint32_t rkey = (static_cast<uint32_t>(r.method_class) << 16) | r.status;
  if (rc.last_key != rkey) {
    rc.last = &cell(rc.requests, rkey);
    rc.last_key = rkey;
  }
  rc.last->add(1);
  if (r.start_ns && r.end_ns) rc.duration.observe_ns(r.end_ns - r.start_ns);

  const size_t kept = r.attempt_count < ExchangeRecord::kMaxAttempts ? r.attempt_count : ExchangeRecord::kMaxAttempts;
  for (size_t i = 0; i < kept; ++i) {
    const AttemptRecord& a = r.attempts[i];
    InstanceCells& ic = instance_cells(r, a);
    if (ic.last_code != a.status) {
      ic.last = &cell(ic.requests, a.status);
      ic.last_code = a.status;
    }
    ic.last->add(1);
    if (!a.connected_ns && is_connect_failure(a.failure)) ic.connect_errors.add(1);
    // From the connection being usable (the request is written at once) to the response head.
    if (a.first_byte_ns && a.connected_ns) ic.response.observe_ns(a.first_byte_ns - a.connected_ns);
  }
  const bool circuit_open = r.end == ExchangeEnd::kLocalReply && std::strcmp(r.cause, "circuit-open") == 0;
  if (r.attempt_count > 1 || circuit_open) {
    ServiceCells& sc = cell(services_, std::string_view(r.service));
    if (r.attempt_count > 1) sc.retries.add(r.attempt_count - 1u);
    if (circuit_open) sc.circuit_open.add(1);
  }
  if (r.end == ExchangeEnd::kLocalReply) cell(local_replies_, std::string_view(*r.cause ? r.cause : "other")).add(1);
  bytes_in_.add(r.bytes_in);
  bytes_out_.add(r.bytes_out);
}

void MetricsRecordSink::on_mirror(std::string_view route, std::string_view service, MirrorResult result) {
  if (prune_pending_.load(std::memory_order_relaxed)) prune();
  cell(mirrors_, NameViews{route, service})[static_cast<size_t>(result)].add(1);
}

void MetricsRecordSink::set_live(std::shared_ptr<const LiveNames> live, const LostNames& lost) {
  std::lock_guard<std::mutex> lock(mu_);
  live_ = std::move(live);
  if (!lost.any()) return;
  if (!lost_.names) {
    lost_.names = lost.names;
    lost_.instances.insert(lost_.instances.end(), lost.instances.begin(), lost.instances.end());
    // A list longer than the instance series costs more than a pass over them, and a worker
    // that records nothing would let it grow: the pass replaces it.
    if (lost_.names || lost_.instances.size() > instances_.size()) lost_ = LostNames::all();
  }
  prune_pending_.store(true, std::memory_order_relaxed);
}

void MetricsRecordSink::prune() {
  by_index_.reset();  // it may point at cells erased below
  std::lock_guard<std::mutex> lock(mu_);
  prune_pending_.store(false, std::memory_order_relaxed);
  const LostNames lost = std::exchange(lost_, LostNames{});
  if (!live_) return;
  const LiveNames& live = *live_;
  if (!lost.names) {
    for (const NamePair& k : lost.instances)
      if (!live.has_instance(k.first, k.second)) instances_.erase(k);
    return;
  }
  for (auto it = routes_.begin(); it != routes_.end();) {
    // Exchanges that matched no route (route "") are always kept.
    if (it->first.first.empty() || live.has_route(it->first.first, it->first.second)) ++it;
    else it = routes_.erase(it);
  }
  for (auto it = instances_.begin(); it != instances_.end();) {
    if (live.has_instance(it->first.first, it->first.second)) ++it;
    else it = instances_.erase(it);
  }
  for (auto it = services_.begin(); it != services_.end();) {
    if (live.has_service(it->first)) ++it;
    else it = services_.erase(it);
  }
  for (auto it = mirrors_.begin(); it != mirrors_.end();) {
    if (live.has_mirror(it->first.first, it->first.second)) ++it;
    else it = mirrors_.erase(it);
  }
}

void MetricsRecordSink::add_to(RequestTotals& t) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [names, rc] : routes_) {
    for (const auto& [key, c] : rc.requests) {
      const auto method = static_cast<MethodClass>(key >> 16);
      const auto code = static_cast<uint16_t>(key & 0xffff);
      t.requests[{names.first, names.second, method, code}] += c.get();
    }
    t.durations[names].add(rc.duration);
  }
  for (const auto& [names, ic] : instances_) {
    for (const auto& [code, c] : ic.requests) t.upstream_requests[{names.first, names.second, code}] += c.get();
    t.connect_errors[names] += ic.connect_errors.get();
    t.upstream_response[names].add(ic.response);
  }
  for (const auto& [service, sc] : services_) {
    t.retries[service] += sc.retries.get();
    t.circuit_open[service] += sc.circuit_open.get();
  }
  for (const auto& [cause, c] : local_replies_) t.local_replies[cause] += c.get();
  for (const auto& [names, cells] : mirrors_) {
    auto& sums = t.mirrors[names];
    for (size_t i = 0; i < cells.size(); ++i) sums[i] += cells[i].get();
  }
  t.bytes_in += bytes_in_.get();
  t.bytes_out += bytes_out_.get();
}

}  // namespace berth
