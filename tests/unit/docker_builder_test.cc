// The pure builder (container cache -> DiscoveredSet), address choice, health/drain gating,
// grouping, conflicts, isolation of bad containers, and the empty-route grace period.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "discovery/empty_route_grace.h"
#include "discovery/label_builder.h"

using namespace berth::discovery;
using namespace std::chrono_literals;

namespace {

std::string id_of(char c) { return std::string(64, c); }

ContainerFacts container(char id, const std::string& name, std::map<std::string, std::string> labels) {
  ContainerFacts c;
  c.id = id_of(id);
  c.name = name;
  c.labels = std::move(labels);
  c.labels.emplace("berth.enable", "true");
  c.network_mode = "host";
  c.running = true;
  return c;
}

// c0..c<n-1>: one service each, host c<i>.test, port 20000+i, id "<i>fff…", revision i+1.
std::vector<ContainerFacts> numbered(int n) {
  std::vector<ContainerFacts> many;
  for (int i = 0; i < n; ++i) {
    auto c = container('a', "c" + std::to_string(i), {{"berth.host", "c" + std::to_string(i) + ".test"},
                                                     {"berth.port", std::to_string(20000 + i)}});
    c.id = std::to_string(i) + std::string(60, 'f');
    c.revision = static_cast<uint64_t>(i + 1);
    many.push_back(c);
  }
  return many;
}

ContainerCache cache_of(std::vector<ContainerFacts> containers) {
  ContainerCache cache;
  for (auto& c : containers) cache[c.id] = std::move(c);
  return cache;
}

// "route host/path -> service [endpoints]" lines, for readable comparisons.
std::vector<std::string> table(const DiscoveredSet& set) {
  std::vector<std::string> out;
  for (const auto& r : *set.routes) {
    const auto& s = *set.services.at(r.service);
    std::string eps;
    for (const auto& e : s.endpoints) eps += (eps.empty() ? "" : " ") + e.key + (e.weight != 1 ? "*" + std::to_string(e.weight) : "");
    out.push_back((r.host.empty() ? "*" : r.host) + r.path_prefix + " -> " + s.name + " [" + eps + "]");
  }
  return out;
}

}  // namespace

TEST_CASE("docker builder: host-network containers, one route per host", "[docker][builder]") {
  auto set = build_discovered_set(
      cache_of({container('a', "web", {{"berth.host", "a.test,b.test"}, {"berth.port", "18001"}})}), {});
  CHECK(table(set) == std::vector<std::string>{"a.test/ -> web [127.0.0.1:18001]", "b.test/ -> web [127.0.0.1:18001]"});
  REQUIRE(set.routes->size() == 2);
  CHECK((*set.routes)[0].source == "container:aaaaaaaaaaaa/web");
  CHECK(set.services[0]->endpoints[0].source == "container:aaaaaaaaaaaa/web");
  CHECK(set.services[0]->endpoints[0].addr_len > 0);
  CHECK(set.rejected.empty());
}

TEST_CASE("docker builder: instances of one service are balanced together", "[docker][builder]") {
  auto a = container('a', "shop_web_1", {{"berth.host", "shop.test"}, {"berth.port", "18001"},
                                         {"com.docker.compose.project", "shop"}, {"com.docker.compose.service", "web"}});
  auto b = container('b', "shop_web_2", {{"berth.host", "shop.test"}, {"berth.port", "18002"}, {"berth.weight", "3"},
                                         {"com.docker.compose.project", "shop"}, {"com.docker.compose.service", "web"}});
  auto set = build_discovered_set(cache_of({b, a}), {});
  CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop-web [127.0.0.1:18001 127.0.0.1:18002*3]"});
  CHECK(set.services.size() == 1);
}

TEST_CASE("docker builder: health, pause and drain gate the instance, the route stays", "[docker][builder]") {
  struct Case {
    const char* what;
    bool has_healthcheck;
    const char* health;
    bool paused, draining, running;
    bool routable;
    const char* held_back;  // the reason the status page shows ("" = not held back)
  };
  const std::vector<Case> cases = {
      {"no healthcheck, running", false, "", false, false, true, true, ""},
      {"healthcheck starting", true, "starting", false, false, true, false, "starting (no passing healthcheck yet)"},
      {"healthcheck healthy", true, "healthy", false, false, true, true, ""},
      {"healthcheck unhealthy", true, "unhealthy", false, false, true, false, "unhealthy (its healthcheck fails)"},
      {"paused", false, "", true, false, true, false, "paused"},
      {"draining (kill with the stop signal)", false, "", false, true, true, false, "stopping (its stop signal was sent)"},
      {"healthy but draining", true, "healthy", false, true, true, false, "stopping (its stop signal was sent)"},
      {"not running", false, "", false, false, false, false, ""},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    auto gated = container('a', "web", {{"berth.host", "a.test"}, {"berth.port", "18001"}});
    gated.has_healthcheck = c.has_healthcheck;
    gated.health = c.health;
    gated.paused = c.paused;
    gated.draining = c.draining;
    gated.running = c.running;
    auto other = container('b', "web2", {{"berth.host", "a.test"}, {"berth.port", "18002"}, {"berth.service", "web"}});
    // The route stays in the layout either way; its service has the instance or not.
    auto alone = build_discovered_set(cache_of({gated}), {});
    REQUIRE(alone.services.size() == 1);
    CHECK(table(alone) == std::vector<std::string>{c.routable ? "a.test/ -> web [127.0.0.1:18001]" : "a.test/ -> web []"});
    // A running container that is not routed is listed with Docker's reason, for the status page.
    const auto& held = alone.services[0]->held_back;
    if (*c.held_back) {
      REQUIRE(held.size() == 1);
      CHECK(held[0].address == "127.0.0.1:18001");
      CHECK(held[0].source == "container:" + id_of('a').substr(0, 12) + "/web");
      CHECK(held[0].reason == c.held_back);
    } else {
      CHECK(held.empty());
    }
    auto both = build_discovered_set(cache_of({gated, other}), {});
    CHECK(table(both) == std::vector<std::string>{c.routable ? "a.test/ -> web [127.0.0.1:18001 127.0.0.1:18002]"
                                                             : "a.test/ -> web [127.0.0.1:18002]"});
  }
}

TEST_CASE("docker builder: a bad container is rejected, everything else is unaffected", "[docker][builder]") {
  auto good = container('a', "good", {{"berth.host", "good.test"}, {"berth.port", "18001"}});
  auto bad = container('b', "bad", {{"berth.host", "bad.test"}, {"berth.port", "abc"}});
  auto set = build_discovered_set(cache_of({good, bad}), {});
  CHECK(table(set) == std::vector<std::string>{"good.test/ -> good [127.0.0.1:18001]"});
  REQUIRE(set.rejected.size() == 1);
  CHECK(set.rejected[0].first == "bbbbbbbbbbbb/bad");
  CHECK(set.rejected[0].second == "berth.port=\"abc\" is not a port number (1-65535)");
}

TEST_CASE("docker builder: the same host and path for two services is refused for the later container",
          "[docker][builder]") {
  auto first = container('a', "alpha", {{"berth.host", "x.test"}, {"berth.port", "18001"}});
  auto second = container('b', "beta", {{"berth.host", "x.test,y.test"}, {"berth.port", "18002"}});
  auto set = build_discovered_set(cache_of({second, first}), {});
  CHECK(table(set) == std::vector<std::string>{"x.test/ -> alpha [127.0.0.1:18001]"});
  REQUIRE(set.rejected.size() == 1);
  CHECK(set.rejected[0].first == "bbbbbbbbbbbb/beta");
  CHECK(set.rejected[0].second.find("already served by service 'alpha' of container aaaaaaaaaaaa/alpha") !=
        std::string::npos);
}

TEST_CASE("docker builder: several routes per container", "[docker][builder]") {
  auto c = container('a', "app", {{"berth.routes.web.host", "www.test"}, {"berth.routes.web.port", "18001"},
                                  {"berth.routes.api.host", "www.test"}, {"berth.routes.api.path", "/api"},
                                  {"berth.routes.api.port", "18002"}});
  auto set = build_discovered_set(cache_of({c}), {});
  CHECK(table(set) == std::vector<std::string>{"www.test/api -> app-api [127.0.0.1:18002]",
                                               "www.test/ -> app-web [127.0.0.1:18001]"});
  CHECK((*set.routes)[0].name == "app-api/api");
}

TEST_CASE("docker builder: addresses are chosen on purpose, never at random", "[docker][builder][address]") {
  ContainerFacts c = container('a', "svc", {});
  c.network_mode = "bridge";
  c.networks = {{"back", "10.0.1.5", "fd00::5"}, {"front", "10.0.2.5", ""}};
  c.published[80] = {PortBinding{"0.0.0.0", 18080}};
  struct Case {
    const char* what;
    std::string label_network, config_network;
    std::vector<std::string> own;
    bool prefer_ipv6, published;
    std::string address;  // empty: refused
    std::string reason_part;
  };
  const std::vector<Case> cases = {
      {"berth.network", "front", "", {}, false, false, "10.0.2.5:80", ""},
      {"config network", "", "back", {}, false, false, "10.0.1.5:80", ""},
      {"label wins over config", "front", "back", {}, false, false, "10.0.2.5:80", ""},
      {"IPv6 preferred", "back", "", {}, true, false, "[fd00::5]:80", ""},
      {"IPv6 preferred but absent", "front", "", {}, true, false, "10.0.2.5:80", ""},
      {"the one network shared with Berth", "", "", {"front", "other"}, false, false, "10.0.2.5:80", ""},
      {"several shared networks: refuse", "", "", {"front", "back"}, false, false, "", "shares several networks"},
      {"no choice at all: refuse", "", "", {}, false, false, "", "no network is chosen"},
      {"unknown network", "nope", "", {}, false, false, "", "not attached to network 'nope' (berth.network)"},
      {"published ports", "", "", {}, false, true, "127.0.0.1:18080", ""},
  };
  for (const Case& k : cases) {
    INFO(k.what);
    BuilderOptions o;
    o.network = k.config_network;
    o.own_networks = k.own;
    o.prefer_ipv6 = k.prefer_ipv6;
    o.use_published_ports = k.published;
    std::string reason;
    auto address = resolve_address(c, k.label_network, 80, o, &reason);
    if (k.address.empty()) {
      CHECK_FALSE(address);
      CHECK(reason.find(k.reason_part) != std::string::npos);
    } else {
      REQUIRE(address);
      CHECK(*address == k.address);
    }
  }
  BuilderOptions published;
  published.use_published_ports = true;
  std::string reason;
  CHECK_FALSE(resolve_address(c, "", 81, published, &reason));
  CHECK(reason.find("81/tcp is not published") != std::string::npos);

  ContainerFacts host = container('b', "h", {});
  BuilderOptions v6;
  v6.host_address = "::1";
  CHECK(resolve_address(host, "", 9000, v6, nullptr) == "[::1]:9000");
  ContainerFacts none = container('c', "n", {});
  none.network_mode = "none";
  CHECK_FALSE(resolve_address(none, "", 1, {}, nullptr));
}

TEST_CASE("docker builder: an unreachable container is rejected with the reason", "[docker][builder][address]") {
  ContainerFacts c = container('a', "bridged", {{"berth.host", "b.test"}, {"berth.port", "80"}});
  c.network_mode = "default";
  c.networks = {{"bridge", "172.17.0.2", ""}};
  auto set = build_discovered_set(cache_of({c}), {});
  CHECK(set.routes->empty());
  REQUIRE(set.rejected.size() == 1);
  CHECK(set.rejected[0].second.find("set berth.network or docker.network") != std::string::npos);
  // Only running containers are listed as rejected; a stopped one is simply not routed.
  c.running = false;
  auto stopped = build_discovered_set(cache_of({c}), {});
  CHECK(stopped.routes->empty());
  CHECK(stopped.rejected.empty());
}

TEST_CASE("docker builder: same_set sees every difference that matters", "[docker][builder]") {
  auto a = container('a', "web", {{"berth.host", "a.test"}, {"berth.port", "18001"}});
  auto base = build_discovered_set(cache_of({a}), {});
  CHECK(same_set(base, build_discovered_set(cache_of({a}), {})));
  auto moved = a;
  moved.labels["berth.port"] = "18002";
  CHECK_FALSE(same_set(base, build_discovered_set(cache_of({moved}), {})));
  auto heavier = a;
  heavier.labels["berth.weight"] = "2";
  CHECK_FALSE(same_set(base, build_discovered_set(cache_of({heavier}), {})));
  auto bad = container('b', "bad", {{"berth.port", "x"}});
  CHECK_FALSE(same_set(base, build_discovered_set(cache_of({a, bad}), {})));
}

TEST_CASE("docker builder: 1000 containers build deterministically", "[docker][builder]") {
  std::vector<ContainerFacts> many = numbered(1000);
  auto cache = cache_of(many);
  auto one = build_discovered_set(cache, {});
  CHECK(one.routes->size() == 1000);
  CHECK(one.services.size() == 1000);
  CHECK(same_set(one, build_discovered_set(cache, {})));
}

TEST_CASE("docker builder: the memo parses a container once per revision and builds the same set",
          "[docker][builder]") {
  std::vector<ContainerFacts> many = numbered(50);
  many.push_back(container('b', "bad", {{"berth.port", "x"}}));
  many.back().revision = 100;
  auto cache = cache_of(many);
  BuilderMemo memo;
  auto first = build_discovered_set(cache, {}, &memo);
  CHECK(same_set(first, build_discovered_set(cache, {})));
  CHECK(memo.size() == 51);

  // Run state changes without a new revision: the memo's parse is reused, routability is not.
  auto& c7 = cache.at(std::to_string(7) + std::string(60, 'f'));
  c7.paused = true;
  memo.touch(c7.id);
  auto paused = build_discovered_set(cache, {}, &memo);
  CHECK(memo.last_build_partial());
  CHECK(same_set(paused, build_discovered_set(cache, {})));
  CHECK(paused.routes == first.routes);  // the same layout object: only c7's service changed
  for (size_t s = 0; s < first.services.size(); ++s) {
    if (first.services[s]->name == "c7") CHECK(paused.services[s]->endpoints.empty());
    else CHECK(paused.services[s] == first.services[s]);
  }

  // New facts under a new revision are parsed again; under the old revision they would not be.
  c7.paused = false;
  c7.labels["berth.port"] = "21007";
  memo.touch(c7.id);
  auto stale = build_discovered_set(cache, {}, &memo);
  CHECK(same_set(stale, first));  // same revision: the memo still answers the old port
  c7.revision = 200;
  memo.touch(c7.id);
  auto moved = build_discovered_set(cache, {}, &memo);
  CHECK_FALSE(memo.last_build_partial());
  CHECK(same_set(moved, build_discovered_set(cache, {})));
  CHECK_FALSE(same_set(moved, first));

  // Revisions no longer in the cache leave the memo: it stays within the cache size + 64.
  cache.erase(std::to_string(3) + std::string(60, 'f'));
  memo.touch(std::to_string(3) + std::string(60, 'f'));
  for (uint64_t r = 1000; r < 1300; ++r) {
    c7.revision = r;
    memo.touch(c7.id);
    build_discovered_set(cache, {}, &memo);
    CHECK(memo.size() <= cache.size() + 65);
  }
  CHECK(same_set(build_discovered_set(cache, {}, &memo), build_discovered_set(cache, {})));
}

TEST_CASE("docker builder: with a memo, unchanged services keep their object across builds",
          "[docker][builder]") {
  std::vector<ContainerFacts> many = numbered(20);
  // Two instances of one service: a change of either is a change of that service only.
  auto w1 = container('w', "web-1", {{"berth.host", "web.test"}, {"berth.port", "21001"}, {"berth.service", "web"}});
  auto w2 = container('x', "web-2", {{"berth.host", "web.test"}, {"berth.port", "21002"}, {"berth.service", "web"}});
  w1.revision = 101;
  w2.revision = 102;
  many.push_back(w1);
  many.push_back(w2);
  auto cache = cache_of(many);
  BuilderMemo memo;
  auto first = build_discovered_set(cache, {}, &memo);
  REQUIRE(first.services.size() == 21);
  auto by_name = [](const DiscoveredSet& set, const std::string& name) {
    for (const auto& s : set.services)
      if (s->name == name) return s;
    return berth::ServicePtr();
  };

  auto again = build_discovered_set(cache, {}, &memo);
  for (size_t i = 0; i < first.services.size(); ++i) CHECK(again.services[i] == first.services[i]);

  cache.at(id_of('x')).draining = true;  // web-2 leaves selection
  memo.touch(id_of('x'));
  auto drained = build_discovered_set(cache, {}, &memo);
  CHECK(same_set(drained, build_discovered_set(cache, {})));
  REQUIRE(by_name(drained, "web"));
  CHECK(by_name(drained, "web") != by_name(first, "web"));
  CHECK(by_name(drained, "web")->endpoints.size() == 1);
  CHECK(by_name(drained, "web")->endpoints[0].key == "127.0.0.1:21001");
  for (int i = 0; i < 20; ++i) {
    std::string name = "c" + std::to_string(i);
    CHECK(by_name(drained, name) == by_name(first, name));
  }

  // Back as it was: the content is the first one's again, under the object of the last build.
  cache.at(id_of('x')).draining = false;
  memo.touch(id_of('x'));
  auto back = build_discovered_set(cache, {}, &memo);
  CHECK(same_set(back, first));
  CHECK(by_name(back, "web")->endpoints.size() == 2);
  CHECK(by_name(back, "c3") == by_name(first, "c3"));

  // A container that stops keeps its route in the layout, its service without the instance;
  // the service serves (503) for the grace from the build that saw the instance leave.
  const std::string c5 = std::to_string(5) + std::string(60, 'f');
  BuilderOptions graced;
  graced.empty_route_grace = 10s;
  for (int round = 0; round < 3; ++round) {
    cache.at(c5).running = false;
    memo.touch(c5);
    auto without = build_discovered_set(cache, graced, &memo, 1000);
    CHECK(memo.last_build_partial());
    CHECK(without.routes == first.routes);
    REQUIRE(by_name(without, "c5"));
    CHECK(by_name(without, "c5")->endpoints.empty());
    CHECK(by_name(without, "c5")->serve_empty_until_ms == 11000);
    CHECK(berth::serves(*by_name(without, "c5"), 10999));
    CHECK_FALSE(berth::serves(*by_name(without, "c5"), 11000));
    cache.at(c5).running = true;
    memo.touch(c5);
    auto with = build_discovered_set(cache, graced, &memo, 2000);
    CHECK(same_set(with, build_discovered_set(cache, {})));
  }
  // A container that leaves the cache changes the layout: a full build.
  ContainerFacts gone = cache.at(c5);
  cache.erase(c5);
  memo.touch(c5);
  auto left = build_discovered_set(cache, {}, &memo);
  CHECK_FALSE(memo.last_build_partial());
  CHECK_FALSE(by_name(left, "c5"));
  CHECK(same_set(left, build_discovered_set(cache, {})));
}

TEST_CASE("docker builder: random event sequences give the same set with partial and full builds",
          "[docker][builder]") {
  // 40 containers in 8 services (some sharing hosts, some conflicting), through 3,000 random
  // steps: run-state changes, label changes under a new revision, removal and return. After
  // every step the memo's build (partial where it can be) equals a full build by a memo that saw
  // the same history (conflicts depend on it: the incumbent keeps its routes), and every
  // service whose content did not change since the previous build is the same object.
  std::mt19937 rng(20261128);
  std::vector<ContainerFacts> all;
  for (int i = 0; i < 40; ++i) {
    const int service = i % 8;
    std::map<std::string, std::string> labels = {{"berth.host", "s" + std::to_string(service) + ".test"},
                                                 {"berth.port", std::to_string(21000 + i)},
                                                 {"berth.service", "svc" + std::to_string(service)}};
    if (i % 13 == 0) labels["berth.service"] = "rival";  // same host as another service: a conflict
    if (i % 7 == 0) labels["berth.routes.api.host"] = "api.test";
    if (i % 7 == 0) labels["berth.routes.api.path"] = "/v" + std::to_string(i % 3);
    if (i % 7 == 0) labels["berth.routes.api.port"] = std::to_string(22000 + i);
    auto c = container('a', "c" + std::to_string(100 + i), labels);
    c.id = std::to_string(100 + i) + std::string(61, 'e');
    c.revision = static_cast<uint64_t>(i + 1);
    all.push_back(c);
  }
  uint64_t next_revision = 1000;
  ContainerCache cache = cache_of(all);
  BuilderMemo memo, full;
  DiscoveredSet before = build_discovered_set(cache, {}, &memo);
  build_discovered_set(cache, {}, &full);
  int partial = 0;  // builds that recomputed only the touched containers' services
  for (int step = 0; step < 3000; ++step) {
    const ContainerFacts& pick = all[rng() % all.size()];
    auto it = cache.find(pick.id);
    memo.touch(pick.id);
    switch (rng() % 7) {
      case 0:  // gone (destroy) or back
        if (it != cache.end()) cache.erase(it);
        else cache[pick.id] = pick;
        break;
      case 5:  // stopped or started: the route stays, the instance goes or comes
        if (it != cache.end()) it->second.running = !it->second.running;
        break;
      case 1:
        if (it != cache.end()) it->second.draining = !it->second.draining;
        break;
      case 2:
        if (it != cache.end()) it->second.paused = !it->second.paused;
        break;
      case 3:
        if (it != cache.end()) {
          it->second.has_healthcheck = true;
          it->second.health = rng() % 2 ? "healthy" : "unhealthy";
        }
        break;
      case 4:  // new facts: a weight change under a new revision
        if (it != cache.end()) {
          it->second.labels["berth.weight"] = std::to_string(1 + rng() % 3);
          it->second.revision = ++next_revision;
        }
        break;
      default:  // the same facts inspected again: same revision, nothing changes
        break;
    }
    DiscoveredSet with = build_discovered_set(cache, {}, &memo);
    partial += memo.last_build_partial();
    full.touch_all();
    DiscoveredSet scratch = build_discovered_set(cache, {}, &full);
    INFO("step " << step);
    REQUIRE(same_set(with, scratch));
    for (const auto& service : with.services)
      for (const auto& old : before.services)
        if (old->name == service->name && old->policy == service->policy && old->held_back == service->held_back &&
            old->endpoints.size() == service->endpoints.size() &&
            std::equal(old->endpoints.begin(), old->endpoints.end(), service->endpoints.begin(), same_instance))
          CHECK(old == service);
    before = std::move(with);
  }
  CHECK(partial > 500);
}

TEST_CASE("docker facts: same_static_facts ignores the run state only", "[docker][builder]") {
  auto a = container('a', "web", {{"berth.host", "a.test"}, {"berth.port", "18001"}});
  auto b = a;
  b.running = !a.running;
  b.health = "healthy";
  b.started_at_ns = 42;
  b.revision = 9;
  CHECK(same_static_facts(a, b));
  b.labels["berth.weight"] = "2";
  CHECK_FALSE(same_static_facts(a, b));
  b = a;
  b.networks.push_back(ContainerNetwork{"net", "10.0.0.2", ""});
  CHECK_FALSE(same_static_facts(a, b));
  b = a;
  b.published[80].push_back(PortBinding{"", 8080});
  CHECK_FALSE(same_static_facts(a, b));
}

TEST_CASE("docker grace: a route that leaves the layout answers 503 for what is left of its grace, then 404",
          "[docker][grace]") {
  EmptyRouteGrace grace(10s);
  BuilderOptions options;
  options.empty_route_grace = 10s;
  BuilderMemo memo;
  auto a = container('a', "web", {{"berth.host", "a.test"}, {"berth.port", "18001"}});
  auto cache = cache_of({a});
  auto out = grace.apply(build_discovered_set(cache, options, &memo, 0), 0);
  CHECK(table(*out) == std::vector<std::string>{"a.test/ -> web [127.0.0.1:18001]"});
  CHECK_FALSE(grace.next_expiry());

  // Stopped: the route stays in the layout, its service empty and serving until 11000.
  cache.at(a.id).running = false;
  memo.touch(a.id);
  out = grace.apply(build_discovered_set(cache, options, &memo, 1000), 1000);
  CHECK(table(*out) == std::vector<std::string>{"a.test/ -> web []"});
  CHECK(out->services[0]->serve_empty_until_ms == 11000);
  CHECK(grace.in_grace() == 0);

  // Removed: the route leaves the layout; it is held for what is left of the grace.
  cache.clear();
  memo.touch(a.id);
  auto gone = build_discovered_set(cache, options, &memo, 2000);
  CHECK(gone.routes->empty());
  out = grace.apply(gone, 2000);
  CHECK(table(*out) == std::vector<std::string>{"a.test/ -> web []"});
  CHECK(out->services.back()->serve_empty_until_ms == 11000);
  REQUIRE(grace.next_expiry());
  CHECK(*grace.next_expiry() == 11000);
  auto held = out->routes;
  out = grace.apply(gone, 10999);
  CHECK(out->routes == held);  // nothing changed: the same routes object
  out = grace.apply(gone, 11000);
  CHECK(out->routes->empty());
  CHECK_FALSE(grace.next_expiry());
}

TEST_CASE("docker grace: a route removed with its instance gets the whole grace; a replacement ends it",
          "[docker][grace]") {
  EmptyRouteGrace grace(10s);
  auto a = container('a', "web", {{"berth.host", "a.test"}, {"berth.port", "18001"}});
  auto b = container('b', "other", {{"berth.host", "b.test"}, {"berth.port", "18002"}});
  grace.apply(build_discovered_set(cache_of({a, b}), {}), 0);
  auto out = grace.apply(build_discovered_set(cache_of({b}), {}), 1000);
  CHECK(table(*out) == std::vector<std::string>{"b.test/ -> other [127.0.0.1:18002]", "a.test/ -> web []"});
  CHECK(*grace.next_expiry() == 11000);
  auto a2 = container('c', "web-new", {{"berth.host", "a.test"}, {"berth.port", "18003"}, {"berth.service", "web"}});
  out = grace.apply(build_discovered_set(cache_of({a2, b}), {}), 2000);
  CHECK(table(*out) == std::vector<std::string>{"b.test/ -> other [127.0.0.1:18002]", "a.test/ -> web [127.0.0.1:18003]"});
  CHECK_FALSE(grace.next_expiry());
}

TEST_CASE("docker grace: the routes held of one service share one empty service; one still in the layout keeps serving them",
          "[docker][grace]") {
  auto names = [](const DiscoveredSet& set) {
    std::vector<std::string> out;
    for (const auto& service : set.services) out.push_back(service->name);
    return out;
  };
  EmptyRouteGrace grace(10s);
  // One container of "web" with two hosts: removed, both routes are held, with one empty "web".
  auto a = container('a', "web", {{"berth.host", "a.test,b.test"}, {"berth.port", "18001"}});
  grace.apply(build_discovered_set(cache_of({a}), {}), 0);
  auto out = grace.apply(build_discovered_set(cache_of({}), {}), 1000);
  CHECK(table(*out) == std::vector<std::string>{"a.test/ -> web []", "b.test/ -> web []"});
  CHECK(names(*out) == std::vector<std::string>{"web"});
  CHECK(out->services[0]->serve_empty_until_ms == 11000);
  CHECK(grace.in_grace() == 2);

  // Two containers of "web", one host each: the one of b.test leaves while "web" stays in the
  // layout. Its route goes on to "web", as before it left; no second "web".
  EmptyRouteGrace grace2(10s);
  auto one = container('c', "web-1", {{"berth.host", "a.test"}, {"berth.port", "18001"}, {"berth.service", "web"}});
  auto two = container('d', "web-2", {{"berth.host", "b.test"}, {"berth.port", "18002"}, {"berth.service", "web"}});
  grace2.apply(build_discovered_set(cache_of({one, two}), {}), 0);
  out = grace2.apply(build_discovered_set(cache_of({one}), {}), 1000);
  CHECK(table(*out) == std::vector<std::string>{"a.test/ -> web [127.0.0.1:18001]", "b.test/ -> web [127.0.0.1:18001]"});
  CHECK(names(*out) == std::vector<std::string>{"web"});
  // Then "web" leaves too: both held, with one empty "web" serving until the later end.
  out = grace2.apply(build_discovered_set(cache_of({}), {}), 2000);
  CHECK(table(*out) == std::vector<std::string>{"a.test/ -> web []", "b.test/ -> web []"});
  CHECK(names(*out) == std::vector<std::string>{"web"});
  CHECK(out->services[0]->serve_empty_until_ms == 12000);
  CHECK(*grace2.next_expiry() == 11000);  // b.test's, held from 1000
  out = grace2.apply(build_discovered_set(cache_of({}), {}), 11000);
  CHECK(table(*out) == std::vector<std::string>{"a.test/ -> web []"});
  out = grace2.apply(build_discovered_set(cache_of({}), {}), 12000);
  CHECK(out->routes->empty());
}

TEST_CASE("docker grace: a route is held by its claim, matchers included: a canary beside it neither hides nor shares it",
          "[docker][grace]") {
  // Routes of the result with their matchers: "a.test/ -> web [..]" plus " if <header>=<value>".
  auto claims = [](const DiscoveredSet& set) {
    std::vector<std::string> out = table(set);
    for (size_t i = 0; i < out.size(); ++i) {
      const berth::Route& r = (*set.routes)[i];
      if (r.match)
        for (const auto& h : r.match->headers) out[i] += " if " + h.name + "=" + h.value.value_or("");
    }
    return out;
  };
  EmptyRouteGrace grace(10s);
  auto main = container('a', "web", {{"berth.host", "a.test"}, {"berth.port", "18001"}});
  auto canary = container('b', "canary", {{"berth.host", "a.test"}, {"berth.port", "18002"},
                                          {"berth.match.header.X-Env", "canary"}});
  auto beta = container('c', "beta", {{"berth.host", "a.test"}, {"berth.port", "18003"},
                                      {"berth.match.header.X-Env", "beta"}});
  auto out = grace.apply(build_discovered_set(cache_of({main, canary, beta}), {}), 0);
  REQUIRE(out->routes->size() == 3);

  // The main route leaves while the canaries on its host and path still serve: it is held.
  out = grace.apply(build_discovered_set(cache_of({canary, beta}), {}), 1000);
  CHECK(claims(*out) == std::vector<std::string>{"a.test/ -> beta [127.0.0.1:18003] if X-Env=beta",
                                                 "a.test/ -> canary [127.0.0.1:18002] if X-Env=canary",
                                                 "a.test/ -> web []"});
  CHECK(grace.in_grace() == 1);
  // ... and stays held while they change.
  out = grace.apply(build_discovered_set(cache_of({canary}), {}), 2000);
  CHECK(claims(*out) == std::vector<std::string>{"a.test/ -> canary [127.0.0.1:18002] if X-Env=canary",
                                                 "a.test/ -> web []", "a.test/ -> beta [] if X-Env=beta"});
  CHECK(grace.in_grace() == 2);  // two routes on one host and path: two claims, each held

  // The main route back ends its own hold only; the canary leaving now is held in its turn.
  out = grace.apply(build_discovered_set(cache_of({main}), {}), 3000);
  CHECK(claims(*out) == std::vector<std::string>{"a.test/ -> web [127.0.0.1:18001]",
                                                 "a.test/ -> beta [] if X-Env=beta",
                                                 "a.test/ -> canary [] if X-Env=canary"});
  CHECK(grace.in_grace() == 2);
  CHECK(*grace.next_expiry() == 12000);  // beta's, held from 2000
}

TEST_CASE("docker builder: the incumbent keeps its route against a newcomer whose name sorts first",
          "[docker][builder][claims]") {
  auto shop = container('b', "shop", {{"berth.host", "shop.test"}, {"berth.port", "18001"}, {"berth.service", "shop"}});
  shop.started_at_ns = 1'000;
  shop.revision = 1;
  auto evil = container('a', "aaa-evil", {{"berth.host", "shop.test"}, {"berth.port", "18002"}, {"berth.service", "evil"}});
  evil.started_at_ns = 2'000;
  evil.revision = 2;
  BuilderOptions options;
  options.empty_route_grace = 10s;

  SECTION("without history, the container that started first wins, whatever the names") {
    auto set = build_discovered_set(cache_of({evil, shop}), options);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001]"});
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].first == "aaaaaaaaaaaa/aaa-evil");
  }
  SECTION("without history, the container created first wins, though it was restarted after the newcomer started") {
    // Berth starts after shop's restart: shop was created long before evil, started after it.
    shop.created_at_ns = 100;
    shop.started_at_ns = 5'000;
    evil.created_at_ns = 1'500;
    auto set = build_discovered_set(cache_of({evil, shop}), options);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001]"});
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].first == "aaaaaaaaaaaa/aaa-evil");
  }
  SECTION("with history, the incumbent keeps it even against an earlier start, until its grace ends") {
    BuilderMemo memo;
    ContainerCache cache = cache_of({shop});
    build_discovered_set(cache, options, &memo, 0);
    evil.started_at_ns = 500;  // claims an older start: does not matter, shop was there first
    cache[evil.id] = evil;
    memo.touch(evil.id);
    auto set = build_discovered_set(cache, options, &memo, 1'000);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001]"});
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].second.find("already served by service 'shop' (the incumbent keeps it)") != std::string::npos);
    CHECK_FALSE(memo.next_claim_expiry());  // shop runs: no end in sight

    // shop's only instance stops: it keeps the route (503) for its grace, then evil gets it.
    cache[shop.id].running = false;
    memo.touch(shop.id);
    set = build_discovered_set(cache, options, &memo, 2'000);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop []"});
    REQUIRE(memo.next_claim_expiry());
    CHECK(*memo.next_claim_expiry() == 12'000);
    memo.touch_all();
    set = build_discovered_set(cache, options, &memo, 11'999);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop []"});
    memo.touch_all();
    set = build_discovered_set(cache, options, &memo, 12'000);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> evil [127.0.0.1:18002]"});
    CHECK_FALSE(memo.next_claim_expiry());

    // shop comes back: now evil is the incumbent.
    cache[shop.id].running = true;
    memo.touch(shop.id);
    set = build_discovered_set(cache, options, &memo, 13'000);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> evil [127.0.0.1:18002]"});
  }
  SECTION("a restart of the incumbent within its grace keeps the route") {
    BuilderMemo memo;
    ContainerCache cache = cache_of({shop, evil});
    build_discovered_set(cache, options, &memo, 0);
    cache[shop.id].running = false;
    memo.touch(shop.id);
    build_discovered_set(cache, options, &memo, 1'000);
    cache[shop.id].running = true;
    cache[shop.id].started_at_ns = 5'000;  // later than evil's start now
    memo.touch(shop.id);
    auto set = build_discovered_set(cache, options, &memo, 3'000);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001]"});
  }
}

TEST_CASE("docker builder: operator policy refuses what labels may not ask for", "[docker][builder][policy]") {
  BuilderOptions options;
  options.allowed_hosts = {"*.apps.test", "exact.test"};
  options.max_priority = 10;
  options.allow_any_host = false;
  auto ok = container('a', "ok", {{"berth.host", "a.apps.test,exact.test"}, {"berth.port", "18001"}, {"berth.priority", "10"}});
  auto wild = container('b', "wild", {{"berth.host", "*.x.apps.test"}, {"berth.port", "18002"}});
  auto outside = container('c', "outside", {{"berth.host", "apps.test"}, {"berth.port", "18003"}});
  auto greedy = container('d', "greedy", {{"berth.host", "g.apps.test"}, {"berth.port", "18004"}, {"berth.priority", "11"}});
  auto anyhost = container('e', "anyhost", {{"berth.path", "/"}, {"berth.port", "18005"}});
  auto set = build_discovered_set(cache_of({ok, wild, outside, greedy, anyhost}), options);
  CHECK(table(set) == std::vector<std::string>{"a.apps.test/ -> ok [127.0.0.1:18001]", "exact.test/ -> ok [127.0.0.1:18001]",
                                               "*.x.apps.test/ -> wild [127.0.0.1:18002]"});
  std::map<std::string, std::string> why(set.rejected.begin(), set.rejected.end());
  REQUIRE(why.size() == 3);
  CHECK(why.at("cccccccccccc/outside").find("host apps.test is not under docker.allowed_hosts") != std::string::npos);
  CHECK(why.at("dddddddddddd/greedy").find("priority 11 is above docker.max_priority (10)") != std::string::npos);
  CHECK(why.at("eeeeeeeeeeee/anyhost").find("docker.allow_any_host is off") != std::string::npos);
}

TEST_CASE("docker builder: a forward_auth label may name only the services the operator lists",
          "[docker][builder][policy]") {
  // Berth sends each request's check, with the client's headers, where the label says: a
  // container must not aim that at Berth's own admin address or another service on the host.
  auto listed = container('a', "listed", {{"berth.host", "a.test"}, {"berth.port", "18001"},
                                          {"berth.access.forward_auth", "http://localhost:9100/check"}});
  auto other = container('b', "other", {{"berth.host", "b.test"}, {"berth.port", "18002"},
                                         {"berth.access.forward_auth", "http://127.0.0.1:9901/api/routes"}});
  auto plain = container('c', "plain", {{"berth.host", "c.test"}, {"berth.port", "18003"}});
  BuilderOptions options;
  options.forward_auth_addresses = std::vector<std::string>{"127.0.0.1:9100"};
  auto set = build_discovered_set(cache_of({listed, other, plain}), options);
  CHECK(table(set) == std::vector<std::string>{"a.test/ -> listed [127.0.0.1:18001]", "c.test/ -> plain [127.0.0.1:18003]"});
  std::map<std::string, std::string> why(set.rejected.begin(), set.rejected.end());
  REQUIRE(why.size() == 1);
  CHECK(why.at("bbbbbbbbbbbb/other").find("forward_auth address 127.0.0.1:9901 is not in docker.forward_auth_addresses") !=
        std::string::npos);

  options.forward_auth_addresses = std::vector<std::string>{};  // the config's default: none
  set = build_discovered_set(cache_of({listed, plain}), options);
  CHECK(table(set) == std::vector<std::string>{"c.test/ -> plain [127.0.0.1:18003]"});
  why = std::map<std::string, std::string>(set.rejected.begin(), set.rejected.end());
  CHECK(why.at("aaaaaaaaaaaa/listed").find("docker.forward_auth_addresses is not set") != std::string::npos);
}

TEST_CASE("docker builder: Berth's own container is never routed, even with berth labels", "[docker][builder]") {
  auto self = container('s', "berth", {{"berth.host", "self.test"}, {"berth.port", "8080"}});
  auto web = container('w', "web", {{"berth.host", "web.test"}, {"berth.port", "18001"}});
  BuilderOptions o;
  CHECK(table(build_discovered_set(cache_of({self, web}), o)) ==
        std::vector<std::string>{"self.test/ -> berth [127.0.0.1:8080]", "web.test/ -> web [127.0.0.1:18001]"});
  o.own_container_id = id_of('s');
  auto set = build_discovered_set(cache_of({self, web}), o);
  CHECK(table(set) == std::vector<std::string>{"web.test/ -> web [127.0.0.1:18001]"});
  CHECK(set.rejected.empty());  // ignored, not rejected
  // Through a memo too (the source's path).
  BuilderMemo memo;
  self.revision = 1;
  web.revision = 2;
  ContainerCache cache = cache_of({self, web});
  CHECK(table(build_discovered_set(cache, o, &memo, 0)) == std::vector<std::string>{"web.test/ -> web [127.0.0.1:18001]"});
}

TEST_CASE("docker builder: a mirror names a discovered service, else the route has none", "[docker][builder][mirror]") {
  auto web = container('a', "web", {{"berth.host", "a.test"}, {"berth.port", "18001"},
                                    {"berth.mirror.service", "next"}, {"berth.mirror.percent", "10"}});
  auto next = container('b', "next", {{"berth.host", "next.test"}, {"berth.port", "18002"}});
  auto set = build_discovered_set(cache_of({web, next}), {});
  REQUIRE(set.routes->size() == 2);
  const berth::Route& routed = (*set.routes)[0].host == "a.test" ? (*set.routes)[0] : (*set.routes)[1];
  REQUIRE(routed.mirror != nullptr);
  CHECK(set.services.at(routed.mirror->service)->name == "next");
  CHECK(routed.mirror->percent_bp == 1000);
  CHECK(routed.mirror->max_body == 64 * 1024);

  // Without the shadow's container: no mirror (and a different set than with it).
  auto alone = build_discovered_set(cache_of({web}), {});
  REQUIRE(alone.routes->size() == 1);
  CHECK((*alone.routes)[0].mirror == nullptr);
  auto again = build_discovered_set(cache_of({web, next}), {});
  CHECK(same_set(set, again));
  web.labels["berth.mirror.percent"] = "20";
  CHECK_FALSE(same_set(set, build_discovered_set(cache_of({web, next}), {})));
}

TEST_CASE("docker builder: berth.encoded_characters.* labels override the top level on the container's routes",
          "[docker][builder]") {
  auto api = container('a', "api", {{"berth.host", "api.test"}, {"berth.port", "18001"},
                                    {"berth.encoded_characters.allow_encoded_slash", "true"},
                                    {"berth.encoded_characters.allow_encoded_percent", "false"}});
  auto web = container('b', "web", {{"berth.host", "web.test"}, {"berth.port", "18002"}});
  auto set = build_discovered_set(cache_of({api, web}), {});
  REQUIRE(set.routes->size() == 2);
  for (const berth::Route& r : *set.routes) {
    INFO(r.host);
    // http::EncodedCharacter bits: slash 1, percent 16.
    CHECK(r.allow_encodings == (r.host == "api.test" ? 1 : 0));
    CHECK(r.refuse_encodings == (r.host == "api.test" ? 16 : 0));
  }
  CHECK_FALSE(same_set(set, build_discovered_set(cache_of({web, container('a', "api", {{"berth.host", "api.test"},
                                                                                      {"berth.port", "18001"}})}),
                                                 {})));

  // A misspelt key or a value that is not a bool rejects the container, naming the label.
  auto typo = container('c', "typo", {{"berth.host", "t.test"}, {"berth.port", "18003"},
                                      {"berth.encoded_characters.allow_slash", "true"}});
  auto not_bool = container('d', "nb", {{"berth.host", "n.test"}, {"berth.port", "18004"},
                                        {"berth.encoded_characters.allow_encoded_hash", "sometimes"}});
  auto refused = build_discovered_set(cache_of({typo, not_bool}), {});
  CHECK(refused.routes->empty());
  REQUIRE(refused.rejected.size() == 2);
  std::string reasons;
  for (const auto& [container, reason] : refused.rejected) reasons += reason + "\n";
  CHECK(reasons.find("berth.encoded_characters.allow_slash") != std::string::npos);
  CHECK(reasons.find("berth.encoded_characters.allow_encoded_hash") != std::string::npos);
  for (std::string_view key : berth::config::encoded_character_keys())  // the typo's message lists each key
    CHECK(reasons.find(std::string(key)) != std::string::npos);
}

TEST_CASE("docker builder: containers of one route that disagree on its labels: the first created keeps it",
          "[docker][builder][claims]") {
  // shop-1 guards the route with an allow list; a replica started later without it (a debug
  // copy, a new version that forgot the label) must not open the route, whatever its name.
  auto guarded = container('b', "shop-1", {{"berth.host", "shop.test"}, {"berth.port", "18001"},
                                           {"berth.service", "shop"}, {"berth.access.allow", "10.0.0.0/8"}});
  guarded.created_at_ns = 1'000;
  guarded.revision = 1;
  auto open = container('a', "debug-shop", {{"berth.host", "shop.test"}, {"berth.port", "18002"},
                                            {"berth.service", "shop"}});
  open.created_at_ns = 2'000;
  open.revision = 2;
  auto same = container('c', "shop-2", {{"berth.host", "shop.test"}, {"berth.port", "18003"},
                                        {"berth.service", "shop"}, {"berth.access.allow", "10.0.0.0/8"}});
  same.created_at_ns = 3'000;
  same.revision = 3;

  for (const char* name : {"debug-shop", "zz-debug-shop"}) {
    INFO("the replica without the allow list is named " << name);
    open.name = name;
    auto set = build_discovered_set(cache_of({open, guarded, same}), {});
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001 127.0.0.1:18003]"});
    REQUIRE(set.routes->size() == 1);
    CHECK((*set.routes)[0].filters != nullptr);
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].first == std::string("aaaaaaaaaaaa/") + name);
    CHECK(set.rejected[0].second ==
          "route shop.test/ of service 'shop' is served by container bbbbbbbbbbbb/shop-1 with other berth.access.* "
          "labels (the containers of a route must agree on them)");
  }

  SECTION("other route labels count too; the port does not") {
    auto redirecting = open;
    redirecting.labels["berth.access.allow"] = "10.0.0.0/8";
    redirecting.labels["berth.tls.redirect"] = "true";
    redirecting.labels["berth.port"] = "18009";
    auto set = build_discovered_set(cache_of({redirecting, guarded}), {});
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].second.find("with other berth.tls.redirect labels") != std::string::npos);
    auto agreeing = open;
    agreeing.labels["berth.access.allow"] = "10.0.0.0/8";
    agreeing.labels["berth.port"] = "18009";
    set = build_discovered_set(cache_of({agreeing, guarded}), {});
    CHECK(set.rejected.empty());
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001 127.0.0.1:18009]"});
  }
  SECTION("every group that differs is named; lists that are sets agree in any order") {
    auto guarded2 = guarded;
    guarded2.labels["berth.access.allow"] = "10.0.0.0/8,192.168.0.0/16";
    guarded2.labels["berth.access.methods"] = "GET,POST";
    auto reordered = open;
    reordered.labels["berth.access.allow"] = "192.168.0.0/16, 10.0.0.0/8";
    reordered.labels["berth.access.methods"] = "POST,GET";
    reordered.labels["berth.port"] = "18009";
    auto set = build_discovered_set(cache_of({reordered, guarded2}), {});
    CHECK(set.rejected.empty());
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001 127.0.0.1:18009]"});
    // GET lets HEAD through, so "GET,POST" and "HEAD,POST,GET" agree; "GET,HEAD" (no POST) does not.
    auto with_head = reordered;
    with_head.labels["berth.access.methods"] = "HEAD,POST,GET";
    set = build_discovered_set(cache_of({with_head, guarded2}), {});
    CHECK(set.rejected.empty());
    with_head.labels["berth.access.methods"] = "GET,HEAD";
    set = build_discovered_set(cache_of({with_head, guarded2}), {});
    CHECK(set.rejected.size() == 1);

    auto several = open;
    several.labels["berth.priority"] = "5";
    several.labels["berth.tls.redirect"] = "true";
    several.labels["berth.strip_prefix"] = "/api";
    set = build_discovered_set(cache_of({several, guarded}), {});
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].second.find("with other berth.priority, berth.access.*, berth.strip_prefix / "
                                      "berth.add_prefix, berth.tls.redirect labels (the containers") != std::string::npos);
  }
  SECTION("a Traefik-labelled replica: the groups are named with their middlewares too") {
    BuilderOptions options;
    options.labels.traefik = true;
    auto traefik = container('d', "shop-t", {{"traefik.http.routers.shop.rule", "Host(`shop.test`)"},
                                             {"traefik.http.services.shop.loadbalancer.server.port", "18004"},
                                             {"berth.service", "shop"}});
    traefik.created_at_ns = 4'000;
    auto set = build_discovered_set(cache_of({traefik, guarded}), options);
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].first == "dddddddddddd/shop-t");
    CHECK(set.rejected[0].second.find("with other access (berth.access.* or the ipallowlist/basicauth/ratelimit "
                                      "middlewares) labels") != std::string::npos);
  }
  SECTION("with history: the disagreeing replica gets the route, with its labels, once the first one stops") {
    BuilderMemo memo;
    ContainerCache cache = cache_of({guarded, open});
    auto set = build_discovered_set(cache, {}, &memo, 0);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18001]"});
    cache[guarded.id].running = false;
    memo.touch(guarded.id);
    set = build_discovered_set(cache, {}, &memo, 1'000);
    CHECK_FALSE(memo.last_build_partial());  // the run state of a disagreeing replica decides routes
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18002]"});
    REQUIRE(set.routes->size() == 1);
    CHECK((*set.routes)[0].filters == nullptr);
    CHECK(set.rejected.empty());

    // The first one runs again (a restart policy, a rollback copy): the one serving keeps the
    // route, though the other was created first.
    cache[guarded.id].running = true;
    memo.touch(guarded.id);
    set = build_discovered_set(cache, {}, &memo, 2'000);
    CHECK(table(set) == std::vector<std::string>{"shop.test/ -> shop [127.0.0.1:18002]"});
    REQUIRE(set.rejected.size() == 1);
    CHECK(set.rejected[0].first == "bbbbbbbbbbbb/shop-1");
  }
}
