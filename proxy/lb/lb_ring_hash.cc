// Consistent hashing on a ring (see lb.h).
#include <algorithm>
#include <string>

#include "proxy/lb/lb.h"
#include "proxy/lb/lb_build.h"

namespace berth {
namespace {
constexpr uint64_t kPointsPerWeight = 160;
constexpr uint64_t kMaxPoints = 1u << 17;
}  // namespace

void fill_ring(LbTable& table, const Service& service) {
  uint64_t total_weight = 0;
  for (uint32_t w : table.weights) total_weight += w;
  if (total_weight == 0) return;
  const uint64_t per_weight = std::max<uint64_t>(4, std::min(kPointsPerWeight, kMaxPoints / total_weight));
  std::vector<LbTable::RingPoint>& ring = table.ring;
  ring.reserve(per_weight * total_weight);
  for (size_t i = 0; i < service.endpoints.size(); ++i) {
    // Points derive from the endpoint's identity only, so they stay put when others come and go.
    const uint64_t base = hash_bytes(service.endpoints[i].key);
    const uint64_t points = per_weight * table.weights[i];
    for (uint64_t p = 0; p < points; ++p)
      ring.push_back({hash_bytes(std::string_view(reinterpret_cast<const char*>(&p), sizeof p), base), static_cast<uint32_t>(i)});
  }
  std::sort(ring.begin(), ring.end(), [](const LbTable::RingPoint& a, const LbTable::RingPoint& b) {
    return a.hash != b.hash ? a.hash < b.hash : a.endpoint < b.endpoint;
  });
}

RingHash::RingHash(std::shared_ptr<const LbTable> table) : Selector(std::move(table)), fallback_(table_->size(), 0) {}

RingHash::RingHash(const Service& service) : RingHash(table_of(service)) {}

int RingHash::pick(const PickKey& key, const EndpointStatus& status) {
  const std::vector<LbTable::RingPoint>& ring = table_->ring;
  if (ring.empty()) return -1;
  if (!key.has_hash) return SmoothWeightedRoundRobin::step(table_->scaled, fallback_, status);
  auto it = std::lower_bound(ring.begin(), ring.end(), key.hash,
                             [](const LbTable::RingPoint& p, uint64_t h) { return p.hash < h; });
  size_t at = static_cast<size_t>(it - ring.begin());
  for (size_t k = 0; k < ring.size(); ++k) {
    const LbTable::RingPoint& p = ring[(at + k) % ring.size()];
    if (status.eligible(p.endpoint)) return static_cast<int>(p.endpoint);
  }
  return -1;
}

}  // namespace berth
