#include "proxy/lb/lb.h"

#include "proxy/base/random.h"

#include <algorithm>

namespace berth {

uint32_t slow_start_permille(int64_t since_ms, int64_t now_ms, int64_t window_ms) noexcept {
  const int64_t elapsed = now_ms - since_ms;
  if (window_ms <= 0 || elapsed >= window_ms) return kFullWeightPermille;
  if (elapsed <= 0) return kSlowStartFloorPermille;
  const auto share = static_cast<uint32_t>(elapsed * kFullWeightPermille / window_ms);
  return std::max(kSlowStartFloorPermille, share);
}

bool uses_slow_start(const config::LoadBalancing& lb) noexcept {
  using Policy = config::LoadBalancing::Policy;
  return lb.slow_start.count() > 0 && (lb.policy == Policy::kRoundRobin || lb.policy == Policy::kLeastRequest);
}

uint64_t hash_bytes(std::string_view bytes, uint64_t seed) noexcept {
  uint64_t h = 0xcbf29ce484222325ULL ^ (seed * kGoldenGamma);
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  // FNV alone mixes the last bytes poorly; finish with the splitmix64 finaliser.
  return mix64(h);
}

uint64_t instance_id(std::string_view service, std::string_view endpoint_key) noexcept {
  uint64_t id = hash_bytes(endpoint_key, hash_bytes(service, 0x5eed));
  return id ? id : 1;
}

void format_instance_id(uint64_t id, char out[16]) noexcept {
  static const char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, id >>= 4) out[i] = hex[id & 0xf];
}

bool parse_instance_id(std::string_view text, uint64_t& id) noexcept {
  if (text.size() != 16) return false;
  uint64_t v = 0;
  for (char c : text) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  id = v;
  return true;
}

std::unique_ptr<Selector> make_selector(const Service& service, uint64_t seed) {
  using Policy = config::LoadBalancing::Policy;
  switch (service.policy.lb.policy) {
    case Policy::kLeastRequest: return std::make_unique<LeastRequest>(service, seed);
    case Policy::kHash: return std::make_unique<RingHash>(service);
    case Policy::kSticky: return std::make_unique<Sticky>(service);
    case Policy::kRoundRobin: break;
  }
  return std::make_unique<SmoothWeightedRoundRobin>(service);
}

// ---------------------------------------------------------------- smooth weighted round robin

void SmoothWeightedRoundRobin::reset(const Service& service) {
  current_.assign(service.endpoints.size(), 0);
  weights_.clear();
  for (const Endpoint& e : service.endpoints) weights_.push_back(int64_t{e.weight ? e.weight : 1} * kFullWeightPermille);
}

int SmoothWeightedRoundRobin::pick(const Service& service) {
  if (service.endpoints.size() != weights_.size()) reset(service);
  return pick(PickKey{}, AllEligible());
}

// Weights are kept in thousandths, so a ramped weight (weight x permille) is as exact as a full
// one, and scaling every weight by 1000 leaves the sequence of picks unchanged.
int SmoothWeightedRoundRobin::pick(const PickKey&, const EndpointStatus& status) {
  const size_t n = weights_.size();
  if (n == 1) return status.eligible(0) ? 0 : -1;
  const bool ramping = status.ramping();
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < n; ++i) {
    if (!status.eligible(i)) continue;
    const int64_t w = ramping ? weights_[i] / kFullWeightPermille * status.weight_permille(i) : weights_[i];
    current_[i] += w;
    total += w;
    if (best < 0 || current_[i] > current_[static_cast<size_t>(best)]) best = static_cast<int>(i);
  }
  if (best >= 0) current_[static_cast<size_t>(best)] -= total;
  return best;
}

}  // namespace berth
