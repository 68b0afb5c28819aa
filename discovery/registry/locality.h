// A sidecar's table (east-west): its own host's Docker set ("local") joined with the
// registry's instances of the other hosts ("remote", every endpoint marked Endpoint::remote,
// its own keys left out; see TablePolicy::local_host_id). Pure: no sockets, no clock; tested
// in tests/unit/locality_test.cc.
//
// - A service both sides know keeps the local service (its policy, its position, its routes)
//   with the other hosts' instances appended: selection prefers the local ones while one is
//   routable (compute_routable's standby), then takes the others.
// - A service only other hosts run is added with its routes, after the local services.
// - A remote route whose host + path a local route already serves is dropped; when the local
//   route belongs to another service, the remote claim is listed as rejected (the host's own
//   containers win on their host).
// - Unchanged inputs give unchanged outputs: a merged service is rebuilt only when its local or
//   remote input object changed, and the route list only when either layout did, so the
//   Server's pointer comparisons keep working.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "discovery/source.h"

namespace berth::discovery::registry {

class LocalityMerge {
 public:
  // Either may be null (not known yet): the other alone is the table.
  std::shared_ptr<const DiscoveredSet> merge(const std::shared_ptr<const DiscoveredSet>& local,
                                             const std::shared_ptr<const DiscoveredSet>& remote);

 private:
  struct Joined {
    ServicePtr local, remote, merged;
  };
  std::map<std::string, Joined> joined_;  // by service name, from the last merge
  RouteList local_routes_, remote_routes_, routes_;
  std::vector<std::string> service_names_;  // the last merge's services, in order
  size_t local_count_ = 0;                  // how many of them were local
  std::vector<std::pair<std::string, std::string>> route_rejections_;
};

}  // namespace berth::discovery::registry
