// Consistent hashing on a ring (see lb.h).
#include <algorithm>
#include <string>

#include "proxy/lb/lb.h"

namespace berth {
namespace {
constexpr uint64_t kPointsPerWeight = 160;
constexpr uint64_t kMaxPoints = 1u << 17;
}  // namespace

RingHash::RingHash(const Service& service) : fallback_(service) {
  uint64_t total_weight = 0;
  for (const Endpoint& e : service.endpoints) total_weight += e.weight ? e.weight : 1;
  if (total_weight == 0) return;
  const uint64_t per_weight = std::max<uint64_t>(4, std::min(kPointsPerWeight, kMaxPoints / total_weight));
  ring_.reserve(per_weight * total_weight);
  for (size_t i = 0; i < service.endpoints.size(); ++i) {
    const Endpoint& e = service.endpoints[i];
    // Points derive from the endpoint's identity only, so they stay put when others come and go.
    const uint64_t base = hash_bytes(e.key);
    const uint64_t points = per_weight * (e.weight ? e.weight : 1);
    for (uint64_t p = 0; p < points; ++p) ring_.push_back(Point{hash_bytes(std::string_view(reinterpret_cast<const char*>(&p), sizeof p), base), static_cast<uint32_t>(i)});
  }
  std::sort(ring_.begin(), ring_.end(), [](const Point& a, const Point& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.endpoint < b.endpoint;
  });
}

int RingHash::pick(const PickKey& key, const EndpointStatus& status) {
  if (ring_.empty()) return -1;
  if (!key.has_hash) return fallback_.pick(key, status);
  auto it = std::lower_bound(ring_.begin(), ring_.end(), key.hash,
                             [](const Point& p, uint64_t h) { return p.hash < h; });
  size_t at = static_cast<size_t>(it - ring_.begin());
  for (size_t k = 0; k < ring_.size(); ++k) {
    const Point& p = ring_[(at + k) % ring_.size()];
    if (status.eligible(p.endpoint)) return static_cast<int>(p.endpoint);
  }
  return -1;
}

}  // namespace berth
