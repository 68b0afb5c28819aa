// Sticky sessions by cookie (see lb.h).
#include "proxy/lb/lb.h"

namespace berth {

Sticky::Sticky(const Service& service) : fallback_(service) {
  for (size_t i = 0; i < service.endpoints.size(); ++i) {
    const uint64_t id = instance_id(service.name, service.endpoints[i].key);
    ids_.push_back(id);
    by_id_.emplace(id, static_cast<uint32_t>(i));
  }
}

int Sticky::pick(const PickKey& key, const EndpointStatus& status) {
  if (key.has_sticky) {
    auto it = by_id_.find(key.sticky);
    if (it != by_id_.end() && status.eligible(it->second)) return static_cast<int>(it->second);
  }
  return fallback_.pick(key, status);
}

}  // namespace berth
