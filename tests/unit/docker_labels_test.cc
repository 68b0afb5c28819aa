// Labels -> what a container asks to be routed: berth.* labels, nginx-proxy and Traefik
// compatibility, and every kind of rejection. Table-driven; no engine.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "discovery/docker_labels.h"

using namespace berth::discovery;
using Kind = ContainerSpec::Kind;

namespace {

ContainerFacts host_container(std::map<std::string, std::string> labels, std::vector<std::string> env = {}) {
  ContainerFacts c;
  c.id = std::string(64, 'a');
  c.name = "web-1";
  c.labels = std::move(labels);
  c.env = std::move(env);
  c.network_mode = "host";
  c.running = true;
  return c;
}

// "host1,host2 /path port service prio" for compact comparisons.
std::string describe(const RouteSpec& r) {
  std::string hosts;
  for (const auto& h : r.hosts) hosts += (hosts.empty() ? "" : ",") + h;
  return (r.name.empty() ? "" : r.name + ": ") + (hosts.empty() ? "*" : hosts) + " " + r.path + " " +
         std::to_string(r.port) + " " + r.service + " " + std::to_string(r.priority);
}

std::vector<std::string> describe(const ContainerSpec& s) {
  std::vector<std::string> out;
  for (const auto& r : s.routes) out.push_back(describe(r));
  return out;
}

}  // namespace

TEST_CASE("docker labels: routed containers", "[docker][labels]") {
  struct Case {
    const char* what;
    std::map<std::string, std::string> labels;
    std::vector<std::string> routes;
    uint32_t weight = 1;
  };
  const std::vector<Case> cases = {
      {"one host", {{"berth.enable", "true"}, {"berth.host", "Web.Example.com"}, {"berth.port", "8080"}},
       {"web.example.com / 8080 web-1 0"}},
      {"several hosts and a wildcard",
       {{"berth.enable", "true"}, {"berth.host", "a.test, *.b.test ,c.test"}, {"berth.port", "1"}},
       {"a.test,*.b.test,c.test / 1 web-1 0"}},
      {"path only, any host", {{"berth.enable", "1"}, {"berth.path", "/api"}, {"berth.port", "80"}},
       {"* /api 80 web-1 0"}},
      {"service, weight, priority",
       {{"berth.enable", "yes"}, {"berth.host", "a.test"}, {"berth.port", "80"}, {"berth.service", "api"},
        {"berth.weight", "5"}, {"berth.priority", "-3"}},
       {"a.test / 80 api -3"}, 5},
      {"compose project + service names the group",
       {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"},
        {"com.docker.compose.project", "shop"}, {"com.docker.compose.service", "web"}},
       {"a.test / 80 shop-web 0"}},
      {"named routes, each with its own service and port",
       {{"berth.enable", "true"}, {"berth.port", "80"}, {"berth.routes.api.host", "api.test"},
        {"berth.routes.api.port", "81"}, {"berth.routes.admin.path", "/admin"},
        {"berth.routes.admin.service", "adm"}, {"berth.routes.admin.priority", "7"}},
       {"admin: * /admin 80 adm 7", "api: api.test / 81 web-1-api 0"}},
      {"a named route's explicit priority 0 is 0, not the container's berth.priority",
       {{"berth.enable", "true"}, {"berth.port", "80"}, {"berth.priority", "5"},
        {"berth.routes.x.host", "x.test"}, {"berth.routes.x.priority", "0"}, {"berth.routes.y.host", "y.test"}},
       {"x: x.test / 80 web-1-x 0", "y: y.test / 80 web-1-y 5"}},
      {"main route and named routes together",
       {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"},
        {"berth.routes.x.host", "x.test"}},
       {"a.test / 80 web-1 0", "x: x.test / 80 web-1-x 0"}},
      {"unrelated labels are ignored",
       {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}, {"maintainer", "me"},
        {"traefik.http.routers.r.rule", "Host(`t.test`)"}},
       {"a.test / 80 web-1 0"}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    ContainerSpec spec = parse_container_labels(host_container(c.labels), {});
    INFO(spec.reason);
    REQUIRE(spec.kind == Kind::kRouted);
    CHECK(spec.origin == "berth");
    CHECK(describe(spec) == c.routes);
    CHECK(spec.weight == c.weight);
  }
}

TEST_CASE("docker labels: containers that are not routed", "[docker][labels]") {
  LabelOptions off;
  CHECK(parse_container_labels(host_container({}), off).kind == Kind::kIgnored);
  CHECK(parse_container_labels(host_container({{"berth.host", "a.test"}, {"berth.port", "1"}}), off).kind ==
        Kind::kIgnored);
  CHECK(parse_container_labels(host_container({{"berth.enable", "false"}, {"berth.host", "a.test"}}), off).kind ==
        Kind::kIgnored);
  LabelOptions exposed;
  exposed.exposed_by_default = true;
  CHECK(parse_container_labels(host_container({{"berth.host", "a.test"}, {"berth.port", "1"}}), exposed).kind ==
        Kind::kRouted);
  CHECK(parse_container_labels(host_container({{"berth.enable", "false"}, {"berth.host", "a.test"}}), exposed).kind ==
        Kind::kIgnored);
  // Switched off, its other labels are not read: a bad one does not list it as refused.
  CHECK(parse_container_labels(host_container({{"berth.enable", "Off"}, {"berth.weight", "0"}}), off).kind ==
        Kind::kIgnored);
  CHECK(parse_container_labels(host_container({{"berth.enable", "maybe"}, {"berth.host", "a.test"}}), off).kind ==
        Kind::kRejected);
  // Exposed by default but nothing says how: quietly ignored.
  CHECK(parse_container_labels(host_container({{"app", "x"}}), exposed).kind == Kind::kIgnored);
  // Compatibility labels without the mode switched on: ignored.
  CHECK(parse_container_labels(host_container({{"traefik.http.routers.r.rule", "Host(`a`)"}}), off).kind ==
        Kind::kIgnored);
  CHECK(parse_container_labels(host_container({}, {"VIRTUAL_HOST=a.test"}), off).kind == Kind::kIgnored);
}

TEST_CASE("docker labels: invalid labels reject the container and name the label", "[docker][labels]") {
  struct Case {
    std::map<std::string, std::string> labels;
    std::string label;
    std::string reason_part;
  };
  const std::map<std::string, std::string> base = {{"berth.enable", "true"}, {"berth.host", "a.test"},
                                                   {"berth.port", "80"}};
  auto with = [&](std::map<std::string, std::string> extra) {
    auto labels = base;
    for (auto& [k, v] : extra) labels[k] = v;
    return labels;
  };
  const std::vector<Case> cases = {
      {with({{"berth.enable", "maybe"}}), "berth.enable", "is not true or false"},
      {with({{"berth.port", "abc"}}), "berth.port", "berth.port=\"abc\" is not a port number"},
      {with({{"berth.port", "70000"}}), "berth.port", "is not a port number"},
      {with({{"berth.host", "bad host"}}), "berth.host", "is not a valid host name"},
      {with({{"berth.host", "a.test,,b.test"}}), "berth.host", "empty host name"},
      {with({{"berth.host", "a.*.test"}}), "berth.host", "is not a valid host name"},
      {with({{"berth.path", "api"}}), "berth.path", "must start with '/'"},
      {with({{"berth.path", "/a?b"}}), "berth.path", "must not contain"},
      {with({{"berth.path", "/a;b"}}), "berth.path", "must not contain ';'"},
      {with({{"berth.path", "/a/../b"}}), "berth.path", "never matches: it holds a '.' or '..' segment"},
      {with({{"berth.weight", "0"}}), "berth.weight", "is not a weight (1-1000)"},
      {with({{"berth.weight", "1001"}}), "berth.weight", "is not a weight"},
      {with({{"berth.priority", "high"}}), "berth.priority", "is not an integer"},
      {with({{"berth.service", "a b"}}), "berth.service", "is not a valid service name"},
      {with({{"berth.network", " "}}), "berth.network", "names no network"},
      {with({{"berth.hots", "x"}}), "berth.hots", "unknown label berth.hots"},
      {with({{"berth.routes.x.hots", "x"}}), "berth.routes.x.hots", "unknown label"},
      {with({{"berth.routes.bad name.host", "x"}}), "berth.routes.bad name.host", "expected berth.routes.NAME"},
      {with({{"berth.routes.x.port", "81"}}), "berth.routes.x.host", "has neither"},
      {{{"berth.enable", "true"}, {"berth.host", "a.test"}}, "berth.port", "berth.port is required: host-network"},
      {{{"berth.enable", "true"}, {"berth.port", "80"}}, "berth.host", "no route declared"},
  };
  for (const Case& c : cases) {
    std::string all;
    for (const auto& [k, v] : c.labels) all += k + "=" + v + " ";
    INFO(all);
    ContainerSpec spec = parse_container_labels(host_container(c.labels), {});
    INFO(spec.reason);
    REQUIRE(spec.kind == Kind::kRejected);
    CHECK(spec.label == c.label);
    CHECK(spec.reason.find(c.reason_part) != std::string::npos);
  }
}

TEST_CASE("docker labels: a list of more than 1000 host names or methods rejects the container", "[docker][labels]") {
  auto names = [](int n, const char* suffix) {
    std::string list;
    for (int i = 0; i < n; ++i) list += (i ? "," : "") + std::string("h") + std::to_string(i) + suffix;
    return list;
  };
  std::string methods, rule = "Host(";
  for (int i = 0; i < 1001; ++i) {
    methods += (i ? ",M" : "M") + std::to_string(i);
    rule += (i ? ", `h" : "`h") + std::to_string(i) + ".test`";
  }
  rule += ")";
  const std::vector<std::map<std::string, std::string>> refused = {
      {{"berth.enable", "true"}, {"berth.host", names(1001, ".test")}, {"berth.port", "80"}},
      {{"berth.enable", "true"}, {"berth.routes.r.host", names(1001, ".test")}, {"berth.port", "80"}},
      {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}, {"berth.match.methods", methods}},
      {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}, {"berth.access.methods", methods}},
      {{"traefik.enable", "true"}, {"traefik.http.routers.r.rule", rule},
       {"traefik.http.services.s.loadbalancer.server.port", "80"}},
  };
  LabelOptions options;
  options.traefik = true;
  for (const auto& labels : refused) {
    INFO(labels.begin()->first << " ... " << labels.rbegin()->first);
    ContainerSpec spec = parse_container_labels(host_container(labels), options);
    CHECK(spec.kind == Kind::kRejected);
    INFO(spec.reason.substr(0, 300));
    CHECK(spec.reason.find("more than 1000") != std::string::npos);
    if (labels.count("berth.enable")) CHECK(spec.reason.size() < 300);  // the label, not its megabytes
  }
  // 1000 distinct names (with repeats, which do not count) are fine.
  ContainerSpec ok = parse_container_labels(
      host_container({{"berth.enable", "true"}, {"berth.host", names(1000, ".test") + ",h0.test"}, {"berth.port", "80"}}), {});
  REQUIRE(ok.kind == Kind::kRouted);
  CHECK(ok.routes.at(0).hosts.size() == 1000);
}

TEST_CASE("docker labels: the port comes from the only exposed port, else it is required", "[docker][labels]") {
  ContainerFacts c = host_container({{"berth.enable", "true"}, {"berth.host", "a.test"}});
  c.network_mode = "default";
  c.exposed_ports = {8080};
  ContainerSpec one = parse_container_labels(c, {});
  REQUIRE(one.kind == Kind::kRouted);
  CHECK(one.routes[0].port == 8080);
  c.exposed_ports = {80, 443};
  ContainerSpec two = parse_container_labels(c, {});
  REQUIRE(two.kind == Kind::kRejected);
  CHECK(two.reason == "berth.port is required: the container exposes 2 ports");
  c.exposed_ports = {};
  CHECK(parse_container_labels(c, {}).reason == "berth.port is required: the container exposes no port");
}

TEST_CASE("docker labels: nginx-proxy compatibility", "[docker][labels][compat]") {
  LabelOptions nginx;
  nginx.nginx_proxy = true;
  struct Case {
    std::vector<std::string> env;
    std::map<std::string, std::string> labels;
    std::vector<std::string> routes;  // empty: rejected
    std::string reason_part;
  };
  const std::vector<Case> cases = {
      {{"VIRTUAL_HOST=a.test", "VIRTUAL_PORT=8080"}, {}, {"a.test / 8080 web-1 0"}, ""},
      {{"VIRTUAL_HOST=a.test, b.test", "VIRTUAL_PORT=80", "VIRTUAL_PATH=/app"}, {}, {"a.test,b.test /app 80 web-1 0"}, ""},
      {{"VIRTUAL_HOST=a.test b.test", "VIRTUAL_PORT=80"}, {}, {"a.test,b.test / 80 web-1 0"}, ""},
      {{"VIRTUAL_HOST=a.test"}, {{"berth.port", "81"}}, {"a.test / 81 web-1 0"}, ""},
      {{"VIRTUAL_HOST=a.test", "VIRTUAL_PORT=x"}, {}, {}, "VIRTUAL_PORT=\"x\" is not a port number"},
      {{"VIRTUAL_HOST=a.test"}, {}, {}, "VIRTUAL_PORT is required"},
      {{"VIRTUAL_HOST=bad!host", "VIRTUAL_PORT=80"}, {}, {}, "VIRTUAL_HOST"},
      // berth labels win over the environment
      {{"VIRTUAL_HOST=a.test", "VIRTUAL_PORT=80"}, {{"berth.host", "own.test"}, {"berth.port", "90"}},
       {"own.test / 90 web-1 0"}, ""},
  };
  for (const Case& c : cases) {
    INFO(c.env[0]);
    ContainerSpec spec = parse_container_labels(host_container(c.labels, c.env), nginx);
    INFO(spec.reason);
    if (c.routes.empty()) {
      REQUIRE(spec.kind == Kind::kRejected);
      CHECK(spec.reason.find(c.reason_part) != std::string::npos);
    } else {
      REQUIRE(spec.kind == Kind::kRouted);
      CHECK(describe(spec) == c.routes);
    }
  }
  // berth.enable=false wins over VIRTUAL_HOST.
  CHECK(parse_container_labels(host_container({{"berth.enable", "false"}}, {"VIRTUAL_HOST=a.test", "VIRTUAL_PORT=1"}),
                               nginx).kind == Kind::kIgnored);
}

TEST_CASE("docker labels: Traefik compatibility", "[docker][labels][compat]") {
  LabelOptions traefik;
  traefik.traefik = true;
  struct Case {
    std::map<std::string, std::string> labels;
    std::vector<std::string> routes;  // empty: rejected
    std::string reason_part;
  };
  const std::string R = "traefik.http.routers.";
  const std::string S = "traefik.http.services.";
  const std::vector<Case> cases = {
      {{{R + "web.rule", "Host(`a.test`)"}, {S + "websvc.loadbalancer.server.port", "8080"}},
       {"web: a.test / 8080 websvc 0"}, ""},
      {{{R + "web.rule", "Host(`a.test`) && PathPrefix(`/api`)"}, {R + "web.priority", "10"},
        {S + "s.loadbalancer.server.port", "81"}},
       {"web: a.test /api 81 s 10"}, ""},
      {{{R + "web.rule", "Host(`a.test`, `b.test`)"}, {R + "web.service", "two"},
        {S + "one.loadbalancer.server.port", "1"}, {S + "two.loadbalancer.server.port", "2"},
        {R + "web.entrypoints", "websecure"}},
       {"web: a.test,b.test / 2 two 0"}, ""},
      {{{R + "a.rule", "PathPrefix(`/a`)"}, {R + "b.rule", "Host(`b.test`)"}, {"berth.port", "9"}},
       {"a: * /a 9 web-1 0", "b: b.test / 9 web-1 0"}, ""},
      {{{R + "web.rule", "Host(`a.test`) || Host(`b.test`)"}, {"berth.port", "1"}}, {}, "unsupported rule term"},
      {{{R + "web.rule", "HostRegexp(`{x:.+}`)"}, {"berth.port", "1"}}, {}, "unsupported rule function HostRegexp"},
      {{{R + "web.rule", "Host(a.test)"}, {"berth.port", "1"}}, {}, "not quoted with backticks"},
      {{{R + "web.rule", "PathPrefix(`/a;b`)"}, {"berth.port", "1"}}, {}, "PathPrefix must not contain ';'"},
      {{{R + "web.rule", "PathPrefix(`/x//y`)"}, {"berth.port", "1"}}, {}, "PathPrefix never matches: it holds '//'"},
      {{{R + "web.service", "s"}, {S + "s.loadbalancer.server.port", "1"}}, {}, "traefik.http.routers.web.rule is missing"},
      {{{R + "web.rule", "Host(`a.test`)"}}, {}, "loadbalancer.server.port is required"},
      {{{R + "web.rule", "Host(`a.test`)"}, {S + "s.loadbalancer.server.port", "zero"}}, {}, "is not a port number"},
  };
  for (const Case& c : cases) {
    std::string all;
    for (const auto& [k, v] : c.labels) all += k + "=" + v + " ";
    INFO(all);
    ContainerSpec spec = parse_container_labels(host_container(c.labels), traefik);
    INFO(spec.reason);
    if (c.routes.empty()) {
      REQUIRE(spec.kind == Kind::kRejected);
      CHECK(spec.reason.find(c.reason_part) != std::string::npos);
    } else {
      REQUIRE(spec.kind == Kind::kRouted);
      CHECK(spec.origin == "traefik");
      CHECK(describe(spec) == c.routes);
    }
  }
  // traefik.enable as Traefik reads a Go boolean: only 1, t, T, true, True and TRUE keep it on; a
  // value Traefik cannot read leaves the container out there, and here.
  for (const char* off_value : {"false", "False", "FALSE", "0", "f", "no", "maybe", "tRuE", " true"}) {
    INFO(off_value);
    CHECK(parse_container_labels(host_container({{"traefik.enable", off_value}, {R + "w.rule", "Host(`a`)"}}), traefik)
              .kind == Kind::kIgnored);
  }
  for (const char* on_value : {"true", "True", "TRUE", "1", "t", "T"}) {
    INFO(on_value);
    CHECK(parse_container_labels(host_container({{"traefik.enable", on_value}, {R + "w.rule", "Host(`a`)"},
                                                 {R + "w.service", "s"}, {"traefik.http.services.s.loadbalancer.server.port", "80"}}),
                                 traefik)
              .kind == Kind::kRouted);
  }
}

TEST_CASE("docker labels: default service names", "[docker][labels]") {
  ContainerFacts c = host_container({});
  CHECK(default_service_name(c) == "web-1");
  c.labels = {{"com.docker.compose.project", "shop"}, {"com.docker.compose.service", "api"}};
  CHECK(default_service_name(c) == "shop-api");
  c.labels = {{"com.docker.compose.project", "shop"}};
  CHECK(default_service_name(c) == "web-1");
}

TEST_CASE("docker labels: berth.tls.redirect marks every route of the container", "[docker][labels][tls]") {
  ContainerSpec spec = parse_container_labels(
      host_container({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}, {"berth.tls.redirect", "true"},
                      {"berth.routes.api.host", "api.test"}}),
      {});
  REQUIRE(spec.kind == Kind::kRouted);
  REQUIRE(spec.routes.size() == 2);
  CHECK(spec.routes[0].https_redirect);
  CHECK(spec.routes[1].https_redirect);
  ContainerSpec plain = parse_container_labels(
      host_container({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}}), {});
  REQUIRE(plain.kind == Kind::kRouted);
  CHECK_FALSE(plain.routes[0].https_redirect);
  ContainerSpec bad =
      parse_container_labels(host_container({{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.tls.redirect", "maybe"}}), {});
  CHECK(bad.kind == Kind::kRejected);
  CHECK(bad.label == "berth.tls.redirect");
}

TEST_CASE("docker labels: berth.match.* and berth.path_regex", "[docker][labels][route_match]") {
  ContainerSpec spec = parse_container_labels(
      host_container({{"berth.enable", "true"},
                      {"berth.host", "a.test"},
                      {"berth.port", "80"},
                      {"berth.match.methods", "get, HEAD"},
                      {"berth.match.header.X-Env", "canary"},
                      {"berth.match.header.X-Debug", ""},
                      {"berth.match.query.beta", "1"},
                      {"berth.path_regex", "^/users/[0-9]+$"}}),
      {});
  REQUIRE(spec.kind == Kind::kRouted);
  CHECK(spec.match.methods == std::vector<std::string>{"GET", "HEAD"});
  REQUIRE(spec.match.headers.size() == 2);
  // Labels come sorted by name: X-Debug before X-Env.
  CHECK(spec.match.headers[0].name == "X-Debug");
  CHECK_FALSE(spec.match.headers[0].value.has_value());
  CHECK(spec.match.headers[1].value == std::optional<std::string>("canary"));
  REQUIRE(spec.match.query.size() == 1);
  CHECK(spec.match.query[0].value == std::optional<std::string>("1"));
  CHECK(spec.match.path_regex_compiled != nullptr);

  struct Bad {
    std::map<std::string, std::string> labels;
    std::string label, reason;
  };
  const std::vector<Bad> bad = {
      {{{"berth.path_regex", "(unclosed"}}, "berth.path_regex", "invalid regular expression (RE2 syntax)"},
      {{{"berth.path_regex", ""}}, "berth.path_regex", "is empty"},
      {{{"berth.match.methods", "GET,,HEAD"}}, "berth.match.methods", "'' is not an HTTP method"},
      {{{"berth.match.header.X Env", "1"}}, "berth.match.header.X Env", "is not a header name"},
      {{{"berth.match.header.X-Env", "a\nb"}}, "berth.match.header.X-Env", "CR"},
      {{{"berth.match.query.a=b", "1"}}, "berth.match.query.a=b", "cannot appear in a raw query name"},
      {{{"berth.match.cookie.x", "1"}}, "berth.match.cookie.x", "unknown label"},
  };
  for (const Bad& b : bad) {
    std::map<std::string, std::string> labels = {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}};
    labels.insert(b.labels.begin(), b.labels.end());
    ContainerSpec s = parse_container_labels(host_container(labels), {});
    INFO(b.label << ": " << s.reason);
    CHECK(s.kind == Kind::kRejected);
    CHECK(s.label == b.label);
    CHECK(s.reason.find(b.reason) != std::string::npos);
  }
}

TEST_CASE("docker labels: berth.routes.NAME.match.* and .path_regex are that route's own", "[docker][labels][route_match]") {
  ContainerSpec spec = parse_container_labels(
      host_container({{"berth.enable", "true"},
                      {"berth.host", "a.test"},
                      {"berth.port", "80"},
                      {"berth.match.header.X-Team", "ops"},
                      {"berth.routes.canary.host", "a.test"},
                      {"berth.routes.canary.match.header.X-Env", "canary"},
                      {"berth.routes.canary.match.methods", "GET"},
                      {"berth.routes.users.path", "/users"},
                      {"berth.routes.users.path_regex", "/users/[0-9]+"}}),
      {});
  REQUIRE(spec.kind == Kind::kRouted);
  REQUIRE(spec.routes.size() == 3);
  const RouteSpec& main = spec.routes[0];
  CHECK(main.name.empty());
  REQUIRE(main.match.headers.size() == 1);
  CHECK(main.match.headers[0].name == "X-Team");
  const RouteSpec& canary = spec.routes[1];
  CHECK(canary.name == "canary");
  REQUIRE(canary.match.headers.size() == 2);  // the container's, then its own
  CHECK(canary.match.headers[1].name == "X-Env");
  CHECK(canary.match.methods == std::vector<std::string>{"GET"});
  const RouteSpec& users = spec.routes[2];
  CHECK(users.match.path_regex == "/users/[0-9]+");
  CHECK(users.match.path_regex_compiled != nullptr);

  ContainerSpec bad = parse_container_labels(
      host_container({{"berth.enable", "true"}, {"berth.routes.x.path", "/"}, {"berth.routes.x.path_regex", "("},
                      {"berth.port", "80"}}),
      {});
  CHECK(bad.kind == Kind::kRejected);
  CHECK(bad.label == "berth.routes.x.path_regex");
}
