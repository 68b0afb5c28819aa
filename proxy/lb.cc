#include "proxy/lb.h"

namespace berth {

uint64_t hash_bytes(std::string_view bytes, uint64_t seed) noexcept {
  uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  // FNV alone mixes the last bytes poorly; finish with the splitmix64 finaliser.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
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
  for (const Endpoint& e : service.endpoints) weights_.push_back(e.weight ? e.weight : 1);
}

int SmoothWeightedRoundRobin::pick(const Service& service) {
  if (service.endpoints.size() != weights_.size()) reset(service);
  return pick(PickKey{}, AllEligible());
}

int SmoothWeightedRoundRobin::pick(const PickKey&, const EndpointStatus& status) {
  const size_t n = weights_.size();
  if (n == 1) return status.eligible(0) ? 0 : -1;
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < n; ++i) {
    if (!status.eligible(i)) continue;
    current_[i] += weights_[i];
    total += weights_[i];
    if (best < 0 || current_[i] > current_[static_cast<size_t>(best)]) best = static_cast<int>(i);
  }
  if (best >= 0) current_[static_cast<size_t>(best)] -= total;
  return best;
}

}  // namespace berth
