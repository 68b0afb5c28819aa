// Counters behind a small interface. Each worker owns a block of counters that only its thread
// writes (relaxed load+store, no locked instructions on the request path); readers (admin, and
// later the Prometheus exporter) sum the blocks.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

#include "proxy/base/clock.h"

namespace berth {

enum class Counter : uint8_t {
  kConnectionsAccepted,
  kConnectionsClosed,
  kRequests,
  kResponses1xx, kResponses2xx, kResponses3xx, kResponses4xx, kResponses5xx,
  kLocalReplies,
  kUpstreamConnects,
  kUpstreamConnectFailures,
  kUpstreamReuses,
  kUpstreamRetries,
  kRequestsRejected,        // malformed or over a limit: never forwarded
  kAcceptPauses,            // EMFILE / connection limit
  kCircuitOpen,             // 503 circuit-open: a circuit-breaker limit was reached
  kOutlierEjections,        // instances ejected by passive health checking
  kRetryBudgetExhausted,    // a retry was possible but the retry budget said no
  kProxyProtocolRejected,   // connections closed for a missing or malformed PROXY header
  kIdleReclaimed,           // idle keep-alive connections closed to make room at the connection limit
  kUpstreamUnsolicited,     // upstream connections closed for bytes that answered no request
  kCount_
};

std::string_view counter_name(Counter c);

class StatsSink {
 public:
  virtual ~StatsSink() = default;
  virtual void add(Counter c, uint64_t n = 1) = 0;
};

class WorkerStats final : public StatsSink {
 public:
  void add(Counter c, uint64_t n = 1) override {
    auto& v = values_[static_cast<size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // Undoes one add(c): a response counted when its head was queued, replaced before it left.
  void take_back(Counter c) {
    auto& v = values_[static_cast<size_t>(c)];
    v.store(v.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  uint64_t get(Counter c) const { return values_[static_cast<size_t>(c)].load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Counter::kCount_)> values_{};
};

// Gauges read on demand.
struct WorkerGauges {
  std::atomic<uint64_t> connections{0};
  std::atomic<uint64_t> upstream_idle{0};
  std::atomic<uint64_t> upstream_open{0};  // upstream connections open (idle or busy)
};

}  // namespace berth
