// berth.upstream.tls labels -> the service's upstream TLS settings: the server name defaults to
// the first exact host, and what cannot be verified or probed is refused. No engine.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "discovery/docker_labels.h"

using namespace berth::discovery;
using Kind = ContainerSpec::Kind;

namespace {

ContainerSpec parse(std::map<std::string, std::string> labels) {
  ContainerFacts c;
  c.id = std::string(64, 'b');
  c.name = "api-1";
  c.labels = std::move(labels);
  c.network_mode = "host";
  c.running = true;
  return parse_container_labels(c, LabelOptions{});
}

}  // namespace

TEST_CASE("docker labels: berth.upstream.tls", "[docker][labels][tls]") {
  SECTION("on: system CA store, verify, server name = the route's first exact host") {
    ContainerSpec s = parse({{"berth.enable", "true"}, {"berth.host", "*.w.test, api.test, b.test"},
                             {"berth.port", "8443"}, {"berth.upstream.tls", "true"}});
    REQUIRE(s.kind == Kind::kRouted);
    CHECK(s.policy.tls.enabled);
    CHECK(s.policy.tls.verify);
    CHECK(s.policy.tls.ca.empty());
    CHECK(s.policy.tls.server_name == "api.test");
  }
  SECTION("berth.upstream.tls.server_name wins") {
    ContainerSpec s = parse({{"berth.enable", "true"}, {"berth.host", "api.test"}, {"berth.port", "8443"},
                             {"berth.upstream.tls", "true"}, {"berth.upstream.tls.server_name", "internal.api"}});
    REQUIRE(s.kind == Kind::kRouted);
    CHECK(s.policy.tls.server_name == "internal.api");
  }
  SECTION("an empty berth.upstream.tls.server_name is the default") {
    ContainerSpec s = parse({{"berth.enable", "true"}, {"berth.host", "api.test"}, {"berth.port", "8443"},
                             {"berth.upstream.tls", "true"}, {"berth.upstream.tls.server_name", ""}});
    REQUIRE(s.kind == Kind::kRouted);
    CHECK(s.policy.tls.server_name == "api.test");
  }
  SECTION("off by default") {
    ContainerSpec s = parse({{"berth.enable", "true"}, {"berth.host", "api.test"}, {"berth.port", "80"}});
    REQUIRE(s.kind == Kind::kRouted);
    CHECK_FALSE(s.policy.tls.enabled);
  }
  SECTION("no exact host and no server name: refused") {
    ContainerSpec s = parse({{"berth.enable", "true"}, {"berth.host", "*.w.test"}, {"berth.port", "8443"},
                             {"berth.upstream.tls", "true"}});
    REQUIRE(s.kind == Kind::kRejected);
    CHECK(s.label == "berth.upstream.tls.server_name");
  }
  SECTION("with active health checks: refused (probes are plain HTTP)") {
    ContainerSpec s = parse({{"berth.enable", "true"}, {"berth.host", "api.test"}, {"berth.port", "8443"},
                             {"berth.upstream.tls", "true"}, {"berth.health.path", "/health"}});
    REQUIRE(s.kind == Kind::kRejected);
    CHECK(s.reason.find("health") != std::string::npos);
  }
  SECTION("bad values") {
    CHECK(parse({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "1"},
                 {"berth.upstream.tls", "maybe"}})
              .kind == Kind::kRejected);
    CHECK(parse({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "1"},
                 {"berth.upstream.tls", "true"}, {"berth.upstream.tls.server_name", "a b"}})
              .kind == Kind::kRejected);
    CHECK(parse({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "1"},
                 {"berth.upstream.tls", "true"}, {"berth.upstream.tls.server_name", "x..y"}})
              .kind == Kind::kRejected);
    // Spaces alone are no name, as in the config file (only "" means the default).
    ContainerSpec spaces = parse({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "1"},
                                  {"berth.upstream.tls", "true"}, {"berth.upstream.tls.server_name", "  "}});
    REQUIRE(spaces.kind == Kind::kRejected);
    CHECK(spaces.reason == "berth.upstream.tls.server_name=\"  \" is empty");
  }
}
