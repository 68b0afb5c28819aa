// Path rewriting and redirects: the config keys (good values, and every refusal with its place),
// the pure path transformation, placeholder expansion, the upstream request line, and the labels.
#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/rewrite.h"
#include "discovery/docker_labels.h"
#include "proxy/http/http_head.h"
#include "proxy/http/http_rewrite.h"
#include "tests/unit/config_helpers.h"

using namespace berth::config;
using berth::config::testing::all_errors;
using berth::config::testing::check_refused_at;
using berth::config::testing::load;
using berth::config::testing::PlacedError;

namespace {

const std::string kHead = "listeners: [\"127.0.0.1:8080\"]\nservices:\n  api: {endpoints: [\"127.0.0.1:9000\"]}\n";

// The route read from `route_yaml` (the lines of one route map under "routes:").
Route load_route(const std::string& route_yaml) {
  LoadResult result = load(kHead + "routes:\n" + route_yaml);
  INFO(route_yaml << all_errors(result));
  REQUIRE(result.ok());
  REQUIRE(result.config->routes.size() == 1);
  return result.config->routes[0];
}

PathRewrite regex_rewrite(std::string_view pattern, std::string_view replacement) {
  PathRewrite rw;
  INFO(pattern << " -> " << replacement);
  REQUIRE(compile_path_regex(pattern, replacement, rw).empty());
  return rw;
}

struct Rewritten {
  RewriteOutcome outcome;
  std::string target;
  std::string stripped;
};
Rewritten apply(const PathRewrite& rw, std::string_view route_prefix, std::string_view target) {
  Rewritten r;
  r.outcome = rewrite_target(rw, route_prefix, target, r.target, r.stripped);
  return r;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Config

TEST_CASE("rewrite config: every key read", "[rewrite][config]") {
  Route r = load_route("  - path: /api\n    service: api\n    strip_prefix: true\n    add_prefix: /v1\n");
  CHECK(r.rewrite.strip == PathRewrite::Strip::kRoutePrefix);
  CHECK(r.rewrite.add_prefix == "/v1");
  CHECK_FALSE(r.redirect.enabled());

  r = load_route("  - path: /api/v2\n    service: api\n    strip_prefix: /api\n");
  CHECK(r.rewrite.strip == PathRewrite::Strip::kGiven);
  CHECK(r.rewrite.strip_prefix == "/api");

  r = load_route("  - path: /api\n    service: api\n    strip_prefix: false\n");
  CHECK_FALSE(r.rewrite.enabled());

  r = load_route("  - path: /old\n    service: api\n    rewrite: {regex: \"^/old/(.*)$\", replacement: \"/new/\\\\1\"}\n");
  REQUIRE(r.rewrite.regex != nullptr);
  CHECK(r.rewrite.regex_text == "^/old/(.*)$");
  CHECK(r.rewrite.replacement == "/new/\\1");

  r = load_route("  - host: example.com\n    redirect: {to: \"https://www.example.com{uri}\", code: 301}\n");
  CHECK(r.redirect.to == "https://www.example.com{uri}");
  CHECK(r.redirect.code == 301);
  CHECK(r.service.empty());

  r = load_route("  - host: example.com\n    redirect: {to: \"/elsewhere\"}\n");
  CHECK(r.redirect.code == 302);
}

TEST_CASE("rewrite config: refusals with file:line", "[rewrite][config]") {
  const std::vector<PlacedError> cases = {
      {"  - path: /api\n    service: api\n    strip_prefix: api\n", 7, 19,
       "routes[0].strip_prefix: expected true, false or a path prefix: 'api' must start with '/'"},
      {"  - path: /api\n    service: api\n    strip_prefix: [a]\n", 7, 19, "routes[0].strip_prefix: expected true"},
      {"  - service: api\n    strip_prefix: true\n", 6, 19,
       "routes[0].strip_prefix: true strips the route's path, and this route has none"},
      {"  - path: /api\n    service: api\n    add_prefix: \"/v1?x\"\n", 7, 17,
       "routes[0].add_prefix: invalid prefix '/v1?x': must not contain '?'"},
      {"  - path: /api\n    service: api\n    add_prefix: v1\n", 7, 17, "must start with '/'"},
      {"  - path: /api\n    service: api\n    add_prefix: /v1/../admin\n", 7, 17,
       "routes[0].add_prefix: invalid prefix '/v1/../admin': must not hold a '.' or '..' segment"},
      {"  - path: /api\n    service: api\n    add_prefix: \"/v1/%2E\"\n", 7, 17, "must not hold a '.' or '..' segment"},
      {"  - path: /api\n    service: api\n    strip_prefix: /api/.;x\n", 7, 19, "must not hold a '.' or '..' segment"},
      {"  - path: /o\n    service: api\n    rewrite: {regex: \"^/o/(.*)$\", replacement: \"/n/../\\\\1\"}\n", 7, 48,
       "routes[0].rewrite.replacement: replacement '/n/../\\1' must not hold a '.' or '..' segment"},
      {"  - path: /o\n    service: api\n    rewrite: {regex: \"^/o/(.*\", replacement: \"/n\"}\n", 7, 22,
       "routes[0].rewrite.regex: invalid regex '^/o/(.*': missing )"},
      {"  - path: /o\n    service: api\n    rewrite: {regex: \"^/o/(.*)$\", replacement: \"/n/\\\\2\"}\n", 7, 48,
       "routes[0].rewrite.replacement: replacement '/n/\\2' does not fit the regex"},
      {"  - path: /o\n    service: api\n    rewrite: {regex: \"^/o/(.*)$\", replacement: \"n/\\\\1\"}\n", 7, 48,
       "must start with '/'"},
      {"  - path: /o\n    service: api\n    rewrite: {regex: \"^/o/(.*)$\", replacement: \"/n?\\\\1\"}\n", 7, 48,
       "'?' or '#' (the query is kept as sent)"},
      {"  - path: /o\n    service: api\n    rewrite: {regex: \"^/o\"}\n", 7, 14,
       "routes[0].rewrite: needs both 'regex' and 'replacement'"},
      {"  - path: /o\n    service: api\n    rewrite: {regex: \"^/o\", replacement: /n, flags: i}\n", 7, 46,
       "unknown key 'flags'"},
      {"  - redirect: {to: \"https://x.test{uri}\", code: 200}\n", 5, 49,
       "routes[0].redirect.code: 200 must be 301, 302, 303, 307 or 308"},
      {"  - redirect: {to: \"https://x.test{url}\"}\n", 5, 20, "unknown placeholder {url}"},
      {"  - redirect: {to: \"https://x.test/a b\"}\n", 5, 20, "must be visible ASCII without spaces"},
      {"  - redirect: {code: 301}\n", 5, 15, "routes[0].redirect: missing required key 'to'"},
      {"  - redirect: {to: /x}\n    service: api\n", 6, 14,
       "routes[0].service: a route with 'redirect' has no service"},
      {"  - path: /a\n    redirect: {to: /x}\n    strip_prefix: true\n", 7, 19,
       "routes[0]: a route with 'redirect' cannot also rewrite the path"},
      {"  - path: /a\n", 5, 5, "routes[0]: missing required key 'service' (or 'split', or 'redirect')"},
  };
  for (const PlacedError& c : cases) check_refused_at(kHead + "routes:\n" + c.yaml, c);
}

// ---------------------------------------------------------------------------------------
// The path transformation

TEST_CASE("rewrite: strip_prefix by path segment, empty path becomes /", "[rewrite]") {
  PathRewrite rw;
  rw.strip = PathRewrite::Strip::kRoutePrefix;
  struct Case {
    std::string_view prefix, target;
    RewriteOutcome outcome;
    std::string_view out, stripped;
  };
  const Case cases[] = {
      {"/api", "/api/users", RewriteOutcome::kRewritten, "/users", "/api"},
      {"/api", "/api/users?id=1&x=%2F", RewriteOutcome::kRewritten, "/users?id=1&x=%2F", "/api"},
      {"/api", "/api", RewriteOutcome::kRewritten, "/", "/api"},
      {"/api", "/api?q", RewriteOutcome::kRewritten, "/?q", "/api"},
      {"/api", "/api/", RewriteOutcome::kRewritten, "/", "/api"},
      {"/api", "/apix", RewriteOutcome::kUnchanged, "", ""},  // not at a segment boundary
      // The route matches "/api;v=1" as "/api" (parameters of the last segment aside): stripped
      // too, the parameters stay, on the root.
      {"/api", "/api;v=1", RewriteOutcome::kRewritten, "/;v=1", "/api"},
      {"/api", "/api;v=1?q", RewriteOutcome::kRewritten, "/;v=1?q", "/api"},
      {"/api/", "/api/users", RewriteOutcome::kRewritten, "/users", "/api"},
      {"/", "/users", RewriteOutcome::kUnchanged, "", ""},  // nothing to strip
      {"/api", "*", RewriteOutcome::kUnchanged, "", ""},
  };
  for (const Case& c : cases) {
    INFO(c.prefix << " " << c.target);
    Rewritten r = apply(rw, c.prefix, c.target);
    CHECK(r.outcome == c.outcome);
    CHECK(r.target == c.out);
    CHECK(r.stripped == c.stripped);
  }
  // A given prefix instead of the route's.
  rw.strip = PathRewrite::Strip::kGiven;
  rw.strip_prefix = "/api";
  Rewritten r = apply(rw, "/api/v2", "/api/v2/x");
  CHECK(r.target == "/v2/x");
  CHECK(r.stripped == "/api");
}

TEST_CASE("rewrite: add_prefix after strip, one slash between", "[rewrite]") {
  PathRewrite rw;
  rw.add_prefix = "/v1";
  CHECK(apply(rw, "/", "/users?a=b").target == "/v1/users?a=b");
  rw.strip = PathRewrite::Strip::kRoutePrefix;
  CHECK(apply(rw, "/api", "/api/users").target == "/v1/users");
  CHECK(apply(rw, "/api", "/api").target == "/v1/");
  CHECK(apply(rw, "/api", "/api;v=1").target == "/v1;v=1");
  rw.add_prefix = "/v1/";
  CHECK(apply(rw, "/api", "/api/users").target == "/v1/users");
}

TEST_CASE("rewrite: regex with groups, after strip and add; the query is kept", "[rewrite]") {
  PathRewrite rw = regex_rewrite("^/old/(.*)$", "/new/\\1");
  Rewritten r = apply(rw, "/old", "/old/a/b?x=/old/y");
  CHECK(r.outcome == RewriteOutcome::kRewritten);
  CHECK(r.target == "/new/a/b?x=/old/y");  // the query is not matched nor changed
  CHECK(apply(rw, "/old", "/older").outcome == RewriteOutcome::kUnchanged);

  // Order: strip, add, then the regex sees the result.
  rw.strip = PathRewrite::Strip::kRoutePrefix;
  rw.add_prefix = "/old";
  CHECK(apply(rw, "/api", "/api/z").target == "/new/z");

  // Two groups, swapped; only the first match is replaced.
  PathRewrite two = regex_rewrite("/(\\w+)-(\\w+)", "/\\2-\\1");
  CHECK(apply(two, "/", "/a-b/c-d").target == "/b-a/c-d");
}

TEST_CASE("rewrite: a result that is not a path fails", "[rewrite]") {
  PathRewrite rw = regex_rewrite("^/z(.*)$", "\\1");  // allowed at load: a group may begin with '/'
  CHECK(apply(rw, "/", "/z/ok").target == "/ok");
  Rewritten r = apply(rw, "/", "/zfoo");
  CHECK(r.outcome == RewriteOutcome::kFailed);
  CHECK(apply(rw, "/", "/z").outcome == RewriteOutcome::kFailed);  // empty
}

TEST_CASE("rewrite: redirect placeholders", "[rewrite]") {
  std::string out;
  expand_redirect("https://www.example.com{uri}", "/a/b?c=1", "example.com", out);
  CHECK(out == "https://www.example.com/a/b?c=1");
  out.clear();
  expand_redirect("https://{host}/new{path}?from=old&{query}", "/p?q=2", "h.test:8080", out);
  CHECK(out == "https://h.test:8080/new/p?from=old&q=2");
  out.clear();
  expand_redirect("/x{query}", "/p", "h", out);
  CHECK(out == "/x");
  CHECK(redirect_target_problem("https://a{uri}").empty());
  CHECK_FALSE(redirect_target_problem("https://a{uri").empty());
  CHECK_FALSE(redirect_target_problem("https://a}").empty());
  CHECK_FALSE(redirect_target_problem("https://a\r\nSet-Cookie: x").empty());
  CHECK(redirect_code_problem(307).empty());
  CHECK_FALSE(redirect_code_problem(300).empty());
}

// ---------------------------------------------------------------------------------------
// The upstream request line carries the new target; nothing else changes.

TEST_CASE("rewrite: the upstream request line uses the edits' target", "[rewrite]") {
  const std::string head = "GET /api/users?id=7 HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Prefix: /evil\r\n\r\n";
  berth::http::RequestHead req;
  berth::http::Limits limits;
  REQUIRE(berth::http::parse_request_head(head, limits, req).ok());
  berth::http::HeaderEdits edits;
  edits.target = "/users?id=7";
  edits.remove_request.emplace_back("X-Forwarded-Prefix");
  edits.add_request.push_back({"X-Forwarded-Prefix", "/api"});
  berth::http::ForwardInfo info{"10.0.0.1", "http", 80, "rid", &edits};
  std::string out;
  berth::http::build_upstream_request(req, info, out);
  CHECK(out.starts_with("GET /users?id=7 HTTP/1.1\r\n"));
  CHECK(out.find("X-Forwarded-Prefix: /api\r\n") != std::string::npos);
  CHECK(out.find("/evil") == std::string::npos);

  // Without a target the client's is sent.
  edits.clear();
  CHECK(edits.empty());
  out.clear();
  berth::http::build_upstream_request(req, info, out);
  CHECK(out.starts_with("GET /api/users?id=7 HTTP/1.1\r\n"));
}

// ---------------------------------------------------------------------------------------
// Labels

namespace {

berth::discovery::ContainerSpec labelled(std::map<std::string, std::string> extra) {
  berth::discovery::ContainerFacts c;
  c.id = std::string(64, 'b');
  c.name = "web-1";
  c.labels = {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "80"}};
  for (auto& [k, v] : extra) c.labels[k] = v;
  c.network_mode = "host";
  c.running = true;
  return berth::discovery::parse_container_labels(c, {});
}

}  // namespace

TEST_CASE("rewrite labels: values read, bad ones reject the container", "[rewrite][labels]") {
  using Kind = berth::discovery::ContainerSpec::Kind;
  auto spec = labelled({{"berth.strip_prefix", "true"}, {"berth.add_prefix", "/v1"}});
  REQUIRE(spec.kind == Kind::kRouted);
  CHECK(spec.rewrite.strip == PathRewrite::Strip::kRoutePrefix);
  CHECK(spec.rewrite.add_prefix == "/v1");
  spec = labelled({{"berth.strip_prefix", " /api "}});
  CHECK(spec.rewrite.strip == PathRewrite::Strip::kGiven);
  CHECK(spec.rewrite.strip_prefix == "/api");
  spec = labelled({{"berth.redirect.to", "https://b.test{uri}"}, {"berth.redirect.code", "308"}});
  REQUIRE(spec.kind == Kind::kRouted);
  CHECK(spec.redirect.to == "https://b.test{uri}");
  CHECK(spec.redirect.code == 308);

  struct Bad {
    std::map<std::string, std::string> labels;
    std::string label, reason;
  };
  const std::vector<Bad> bad = {
      {{{"berth.strip_prefix", "maybe"}}, "berth.strip_prefix", "is not true, false or a path prefix"},
      {{{"berth.add_prefix", "v1"}}, "berth.add_prefix", "must start with '/'"},
      {{{"berth.redirect.to", "https://x{nope}"}}, "berth.redirect.to", "unknown placeholder {nope}"},
      {{{"berth.redirect.to", "/x"}, {"berth.redirect.code", "302x"}}, "berth.redirect.code", "is not 301, 302"},
      {{{"berth.redirect.code", "301"}}, "berth.redirect.code", "needs berth.redirect.to"},
      {{{"berth.redirect.to", "/x"}, {"berth.add_prefix", "/v1"}}, "berth.redirect.to", "cannot also rewrite"},
      {{{"berth.redirect.from", "/x"}}, "berth.redirect.from", "unknown label"},
  };
  for (const Bad& b : bad) {
    auto s = labelled(b.labels);
    INFO(b.label << ": " << s.reason);
    CHECK(s.kind == Kind::kRejected);
    CHECK(s.label == b.label);
    CHECK(s.reason.find(b.reason) != std::string::npos);
  }
}

TEST_CASE("rewrite labels: Traefik stripprefix, addprefix and redirectscheme middlewares", "[rewrite][labels]") {
  using Kind = berth::discovery::ContainerSpec::Kind;
  auto parse = [](std::map<std::string, std::string> labels) {
    berth::discovery::ContainerFacts c;
    c.id = std::string(64, 'c');
    c.name = "web-1";
    c.labels = std::move(labels);
    c.labels["traefik.http.services.web.loadbalancer.server.port"] = "80";
    c.network_mode = "host";
    c.running = true;
    berth::discovery::LabelOptions options;
    options.traefik = true;
    return berth::discovery::parse_container_labels(c, options);
  };
  auto spec = parse({{"traefik.http.routers.web.rule", "Host(`a.test`) && PathPrefix(`/api`)"},
                     {"traefik.http.routers.web.middlewares", "strip@docker, add,https,auth@file"},
                     {"traefik.http.middlewares.strip.stripprefix.prefixes", "/api"},
                     {"traefik.http.middlewares.add.addPrefix.prefix", "/v1"},
                     {"traefik.http.middlewares.https.redirectscheme.scheme", "https"},
                     {"traefik.http.middlewares.https.redirectscheme.permanent", "true"}});
  INFO(spec.reason);
  REQUIRE(spec.kind == Kind::kRouted);
  CHECK(spec.rewrite.strip == PathRewrite::Strip::kGiven);
  CHECK(spec.rewrite.strip_prefix == "/api");
  CHECK(spec.rewrite.add_prefix == "/v1");
  REQUIRE(spec.routes.size() == 1);
  CHECK(spec.routes[0].https_redirect);
  CHECK(spec.routes[0].https_redirect_code == 301);  // permanent=true

  // A middleware defined but not named by the router does nothing.
  spec = parse({{"traefik.http.routers.web.rule", "Host(`a.test`)"},
                {"traefik.http.middlewares.strip.stripprefix.prefixes", "/api"}});
  REQUIRE(spec.kind == Kind::kRouted);
  CHECK_FALSE(spec.rewrite.enabled());

  // Several prefixes, another scheme, routers that disagree: rejected with the label.
  spec = parse({{"traefik.http.routers.web.rule", "Host(`a.test`)"},
                {"traefik.http.routers.web.middlewares", "s"},
                {"traefik.http.middlewares.s.stripprefix.prefixes", "/a,/b"}});
  CHECK(spec.kind == Kind::kRejected);
  CHECK(spec.label == "traefik.http.middlewares.s.stripprefix.prefixes");
  spec = parse({{"traefik.http.routers.web.rule", "Host(`a.test`)"},
                {"traefik.http.routers.web.middlewares", "r"},
                {"traefik.http.middlewares.r.redirectscheme.scheme", "http"}});
  CHECK(spec.kind == Kind::kRejected);
  CHECK(spec.reason.find("only redirects to https") != std::string::npos);
  spec = parse({{"traefik.http.routers.web.rule", "Host(`a.test`)"},
                {"traefik.http.routers.web.middlewares", "s1"},
                {"traefik.http.routers.two.rule", "Host(`b.test`)"},
                {"traefik.http.routers.two.middlewares", "s2"},
                {"traefik.http.middlewares.s1.stripprefix.prefixes", "/a"},
                {"traefik.http.middlewares.s2.stripprefix.prefixes", "/b"}});
  CHECK(spec.kind == Kind::kRejected);
  CHECK(spec.reason.find("different stripprefix/addprefix middlewares") != std::string::npos);
}
