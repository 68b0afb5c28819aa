// Per-worker request metrics: a RecordSink that counts finished exchanges in cells only its
// worker writes (relaxed load+store, no locked instruction per request), read and summed by the
// exporter on the control loop at scrape time. No prometheus-cpp object is touched here.
//
// Series are keyed by names copied from the snapshot (route, service, instance), never by views
// into it. A request does not hash those names: the worker keeps, for the snapshot its records
// come from, the cells of each route and instance by their index in the snapshot, looked up by
// name the first time an index is seen and forgotten when the snapshot changes or series are
// dropped. The worker finds existing cells without a lock (only it changes the maps); it takes
// the sink's mutex to add a new series or drop series of instances and routes that left, and a
// scrape takes the same mutex while it reads. A scrape therefore never waits for a request, and
// a request waits for a scrape only when it adds a series.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "proxy/record/exchange_record.h"

namespace berth {

struct Service;

// Histogram upper bounds, seconds (a +Inf bucket follows).
inline constexpr std::array<double, 13> kLatencyBucketsSeconds = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// A counter written by one thread, read by any.
struct MetricCell {
  std::atomic<uint64_t> value{0};
  void add(uint64_t n) noexcept { value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
};

struct HistogramCells {
  std::array<MetricCell, kLatencyBucketsSeconds.size() + 1> buckets;  // per bucket (not cumulative); last: +Inf
  MetricCell count;
  MetricCell sum_ns;
  void observe_ns(int64_t ns) noexcept;
};

// A summed histogram (plain numbers): what a scrape reads.
struct HistogramSum {
  std::array<uint64_t, kLatencyBucketsSeconds.size() + 1> buckets{};
  uint64_t count = 0;
  uint64_t sum_ns = 0;
  void add(const HistogramCells& cells) noexcept;
  void add(const HistogramSum& other) noexcept;
};

// Two names: (route, service) or (service, instance). Looked up by a pair of views.
using NamePair = std::pair<std::string, std::string>;
using NameViews = std::pair<std::string_view, std::string_view>;
struct NamePairHash {
  using is_transparent = void;
  size_t operator()(const NameViews& k) const noexcept;
  size_t operator()(const NamePair& k) const noexcept { return (*this)(NameViews{k.first, k.second}); }
};
struct NamePairEq {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const noexcept {
    return std::string_view(a.first) == std::string_view(b.first) && std::string_view(a.second) == std::string_view(b.second);
  }
};
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// What is in the current snapshot: series of anything else are dropped.
// The instance keys of one service object: an open-addressing index over the object's
// endpoints (held), one allocation however many instances. Shared by the LiveNames of every
// snapshot that keeps the object, so a change of one service does not copy every other
// service's instances.
struct InstanceKeys {
  explicit InstanceKeys(std::shared_ptr<const Service> service);
  bool contains(std::string_view key) const;

 private:
  std::shared_ptr<const Service> service_;
  std::vector<uint32_t> slots_;  // endpoint index + 1; 0 = empty; size a power of two
};
struct LiveNames {
  // The names the route list gives: shared by the next snapshots while the list and the
  // services' names stay.
  struct RouteNames {
    std::unordered_set<NamePair, NamePairHash, NamePairEq> routes;   // (route, service)
    std::unordered_set<NamePair, NamePairHash, NamePairEq> mirrors;  // (route, shadow service)
    // service name -> its positions in the snapshot's services (a name may be shared)
    std::unordered_map<std::string, std::vector<uint32_t>, NameHash, std::equal_to<>> services;
  };
  std::shared_ptr<const RouteNames> names = std::make_shared<const RouteNames>();
  std::vector<std::shared_ptr<const InstanceKeys>> keys;  // by service position; never null
  bool has_mirror(std::string_view route, std::string_view service) const;
  bool has_route(std::string_view route, std::string_view service) const;
  bool has_instance(std::string_view service, std::string_view instance) const;
  bool has_service(std::string_view service) const;
};

// What a snapshot may have lost against the one before it: which series the workers must look at.
struct LostNames {
  // Route, service or mirror names (or no snapshot before): every series is looked at.
  bool names = false;
  // Otherwise only these (service, instance) pairs, the instances gone from the services that
  // changed (a pair may still be live through another service of the same name).
  std::vector<NamePair> instances;
  bool any() const { return names || !instances.empty(); }
  static LostNames all() { return LostNames{true, {}}; }
};

// Everything one or more workers counted, summed: plain numbers keyed by label values.
struct RequestTotals {
  // (route, service, method class, code)
  std::map<std::tuple<std::string, std::string, MethodClass, uint16_t>, uint64_t> requests;
  std::map<NamePair, HistogramSum> durations;                 // (route, service)
  std::map<std::tuple<std::string, std::string, uint16_t>, uint64_t> upstream_requests;  // (service, instance, code)
  std::map<NamePair, uint64_t> connect_errors;                // (service, instance)
  std::map<NamePair, HistogramSum> upstream_response;         // (service, instance)
  std::map<std::string, uint64_t> retries;                    // service
  std::map<std::string, uint64_t> circuit_open;               // service
  std::map<std::string, uint64_t> local_replies;              // cause
  // (route, shadow service) -> by MirrorResult
  std::map<NamePair, std::array<uint64_t, std::size(kMirrorResultNames)>> mirrors;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
};

class MetricsRecordSink final : public RecordSink {
 public:
  MetricsRecordSink() = default;
  MetricsRecordSink(const MetricsRecordSink&) = delete;
  MetricsRecordSink& operator=(const MetricsRecordSink&) = delete;

  // --- the worker's loop ---
  bool wants_request_details() const override { return false; }
  void on_exchange(const ExchangeRecord& record) override;
  void on_mirror(std::string_view route, std::string_view service, MirrorResult result) override;

  // --- any thread (the control loop) ---
  // Adds this sink's counts to `totals` (under the sink's mutex: a worker adding a series waits).
  void add_to(RequestTotals& totals) const;
  // Series of routes and instances not in `live` are dropped by the worker at its next record
  // (memory stays bounded as instances come and go). `lost` says which series to look at: all of
  // them, only the instances listed (a lookup each, not a pass over every series), or none (a
  // look already asked for stays asked for). Scrapes show only live series either way.
  void set_live(std::shared_ptr<const LiveNames> live, const LostNames& lost = LostNames::all());

 private:
  struct RouteCells {
    std::unordered_map<uint32_t, MetricCell> requests;  // (method class << 16) | code
    HistogramCells duration;
    // The worker's only: the cell of the last key counted (most requests repeat it).
    uint32_t last_key = UINT32_MAX;
    MetricCell* last = nullptr;
  };
  struct InstanceCells {
    std::unordered_map<uint16_t, MetricCell> requests;  // by code
    MetricCell connect_errors;
    HistogramCells response;
    uint32_t last_code = UINT32_MAX;  // the worker's only, as in RouteCells
    MetricCell* last = nullptr;
  };
  // The worker's only: cells by index in one snapshot (null: not looked up yet). Cells are nodes
  // of the maps below, which stay put until prune() erases them; prune() forgets these first.
  struct ByIndex {
    const void* snapshot = nullptr;
    uint64_t generation = 0;
    std::vector<RouteCells*> routes;                      // by route index
    std::vector<std::vector<RouteCells*>> split_routes;   // split routes: by route index, then target
    std::vector<std::vector<InstanceCells*>> instances;   // by service index, then endpoint index
    void reset() {
      snapshot = nullptr;
      routes.clear();
      split_routes.clear();
      instances.clear();
    }
  };
  struct ServiceCells {
    MetricCell retries;
    MetricCell circuit_open;
  };
  template <class Map, class Key>
  auto& cell(Map& map, const Key& key);
  RouteCells& route_cells(const ExchangeRecord& r);
  InstanceCells& instance_cells(const ExchangeRecord& r, const AttemptRecord& a);
  void prune();

  mutable std::mutex mu_;  // held by the worker while it changes a map, by readers while they read
  std::unordered_map<NamePair, RouteCells, NamePairHash, NamePairEq> routes_;
  std::unordered_map<NamePair, InstanceCells, NamePairHash, NamePairEq> instances_;
  std::unordered_map<std::string, ServiceCells, NameHash, std::equal_to<>> services_;
  std::unordered_map<std::string, MetricCell, NameHash, std::equal_to<>> local_replies_;
  std::unordered_map<NamePair, std::array<MetricCell, std::size(kMirrorResultNames)>, NamePairHash, NamePairEq> mirrors_;
  MetricCell bytes_in_, bytes_out_;
  std::atomic<bool> prune_pending_{false};
  std::shared_ptr<const LiveNames> live_;  // under mu_
  LostNames lost_;  // under mu_: what the next prune() looks at
  ByIndex by_index_;  // the worker's only
};

}  // namespace berth
