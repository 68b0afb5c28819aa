// berth.lb* and berth.health.* labels -> the service policy, and the builder carrying it into
// the discovered service.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "discovery/docker_labels.h"
#include "discovery/label_builder.h"

using namespace berth::discovery;
using namespace std::chrono_literals;
using berth::config::LoadBalancing;

namespace {

ContainerFacts host_container(char id, const std::string& name, std::map<std::string, std::string> labels) {
  ContainerFacts c;
  c.id = std::string(64, id);
  c.name = name;
  c.labels = std::move(labels);
  c.network_mode = "host";
  c.running = true;
  return c;
}

}  // namespace

TEST_CASE("lb labels: policy, hash key, cookie and health check", "[docker][labels][lb]") {
  auto spec = parse_container_labels(
      host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "8080"},
                                    {"berth.lb", "hash"}, {"berth.lb.hash_on", "cookie:uid"},
                                    {"berth.lb.cookie", "pin"}, {"berth.health.path", "/healthz"},
                                    {"berth.health.interval", "2s"}, {"berth.health.timeout", "300ms"},
                                    {"berth.health.healthy_threshold", "2"},
                                    {"berth.health.unhealthy_threshold", "3"},
                                    {"berth.health.status", "200-204"}, {"berth.health.port", "9000"}}),
      {});
  REQUIRE(spec.kind == ContainerSpec::Kind::kRouted);
  const auto& p = spec.policy;
  CHECK(p.lb.policy == LoadBalancing::Policy::kHash);
  CHECK(p.lb.hash_on == LoadBalancing::HashOn::kCookie);
  CHECK(p.lb.hash_name == "uid");
  CHECK(p.lb.cookie == "pin");
  CHECK(p.health.enabled);
  CHECK(p.health.path == "/healthz");
  CHECK(p.health.interval == 2s);
  CHECK(p.health.timeout == 300ms);
  CHECK(p.health.healthy_threshold == 2);
  CHECK(p.health.unhealthy_threshold == 3);
  CHECK((p.health.status_min == 200 && p.health.status_max == 204));
  CHECK(p.health.port == 9000);
}

TEST_CASE("lb labels: bad values reject the container, naming the label", "[docker][labels][lb]") {
  const std::pair<std::string, std::string> cases[] = {
      {"berth.lb", "random"},           {"berth.lb.hash_on", "ip"},     {"berth.lb.cookie", "a;b"},
      {"berth.health.interval", "0s"},  {"berth.health.status", "2xx"}, {"berth.health.port", "0"},
      {"berth.health.path", "healthz"}, {"berth.health.bogus", "1"},    {"berth.lb.bogus", "1"},
  };
  for (const auto& [label, value] : cases) {
    INFO(label << "=" << value);
    auto spec = parse_container_labels(
        host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"},
                                      {label, value}}),
        {});
    CHECK(spec.kind == ContainerSpec::Kind::kRejected);
    CHECK(spec.label == label);
  }
}

TEST_CASE("lb labels: the builder gives the service its first container's policy", "[docker][builder][lb]") {
  ContainerCache cache;
  for (auto c : {host_container('a', "web-1", {{"berth.enable", "true"}, {"berth.host", "a.test"},
                                               {"berth.port", "8081"}, {"berth.service", "web"},
                                               {"berth.lb", "sticky"}, {"berth.health.path", "/hc"}}),
                 host_container('b', "web-2", {{"berth.enable", "true"}, {"berth.host", "a.test"},
                                               {"berth.port", "8082"}, {"berth.service", "web"}})})
    cache[c.id] = c;
  DiscoveredSet set = build_discovered_set(cache, {});
  REQUIRE(set.services.size() == 1);
  CHECK(set.services[0].endpoints.size() == 2);
  CHECK(set.services[0].policy.lb.policy == LoadBalancing::Policy::kSticky);
  CHECK(set.services[0].policy.health.path == "/hc");
  // A policy change is a change of the set (so it gets published).
  DiscoveredSet other = set;
  other.services[0].policy.lb.policy = LoadBalancing::Policy::kRoundRobin;
  CHECK_FALSE(same_set(set, other));
}
