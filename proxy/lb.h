// Endpoint selection. The selector state lives in each worker (no lock per selection); it is
// rebuilt when a new snapshot arrives.
#pragma once

#include <cstdint>
#include <vector>

#include "proxy/route_table.h"

namespace berth {

// Smooth weighted round robin: over any window of sum(weights) picks, each endpoint is chosen
// exactly weight times, interleaved rather than in bursts.
class SmoothWeightedRoundRobin {
 public:
  void reset(const Service& service);
  // Index into service.endpoints, or -1 when it has none.
  int pick(const Service& service);

 private:
  std::vector<int64_t> current_;
};

}  // namespace berth
