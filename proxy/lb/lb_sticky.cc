// Sticky sessions by cookie (see lb.h).
#include "proxy/lb/lb.h"
#include "proxy/lb/lb_build.h"

namespace berth {

void fill_ids(LbTable& table, const Service& service) {
  table.ids.reserve(service.endpoints.size());
  table.by_id.reserve(service.endpoints.size());
  for (size_t i = 0; i < service.endpoints.size(); ++i) {
    const uint64_t id = instance_id(service.name, service.endpoints[i].key);
    table.ids.push_back(id);
    table.by_id.emplace(id, static_cast<uint32_t>(i));
  }
}

Sticky::Sticky(std::shared_ptr<const LbTable> table) : Selector(std::move(table)), fallback_(table_->size(), 0) {}

Sticky::Sticky(const Service& service) : Sticky(table_of(service)) {}

int Sticky::pick(const PickKey& key, const EndpointStatus& status) {
  if (key.has_sticky) {
    auto it = table_->by_id.find(key.sticky);
    if (it != table_->by_id.end() && status.eligible(it->second)) return static_cast<int>(it->second);
  }
  return SmoothWeightedRoundRobin::step(table_->scaled, fallback_, status);
}

}  // namespace berth
