// Endpoint selection. A Selector is built per service from a snapshot, away from the request
// path, and lives in one worker: no lock per selection. Policies (config `lb.policy`, label
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

class Selector {
 public:
  virtual ~Selector() = default;
  // Index into the service's endpoints, or -1 when none is eligible.
  virtual int pick(const PickKey& key, const EndpointStatus& status) = 0;
};

// The selector for service.policy.lb. seed varies the random choices per worker.
std::unique_ptr<Selector> make_selector(const Service& service, uint64_t seed);

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
  SmoothWeightedRoundRobin() = default;
  explicit SmoothWeightedRoundRobin(const Service& service) { reset(service); }
  void reset(const Service& service);
  // Index into service.endpoints, or -1 when it has none (every endpoint eligible).
  int pick(const Service& service);
  int pick(const PickKey& key, const EndpointStatus& status) override;

 private:
  std::vector<int64_t> current_;
  std::vector<int64_t> weights_;  // weight x kFullWeightPermille: the ramp scales it exactly
};

// Least request, Envoy style: two endpoints drawn at random in proportion to their weights;
// the one with fewer requests in flight per unit of weight wins (ties: the first drawn). While
// ramping, a drawn endpoint is kept with probability weight_permille / 1000 (else drawn again),
// and loads are compared per unit of the ramped weight.
class LeastRequest final : public Selector {
 public:
  LeastRequest(const Service& service, uint64_t seed);
  int pick(const PickKey& key, const EndpointStatus& status) override;

 private:
  int draw(const EndpointStatus& status, bool ramping);
  uint64_t next_random() noexcept;
  std::vector<uint64_t> cumulative_;  // running sum of weights
  std::vector<uint32_t> weights_;
  uint64_t state_;
};

// Consistent hashing on a ring: each endpoint owns weight x kPointsPerWeight points (capped so
// that 1,000 instances stay cheap); a key goes to the first point at or after its hash, skipping
// ineligible endpoints. Removing one of n endpoints moves only the keys it owned, about 1/n.
class RingHash final : public Selector {
 public:
  explicit RingHash(const Service& service);
  // Without a hash (no header/cookie in the request) falls back to round robin.
  int pick(const PickKey& key, const EndpointStatus& status) override;
  size_t ring_size() const { return ring_.size(); }

 private:
  struct Point {
    uint64_t hash;
    uint32_t endpoint;
  };
  std::vector<Point> ring_;  // sorted by hash
  SmoothWeightedRoundRobin fallback_;
};

// Sticky sessions: the request's cookie names an instance (instance_id); while that instance
// is eligible it gets the request. Otherwise (no cookie, instance gone or unhealthy) smooth
// weighted round robin chooses and the caller re-pins the cookie.
class Sticky final : public Selector {
 public:
  explicit Sticky(const Service& service);
  int pick(const PickKey& key, const EndpointStatus& status) override;
  uint64_t id_of(size_t index) const { return ids_[index]; }

 private:
  std::unordered_map<uint64_t, uint32_t> by_id_;
  std::vector<uint64_t> ids_;
  SmoothWeightedRoundRobin fallback_;
};

}  // namespace berth
