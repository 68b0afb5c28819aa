// The pure parts of Berth's etcd registry: the integer encoding of the etcd v3 JSON
// gateway, the key layout under the prefix, the instance value schema, the front door's
// table (instances -> a DiscoveredSet, bad values rejected one by one) and the sidecar's
// publication (a DiscoveredSet -> the keys and values of its host, and what changed per
// container). No sockets, no clock; unit-tested in tests/unit/registry_codec_test.cc.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "discovery/source.h"
#include "proxy/base/base64.h"  // the gateway's bytes fields are standard padded base64

namespace berth::discovery::registry {

// The range_end that makes [key, end) every key starting with `prefix`: its last byte + 1
// (trailing 0xff bytes dropped); "\0" (all keys) when nothing is left.
std::string prefix_range_end(std::string_view prefix);

// An int64 field of a gateway reply: a JSON string of digits (what the gateway sends) or a
// number; `fallback` when absent (zero values are omitted); nullopt when malformed.
std::optional<int64_t> json_int64(const nlohmann::json& object, const char* name, int64_t fallback = 0);

// A front door reads the prefix in pages (one range each, all at the first page's revision):
// one range of everything could be larger than the HTTP client takes (64 MiB) or than a call's
// timeout allows. The keys of the next page: as many as fit `page_bytes` of reply if each were
// as large as the largest key + value met so far in this read (base64 is 4/3 of it), the
// largest value a front door reads (kMaxValueBytes) before any; from 1 to kRangePageMaxKeys.
constexpr size_t kRangePageBytes = 8u << 20;
constexpr int64_t kRangePageMaxKeys = 1000;
int64_t range_page_limit(size_t page_bytes, size_t largest_kv_bytes);

// <prefix>/instances/
std::string instances_prefix(std::string_view prefix);
// <prefix>/instances/<host>/
std::string host_prefix(std::string_view prefix, std::string_view host_id);

// One routable instance as stored in etcd.
struct RegistryRoute {
  std::vector<std::string> hosts;  // normalised patterns; empty = any host
  std::string path = "/";
  int32_t priority = 0;
  bool operator==(const RegistryRoute& o) const {
    return hosts == o.hosts && path == o.path && priority == o.priority;
  }
};
struct Instance {
  std::string service;
  std::vector<RegistryRoute> routes;  // at least one
  std::string address;                // "ip:port" / "[ip6]:port", numeric
  uint32_t weight = 1;                // 1..1000
  std::string health = "healthy";     // as the sidecar sees it: "healthy" | "unhealthy" | "unchecked"
  std::string host_id;                // informational
  std::string container;              // the container's name (its default service name)
  // The facts its routes and their policy are made of (access control, redirects, matchers,
  // rewrites...): a front door rebuilds the routes from them with Docker discovery's label
  // code, and `routes` above is then only what an older front door reads. Null: a value of a
  // sidecar that did not publish them (routes as listed, without policy).
  std::shared_ptr<const PublishedPolicy> policy;
};

// The largest value a front door reads (the files a policy carries count): etcd's own limit
// per request is 1.5 MiB by default.
constexpr size_t kMaxValueBytes = 1u << 20;

// Why `address` cannot be an instance's: "unspecified" (0.0.0.0, ::), "broadcast"
// (255.255.255.255), "multicast" (224.0.0.0/4, ff00::/8) or "link-local" (169.254.0.0/16, where
// clouds serve instance metadata, fe80::/10); IPv4-mapped IPv6 as its IPv4. "" when it may be.
std::string_view unroutable_address(const sockaddr_storage& address);

// What a front door shows of a published container name (metrics, access log, status page):
// a Docker name (a letter or digit, then letters, digits, '_', '.', '-') cut to its first
// kMaxContainerDisplayName bytes, or "" for anything else. The name itself still names the
// container where labels read it (its default service name).
inline constexpr size_t kMaxContainerDisplayName = 255;
std::string container_display_name(std::string_view name);

std::string encode_instance(const Instance& instance);
// nullopt with *problem set when the value is not a well-formed instance.
std::optional<Instance> decode_instance(std::string_view value, std::string* problem);

// Operator policy a front door applies to what the registry asks for (values are not trusted
// more than container labels): docker.allowed_hosts, max_priority, allow_any_host,
// forward_auth_addresses.
struct TablePolicy {
  std::vector<std::string> allowed_hosts;
  int32_t max_priority = INT32_MAX;
  bool allow_any_host = true;
  std::optional<std::vector<std::string>> forward_auth_addresses;  // unset: any
  // The policy every service of the table gets (registry.service_policy).
  config::ServicePolicy service_policy;
  // A sidecar's view: its own host's keys are skipped (its Docker discovery routes those
  // directly) and every other instance is marked Endpoint::remote. Empty: a front door.
  std::string local_host_id;
};

// The most host + path routes (one per host of each route, or one for a route without hosts)
// a front door takes from one key: a 1 MiB value could make 150,000, and every later change
// anywhere in the registry would rebuild them all.
inline constexpr size_t kMaxRoutesPerKey = 10000;
// The most routes a value lists, and hosts one of them lists: as many as a container's labels may
// declare (a list label holds at most 1000 items).
inline constexpr size_t kMaxListItems = 1000;

// The sidecar's side: the keys and values its host should have, from its Docker set. Each
// instance of a container (one per service it serves) is <host prefix><container id>/<n>; the
// address is advertise_address with the instance's port.
struct Publication {
  std::map<std::string, std::string> kvs;  // key -> value
  // Keys whose value would be over kMaxValueBytes (a huge htpasswd): left out, so that neither
  // etcd (1.5 MiB per request) refuses the container's transaction again and again nor a
  // front door routes the instance without its policy.
  std::vector<std::string> too_large;
};
Publication publication_from_set(const DiscoveredSet& set, std::string_view prefix, std::string_view host_id,
                                 std::string_view advertise_address);

// The container part of a key under the host prefix ("<container>/<n>" -> "<container>").
std::string container_of(std::string_view key, std::string_view host_prefix);

// What must change to go from `have` to `want`, grouped by container: one transaction each,
// those with puts (in container order) before those of gone containers (deletes only).
struct ContainerChange {
  std::string container;
  std::map<std::string, std::string> puts;
  std::vector<std::string> deletes;
};
std::vector<ContainerChange> diff_publication(const std::map<std::string, std::string>& have,
                                              const std::map<std::string, std::string>& want,
                                              std::string_view host_prefix);

}  // namespace berth::discovery::registry
