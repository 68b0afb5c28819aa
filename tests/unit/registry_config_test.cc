// The registry: section (many hosts on etcd): defaults, every key, and refusals at file:line:col.
#include <unistd.h>

#include <catch2/catch.hpp>

#include "config_helpers.h"

using namespace berth::config;
using berth::config::testing::all_errors;
using berth::config::testing::check_refused_at;
using berth::config::testing::PlacedError;
using berth::config::testing::load;

namespace {
const char* const kListen = "listeners: [\"127.0.0.1:8080\"]\n";
}

TEST_CASE("config: registry is off by default", "[config][registry]") {
  LoadResult r = load(kListen);
  REQUIRE(r.ok());
  CHECK_FALSE(r.config->registry.enabled);
}

TEST_CASE("config: registry front with defaults", "[config][registry]") {
  LoadResult r = load(std::string(kListen) + "registry:\n  etcd: [\"http://127.0.0.1:2379\"]\n  role: front\n");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const Registry& g = r.config->registry;
  CHECK(g.enabled);
  CHECK(g.role == Registry::Role::kFront);
  REQUIRE(g.etcd == std::vector<std::string>{"http://127.0.0.1:2379"});
  CHECK(g.lease_ttl == Millis(10'000));
  CHECK(g.empty_route_grace == Millis(10'000));
  CHECK(g.prefix == "/berth/v1");
  char name[256] = {};
  REQUIRE(gethostname(name, sizeof name - 1) == 0);
  CHECK(g.host_id == name);
  CHECK(g.advertise_address.empty());
}

TEST_CASE("config: every registry key is read", "[config][registry]") {
  LoadResult r = load(std::string(kListen) +
                      "registry:\n"
                      "  etcd: [\"http://10.0.0.5:2379\", \"http://10.0.0.6:2379\", \"http://10.0.0.7:2379\"]\n"
                      "  role: sidecar\n"
                      "  host_id: host-2\n"
                      "  advertise_address: 10.0.0.12\n"
                      "  lease_ttl: 15s\n"
                      "  empty_route_grace: 2500ms\n"
                      "  prefix: /prod/berth\n");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const Registry& g = r.config->registry;
  CHECK(g.role == Registry::Role::kSidecar);
  CHECK(g.etcd.size() == 3);
  CHECK(g.host_id == "host-2");
  CHECK(g.advertise_address == "10.0.0.12");
  CHECK(g.lease_ttl == Millis(15'000));
  CHECK(g.empty_route_grace == Millis(2'500));
  CHECK(g.prefix == "/prod/berth");
}

TEST_CASE("config: registry errors are reported at their place", "[config][registry][errors]") {
  const std::string front = "role: front, ";
  const std::vector<PlacedError> cases = {
      {"registry: {role: front}\n", 2, 11, "registry: missing required key 'etcd'"},
      {"registry: {etcd: [\"http://a:1\"]}\n", 2, 11, "registry: missing required key 'role'"},
      {"registry: {etcd: [\"http://a:1\"], role: edge}\n", 2, 40, "registry.role: expected sidecar or front"},
      {"registry: {etcd: [], role: front}\n", 2, 18, "registry.etcd: expected a non-empty list"},
      {"registry: {etcd: \"http://a:1\", role: front}\n", 2, 18, "registry.etcd: expected a non-empty list"},
      {"registry: {etcd: [\"a:2379\"], role: front}\n", 2, 19, "registry.etcd[0]: expected a member URL"},
      {"registry: {etcd: [\"http://a\"], role: front}\n", 2, 19, "registry.etcd[0]: expected a member URL"},
      {"registry: {etcd: [\"http://a:1\"], role: sidecar}\n", 2, 11,
       "registry: 'advertise_address' is required for a sidecar"},
      {"registry: {etcd: [\"http://a:1\"], role: sidecar, advertise_address: host.example}\n", 2, 68,
       "registry.advertise_address: expected a numeric IP"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "lease_ttl: 1s}\n", 2, 58,
       "registry.lease_ttl: must be whole seconds from 2s"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "lease_ttl: 2500ms}\n", 2, 58,
       "registry.lease_ttl: must be whole seconds"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "lease_ttl: soon}\n", 2, 58,
       "registry.lease_ttl: expected a duration"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "empty_route_grace: later}\n", 2, 66,
       "registry.empty_route_grace: expected a duration"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "prefix: berth}\n", 2, 55, "registry.prefix: expected a key prefix"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "prefix: /berth/}\n", 2, 55, "registry.prefix: expected a key prefix"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "host_id: a/b}\n", 2, 56, "registry.host_id: must be printable"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "ttl: 3s}\n", 2, 47, "unknown key 'ttl' in registry"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "tls: {ca: /ca.pem}}\n", 2, 11,
       "registry.tls: TLS needs https:// etcd members"},
      {"registry: [1]\n", 2, 11, "registry: expected a map of registry settings"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "service_policy: {retry: {atempts: 2}}}\n", 2, 72,
       "unknown key 'atempts' in registry.service_policy.retry"},
      {"registry: {etcd: [\"http://a:1\"], " + front + "service_policy: {endpoints: []}}\n", 2, 64,
       "unknown key 'endpoints' in registry.service_policy"},
  };
  for (const PlacedError& c : cases) check_refused_at(std::string(kListen) + c.yaml, c);
}

TEST_CASE("config: registry.service_policy is the policy of the services learnt from the registry",
          "[config][registry]") {
  LoadResult r = load(std::string(kListen) +
                      "registry:\n  etcd: [\"http://127.0.0.1:2379\"]\n  role: front\n  service_policy:\n"
                      "    lb: {policy: least_request}\n    retry: {attempts: 2, on_response_timeout: true}\n"
                      "    outlier: {consecutive_failures: 2}\n");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const ServicePolicy& p = r.config->registry.service_policy;
  CHECK(p.lb.policy == LoadBalancing::Policy::kLeastRequest);
  CHECK(p.retry.attempts == 2);
  CHECK(p.retry.on_response_timeout);
  CHECK(p.outlier.consecutive_failures == 2);
  // Without it: the defaults, no retry on a response timeout.
  LoadResult d = load(std::string(kListen) + "registry: {etcd: [\"http://127.0.0.1:2379\"], role: front}\n");
  REQUIRE(d.ok());
  CHECK(d.config->registry.service_policy == ServicePolicy{});
  CHECK_FALSE(d.config->registry.service_policy.retry.on_response_timeout);
}
