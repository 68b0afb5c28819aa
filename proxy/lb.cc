#include "proxy/lb.h"

namespace berth {

void SmoothWeightedRoundRobin::reset(const Service& service) {
  current_.assign(service.endpoints.size(), 0);
}

int SmoothWeightedRoundRobin::pick(const Service& service) {
  const auto& eps = service.endpoints;
  if (eps.empty()) return -1;
  if (current_.size() != eps.size()) current_.assign(eps.size(), 0);
  if (eps.size() == 1) return 0;
  int64_t total = 0;
  int best = -1;
  for (size_t i = 0; i < eps.size(); ++i) {
    current_[i] += eps[i].weight;
    total += eps[i].weight;
    if (best < 0 || current_[i] > current_[best]) best = static_cast<int>(i);
  }
  current_[best] -= total;
  return best;
}

}  // namespace berth
