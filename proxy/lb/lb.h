// Endpoint selection. Each service object carries an immutable LbTable (weights, ring, ids),
// built once on the control thread and shared by every worker; a Selector pairs it with the
// little state that changes per pick and lives in one worker: no lock per selection. Policies (config `lb.policy`, label
// berth.lb): smooth weighted round robin (default), least request with weighted power-of-two
// choices, consistent hashing (ring hash) and sticky cookies. Which instances may be chosen
// right now (health, ejection, circuit breakers, retries' already-tried instances) and how much of
// its weight each has (slow start) is asked of an EndpointStatus, so the selectors stay pure and
// are tested without sockets.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/model/route_table.h"

namespace berth {

// Slow start (lb.slow_start): a newly routable instance gets max(floor, elapsed / window) of its
// weight, in thousandths, until the window has passed.
constexpr uint32_t kFullWeightPermille = 1000;
constexpr uint32_t kSlowStartFloorPermille = 100;
// The share of its weight an instance routable since since_ms has at now_ms (1000 = all of it).
uint32_t slow_start_permille(int64_t since_ms, int64_t now_ms, int64_t window_ms) noexcept;
// Whether the policy ramps new instances up: round_robin and least_request with a slow_start
// window. hash and sticky ignore slow start (a key or cookie names its instance).
bool uses_slow_start(const config::LoadBalancing& lb) noexcept;

// What a selector may ask about the endpoints of its service (indexes into service.endpoints).
class EndpointStatus {
 public:
  virtual ~EndpointStatus() = default;
  virtual bool eligible(size_t index) const = 0;
  virtual uint32_t active(size_t index) const = 0;  // requests in flight from this worker
  // True while some endpoint may be in its slow-start window. Only then do selectors ask
  // weight_permille: a service without a ramp in progress costs one branch per pick.
  virtual bool ramping() const { return false; }
  // The share of its weight endpoint index gets now, in thousandths (kFullWeightPermille = all).
  virtual uint32_t weight_permille(size_t) const { return kFullWeightPermille; }
};

// Every endpoint eligible, nothing in flight.
class AllEligible final : public EndpointStatus {
 public:
  bool eligible(size_t) const override { return true; }
  uint32_t active(size_t) const override { return 0; }
};

// Per-request input to a selection.
struct PickKey {
  uint64_t hash = 0;         // policy hash: hash of the client address / header / cookie
  bool has_hash = false;
  uint64_t sticky = 0;       // policy sticky: the instance id from the request's cookie
  bool has_sticky = false;
};

// What a service's selection needs that does not change per request: weights, the running sums
// least request draws from, the hash policy's sorted ring, the sticky policy's instance ids. Built
// once per service object, on the control thread when the object is first published
// (Service::lb_table), and read by every worker's selector; a worker keeps only what changes per
// pick (round-robin positions, its random state), which is cheap to make. Immutable once built.
struct LbTable {
  struct RingPoint {
    uint64_t hash;
    uint32_t endpoint;
  };
  config::LoadBalancing::Policy policy = config::LoadBalancing::Policy::kRoundRobin;
  std::vector<uint32_t> weights;  // per endpoint, at least 1
  std::vector<int64_t> scaled;    // weight x kFullWeightPermille: round robin (and the fallbacks)
  std::vector<uint64_t> cumulative;  // least_request: running sum of weights
  std::vector<RingPoint> ring;       // hash: sorted by (hash, endpoint)
  std::vector<uint64_t> ids;         // sticky: instance_id of each endpoint
  std::unordered_map<uint64_t, uint32_t> by_id;  // sticky: instance id -> endpoint

  size_t size() const noexcept { return weights.size(); }
  // Whether it was built for a service like `service` (same policy and number of endpoints).
  bool fits(const Service& service) const noexcept {
    return policy == service.policy.lb.policy && size() == service.endpoints.size();
  }
};

// The table of service.policy.lb for its endpoints. Costs what the policy needs: for the hash
// policy, hashing and sorting up to 131,072 ring points.
std::shared_ptr<const LbTable> make_lb_table(const Service& service);
// The table for `fresh`, a new service object replacing `previous` (null: none): previous's
// table when both select from the same instances, weights and policy, else a new one.
std::shared_ptr<const LbTable> lb_table_for(const Service& fresh, const Service* previous);
// Same name, instances, weights, load-balancing policy and upstream TLS context: what one's
// selection state (and a worker's endpoint pools) was made from serves the other.
bool same_selection_input(const Service& a, const Service& b) noexcept;

class Selector {
 public:
  virtual ~Selector() = default;
  // Index into the service's endpoints, or -1 when none is eligible.
  virtual int pick(const PickKey& key, const EndpointStatus& status) = 0;
  // The shared table this selector reads.
  const LbTable& table() const noexcept { return *table_; }
  const std::shared_ptr<const LbTable>& shared_table() const noexcept { return table_; }

 protected:
  explicit Selector(std::shared_ptr<const LbTable> table) : table_(std::move(table)) {}
  std::shared_ptr<const LbTable> table_;  // never null
};

// The selector for service.policy.lb, reading service.lb_table when the service carries one that
// fits it (else building its own). seed varies the random choices per worker.
std::unique_ptr<Selector> make_selector(const Service& service, uint64_t seed);
// The selector for the policy `table` was built for, reading it.
std::unique_ptr<Selector> make_selector(std::shared_ptr<const LbTable> table, uint64_t seed);

// 64-bit hash of bytes (FNV-1a with a strong finaliser): stable across runs and processes.
uint64_t hash_bytes(std::string_view bytes, uint64_t seed = 0) noexcept;
// The opaque id of an instance in a sticky cookie: a hash of service name and endpoint key, so
// the cookie names the instance without revealing its address. Never 0.
uint64_t instance_id(std::string_view service, std::string_view endpoint_key) noexcept;
// 16 lower-case hex digits / back; parse returns false on anything else.
void format_instance_id(uint64_t id, char out[16]) noexcept;
bool parse_instance_id(std::string_view text, uint64_t& id) noexcept;

// Smooth weighted round robin (nginx): over any window of sum(weights) picks each endpoint is
// chosen exactly weight times, interleaved rather than in bursts. Ineligible endpoints are
// skipped; the others keep their proportions. While ramping, each endpoint counts with
// weight x weight_permille.
class SmoothWeightedRoundRobin final : public Selector {
 public:
  SmoothWeightedRoundRobin();  // no endpoints
  explicit SmoothWeightedRoundRobin(std::shared_ptr<const LbTable> table);
  explicit SmoothWeightedRoundRobin(const Service& service);
  // Starts over with the weights of `service` (a table of its own).
  void reset(const Service& service);
  // Index into service.endpoints, or -1 when it has none (every endpoint eligible). A service
  // with another number of endpoints than the table resets it first.
  int pick(const Service& service);
  int pick(const PickKey& key, const EndpointStatus& status) override;

  // The smooth weighted round robin step over scaled weights (LbTable::scaled), with the
  // worker's current weights: shared with the fallbacks of hash and sticky.
  static int step(const std::vector<int64_t>& scaled, std::vector<int64_t>& current, const EndpointStatus& status);

 private:
  std::vector<int64_t> current_;  // per worker: the running "current weight" of each endpoint
};

// Least request, Envoy style: two endpoints drawn at random in proportion to their weights;
// the one with fewer requests in flight per unit of weight wins (ties: the first drawn). While
// ramping, a drawn endpoint is kept with probability weight_permille / 1000 (else drawn again),
// and loads are compared per unit of the ramped weight.
class LeastRequest final : public Selector {
 public:
  LeastRequest(std::shared_ptr<const LbTable> table, uint64_t seed);
  LeastRequest(const Service& service, uint64_t seed);
  int pick(const PickKey& key, const EndpointStatus& status) override;

 private:
  int draw(const EndpointStatus& status, bool ramping);
  uint64_t next_random() noexcept;
  uint64_t state_;  // per worker
};

// Consistent hashing on a ring: each endpoint owns weight x kPointsPerWeight points (capped so
// that 1,000 instances stay cheap); a key goes to the first point at or after its hash, skipping
// ineligible endpoints. Removing one of n endpoints moves only the keys it owned, about 1/n.
class RingHash final : public Selector {
 public:
  explicit RingHash(std::shared_ptr<const LbTable> table);
  explicit RingHash(const Service& service);
  // Without a hash (no header/cookie in the request) falls back to round robin.
  int pick(const PickKey& key, const EndpointStatus& status) override;
  size_t ring_size() const { return table_->ring.size(); }

 private:
  std::vector<int64_t> fallback_;  // round-robin current weights
};

// Sticky sessions: the request's cookie names an instance (instance_id); while that instance
// is eligible it gets the request. Otherwise (no cookie, instance gone or unhealthy) smooth
// weighted round robin chooses and the caller re-pins the cookie.
class Sticky final : public Selector {
 public:
  explicit Sticky(std::shared_ptr<const LbTable> table);
  explicit Sticky(const Service& service);
  int pick(const PickKey& key, const EndpointStatus& status) override;
  uint64_t id_of(size_t index) const { return table_->ids[index]; }

 private:
  std::vector<int64_t> fallback_;  // round-robin current weights
};

}  // namespace berth
