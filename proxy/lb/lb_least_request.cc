// Least request with weighted power-of-two choices (see lb.h).
#include <algorithm>

#include "proxy/lb/lb.h"

#include "proxy/base/random.h"
#include "proxy/lb/lb_build.h"

namespace berth {

void fill_cumulative(LbTable& table) {
  uint64_t sum = 0;
  table.cumulative.reserve(table.weights.size());
  for (uint32_t w : table.weights) {
    sum += w;
    table.cumulative.push_back(sum);
  }
}

LeastRequest::LeastRequest(std::shared_ptr<const LbTable> table, uint64_t seed)
    : Selector(std::move(table)), state_(seed ^ 0x2545f4914f6cdd1dULL) {}

LeastRequest::LeastRequest(const Service& service, uint64_t seed) : LeastRequest(table_of(service), seed) {}

uint64_t LeastRequest::next_random() noexcept {
  return splitmix64(state_);
}

// A random eligible endpoint, in proportion to weight (while ramping: to its ramped weight, by
// keeping a draw with probability weight_permille / 1000); -1 when none is eligible.
int LeastRequest::draw(const EndpointStatus& status, bool ramping) {
  const std::vector<uint64_t>& cumulative = table_->cumulative;
  const size_t n = cumulative.size();
  int first_eligible = -1;  // ramping: the fallback when every eligible draw was thrown back
  for (int attempt = 0; attempt < (ramping ? 8 : 4); ++attempt) {
    const uint64_t r = next_random() % cumulative.back();
    const size_t i = static_cast<size_t>(std::upper_bound(cumulative.begin(), cumulative.end(), r) - cumulative.begin());
    if (!status.eligible(i)) continue;
    if (!ramping || next_random() % kFullWeightPermille < status.weight_permille(i)) return static_cast<int>(i);
    if (first_eligible < 0) first_eligible = static_cast<int>(i);
  }
  if (first_eligible >= 0) return first_eligible;
  // Many ineligible: walk from a random start to the next eligible one.
  const size_t start = static_cast<size_t>(next_random() % n);
  for (size_t k = 0; k < n; ++k) {
    const size_t i = (start + k) % n;
    if (status.eligible(i)) return static_cast<int>(i);
  }
  return -1;
}

int LeastRequest::pick(const PickKey&, const EndpointStatus& status) {
  const std::vector<uint32_t>& weights = table_->weights;
  if (weights.empty()) return -1;
  if (weights.size() == 1) return status.eligible(0) ? 0 : -1;
  const bool ramping = status.ramping();
  const int a = draw(status, ramping);
  if (a < 0) return -1;
  // Two distinct candidates when there are (with two endpoints, a repeated draw would make half
  // of all choices blind).
  int b = draw(status, ramping);
  for (int again = 0; again < 3 && b == a; ++again) b = draw(status, ramping);
  if (b < 0 || a == b) return a;
  const auto ia = static_cast<size_t>(a), ib = static_cast<size_t>(b);
  uint64_t wa = weights[ia], wb = weights[ib];
  if (ramping) {
    wa *= status.weight_permille(ia);
    wb *= status.weight_permille(ib);
  }
  // Fewer in flight per unit of weight: active_a / w_a < active_b / w_b.
  const uint64_t load_a = static_cast<uint64_t>(status.active(ia)) * wb;
  const uint64_t load_b = static_cast<uint64_t>(status.active(ib)) * wa;
  return load_b < load_a ? b : a;
}

}  // namespace berth
