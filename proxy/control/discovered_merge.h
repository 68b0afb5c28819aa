// How the config file and each discovery source make one table of services and routes.
//
// A service name belongs to the first that has it: the config file, then the sources in their
// order (Docker before the registry). A later service of that name is left out, with every route
// that would send to it: two services of one name would share their series in /metrics and their
// line in /api/status. A host + path the config file routes is the file's, whatever matchers a
// discovered route adds; a host + path (with the same matchers) that an earlier source routes is
// that source's. What is left out is listed, with the reason, in /api/routes "rejected".
//
// Pure: no I/O, no clock.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "discovery/source.h"
#include "proxy/model/route_table.h"

namespace berth {

using DiscoveredSets = std::vector<std::shared_ptr<const discovery::DiscoveredSet>>;  // null: none yet

constexpr uint32_t kLeftOut = std::numeric_limits<uint32_t>::max();

struct MergedServices {
  // The config file's services, then each source's in order, minus those left out.
  std::vector<ServicePtr> services;
  // index[s][j]: where service j of source s is in `services` (kLeftOut: its name was taken).
  std::vector<std::vector<uint32_t>> index;
  // The names taken from a later source: name -> who has it (0: the config file, s + 1: source s).
  std::unordered_map<std::string, size_t> contested;
};

MergedServices merge_services(const std::vector<ServicePtr>& configured, const DiscoveredSets& sets);

// The service names source `source` may not have, each with who has it ("the config file",
// "discovery source 'docker'"): the config file's and those of the sources before it. Given to
// the source (Source::reserve_service_names) so that what merge_services leaves out of it claims
// nothing there. source_names[s]: source s's name.
std::map<std::string, std::string> reserved_service_names(const std::vector<ServicePtr>& configured,
                                                          const DiscoveredSets& sets, size_t source,
                                                          const std::vector<std::string>& source_names);

struct MergedRoutes {
  std::vector<Route> routes;  // the config file's, then each source's kept, service indices into `services`
  // {what (the route's container, or its source), why}, sorted, no repeats.
  std::vector<std::pair<std::string, std::string>> left_out;
};

// source_names[s]: source s's name (as Source::name()).
MergedRoutes merge_routes(const std::vector<Route>& configured, const DiscoveredSets& sets,
                          const MergedServices& services, const std::vector<std::string>& source_names);

}  // namespace berth
