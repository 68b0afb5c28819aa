#include "proxy/lb/lb.h"

#include "proxy/base/random.h"
#include "proxy/lb/lb_build.h"

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

std::shared_ptr<const LbTable> make_lb_table(const Service& service) {
  using Policy = config::LoadBalancing::Policy;
  auto table = std::make_shared<LbTable>();
  table->policy = service.policy.lb.policy;
  table->weights.reserve(service.endpoints.size());
  table->scaled.reserve(service.endpoints.size());
  for (const Endpoint& e : service.endpoints) {
    const uint32_t w = e.weight ? e.weight : 1;
    table->weights.push_back(w);
    table->scaled.push_back(int64_t{w} * kFullWeightPermille);
  }
  switch (table->policy) {
    case Policy::kLeastRequest: fill_cumulative(*table); break;
    case Policy::kHash: fill_ring(*table, service); break;
    case Policy::kSticky: fill_ids(*table, service); break;
    case Policy::kRoundRobin: break;
  }
  return table;
}

bool same_selection_input(const Service& a, const Service& b) noexcept {
  if (a.name != b.name || !(a.policy.lb == b.policy.lb) || a.endpoints.size() != b.endpoints.size()) return false;
  // Workers carry endpoint pools with the selector: their connections' transport must match.
  if (a.policy.tls.enabled != b.policy.tls.enabled || a.upstream_tls != b.upstream_tls) return false;
  for (size_t e = 0; e < a.endpoints.size(); ++e)
    if (a.endpoints[e].key != b.endpoints[e].key || a.endpoints[e].weight != b.endpoints[e].weight) return false;
  return true;
}

std::shared_ptr<const LbTable> lb_table_for(const Service& fresh, const Service* previous) {
  if (previous && previous->lb_table && previous->lb_table->fits(fresh) && same_selection_input(fresh, *previous))
    return previous->lb_table;
  return make_lb_table(fresh);
}

std::unique_ptr<Selector> make_selector(std::shared_ptr<const LbTable> table, uint64_t seed) {
  using Policy = config::LoadBalancing::Policy;
  switch (table->policy) {
    case Policy::kLeastRequest: return std::make_unique<LeastRequest>(std::move(table), seed);
    case Policy::kHash: return std::make_unique<RingHash>(std::move(table));
    case Policy::kSticky: return std::make_unique<Sticky>(std::move(table));
    case Policy::kRoundRobin: break;
  }
  return std::make_unique<SmoothWeightedRoundRobin>(std::move(table));
}

std::shared_ptr<const LbTable> table_of(const Service& service) {
  return service.lb_table && service.lb_table->fits(service) ? service.lb_table : make_lb_table(service);
}

std::unique_ptr<Selector> make_selector(const Service& service, uint64_t seed) {
  return make_selector(table_of(service), seed);
}

// ---------------------------------------------------------------- smooth weighted round robin

SmoothWeightedRoundRobin::SmoothWeightedRoundRobin() : Selector(std::make_shared<LbTable>()) {}

SmoothWeightedRoundRobin::SmoothWeightedRoundRobin(std::shared_ptr<const LbTable> table)
    : Selector(std::move(table)), current_(table_->size(), 0) {}

SmoothWeightedRoundRobin::SmoothWeightedRoundRobin(const Service& service)
    : SmoothWeightedRoundRobin(table_of(service)) {}

void SmoothWeightedRoundRobin::reset(const Service& service) {
  table_ = make_lb_table(service);
  current_.assign(table_->size(), 0);
}

int SmoothWeightedRoundRobin::pick(const Service& service) {
  if (service.endpoints.size() != table_->size()) reset(service);
  return pick(PickKey{}, AllEligible());
}

int SmoothWeightedRoundRobin::pick(const PickKey&, const EndpointStatus& status) {
  return step(table_->scaled, current_, status);
}

// Weights are kept in thousandths, so a ramped weight (weight x permille) is as exact as a full
// one, and scaling every weight by 1000 leaves the sequence of picks unchanged.
int SmoothWeightedRoundRobin::step(const std::vector<int64_t>& scaled, std::vector<int64_t>& current,
                                   const EndpointStatus& status) {
  const size_t n = scaled.size();
  if (n == 1) return status.eligible(0) ? 0 : -1;
  const bool ramping = status.ramping();
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < n; ++i) {
    if (!status.eligible(i)) continue;
    const int64_t w = ramping ? scaled[i] / kFullWeightPermille * status.weight_permille(i) : scaled[i];
    current[i] += w;
    total += w;
    if (best < 0 || current[i] > current[static_cast<size_t>(best)]) best = static_cast<int>(i);
  }
  if (best >= 0) current[static_cast<size_t>(best)] -= total;
  return best;
}

}  // namespace berth
