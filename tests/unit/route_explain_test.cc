// RouteTable::explain: the same decision as match(), with every candidate and the rule that chose.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "proxy/model/route_table.h"

using berth::Route;
using berth::RouteExplanation;
using berth::RouteTable;
using berth::Service;

namespace {

struct Spec {
  std::string name;
  std::string host;
  std::string path;
  int32_t priority = 0;
  uint32_t service = 0;
};

// Service 0 has an instance; service 1 has none and its grace is over; service 2 has none and
// is still in its grace (its routes answer 503).
std::shared_ptr<const RouteTable> table_of(const std::vector<Spec>& specs, int64_t now) {
  std::vector<Route> routes;
  for (const Spec& s : specs) {
    Route r;
    r.name = s.name;
    r.host = s.host;
    r.path_prefix = s.path;
    r.priority = s.priority;
    r.service = s.service;
    routes.push_back(r);
  }
  Service up{"up", {}};
  berth::Endpoint e;
  e.key = "127.0.0.1:1";
  up.endpoints.push_back(e);
  Service gone{"gone", {}};
  gone.serve_empty_until_ms = now - 1;
  Service grace{"grace", {}};
  grace.serve_empty_until_ms = now + 60'000;
  return RouteTable::build(std::move(routes), {up, gone, grace}, 1);
}

const berth::RouteCandidate* candidate(const RouteExplanation& x, const RouteTable& t, const std::string& name) {
  for (const auto& c : x.candidates)
    if (t.routes()[c.route].name == name) return &c;
  return nullptr;
}

std::string chosen(const RouteExplanation& x) { return x.chosen ? x.chosen->name : "<none>"; }

}  // namespace

TEST_CASE("explain: each precedence rule is named as the one that decided", "[explain]") {
  const int64_t now = 1'000'000;
  struct Case {
    std::vector<Spec> routes;
    std::string host, path;
    std::string expected, rule, loser;
  };
  const std::vector<Case> cases = {
      {{{"only", "a.test", "/"}}, "a.test", "/", "only", "only_match", ""},
      {{{"low", "a.test", "/"}, {"high", "", "/", 5}}, "a.test", "/x", "high", "priority", "low"},
      {{{"wild", "*.a.test", "/"}, {"exact", "x.a.test", "/"}}, "x.a.test", "/", "exact", "exact_host", "wild"},
      {{{"short", "*.test", "/"}, {"long", "*.a.test", "/"}}, "x.a.test", "/", "long", "longer_wildcard", "short"},
      {{{"any", "", "/"}, {"wild", "*.test", "/"}}, "x.test", "/", "wild", "host_over_any", "any"},
      {{{"root", "a.test", "/"}, {"api", "a.test", "/api"}}, "a.test", "/api/v1", "api", "longer_path_prefix", "root"},
      {{{"first", "", "/a"}, {"second", "", "/b"}, {"third", "", "/a"}}, "h", "/a", "first", "only_match", ""},
  };
  for (const Case& c : cases) {
    auto table = table_of(c.routes, now);
    RouteExplanation x = table->explain(c.host, c.path, now);
    INFO(c.host << c.path);
    CHECK(chosen(x) == c.expected);
    CHECK(x.rule == c.rule);
    CHECK(std::string(berth::precedence_rule_text(x.rule)) != "");
    REQUIRE_FALSE(x.candidates.empty());
    CHECK(x.candidates.front().outcome == "chosen");
    if (!c.loser.empty()) {
      const auto* l = candidate(x, *table, c.loser);
      REQUIRE(l != nullptr);
      CHECK(l->outcome == "outranked");
      CHECK(l->rule == c.rule);
    }
  }
}

TEST_CASE("explain: a longer prefix under one host, an exact host over any-host at equal priority", "[explain]") {
  // "three" repeats the host and prefix of "two": build() drops it, so it is no candidate.
  auto table = table_of({{"one", "a.test", "/ab"}, {"two", "a.test", "/a"}, {"three", "a.test", "/a"}}, 1);
  auto tie = table_of({{"p-first", "", "/"}, {"p-second", "a.test", "/x", 0}}, 1);
  RouteExplanation x = tie->explain("a.test", "/x", 1);
  CHECK(chosen(x) == "p-second");
  CHECK(x.rule == "exact_host");
  RouteExplanation y = table->explain("a.test", "/abc", 1);
  CHECK(chosen(y) == "one");
  CHECK(y.rule == "longer_path_prefix");
  CHECK(y.candidates.size() == 2);
}

TEST_CASE("explain: non-matching paths and services without instances are listed with why", "[explain]") {
  const int64_t now = 1'000'000;
  auto table = table_of({{"api", "a.test", "/api"},
                         {"dead", "a.test", "/", 9, 1},
                         {"waiting", "*.test", "/", 0, 2},
                         {"fallback", "", "/"}},
                        now);
  RouteExplanation x = table->explain("A.Test:8080", "/other?q=1", now);
  CHECK(x.host == "a.test");
  CHECK(x.path == "/other");
  CHECK(chosen(x) == "waiting");  // its service has no instance but is in its grace: 503
  CHECK(x.rule == "host_over_any");
  CHECK(candidate(x, *table, "api")->outcome == "path_mismatch");
  CHECK(candidate(x, *table, "dead")->outcome == "not_serving");
  CHECK(candidate(x, *table, "fallback")->outcome == "outranked");
  CHECK(candidate(x, *table, "fallback")->host_match == "any");
  CHECK(candidate(x, *table, "waiting")->host_match == "wildcard");
  CHECK(candidate(x, *table, "api")->host_match == "exact");
  CHECK(x.candidates.size() == 4);

  RouteExplanation none = table->explain("b.example", "/", now);
  CHECK(chosen(none) == "fallback");
  RouteExplanation nothing = table_of({{"api", "a.test", "/api"}}, now)->explain("a.test", "/", now);
  CHECK(nothing.chosen == nullptr);
  CHECK(nothing.rule.empty());
  CHECK(nothing.candidates.size() == 1);
}

TEST_CASE("explain: invalid hosts are reported and matched as if absent", "[explain]") {
  auto table = table_of({{"any", "", "/"}, {"a", "a.test", "/"}}, 1);
  bool valid = true;
  RouteExplanation x = table->explain("[not-ipv6", "/", 1, &valid);
  CHECK_FALSE(valid);
  CHECK(chosen(x) == "any");
  valid = false;
  table->explain("a.test", "/", 1, &valid);
  CHECK(valid);
  table->explain("", "/", 1, &valid);
  CHECK(valid);
}

TEST_CASE("explain: agrees with match() across a table of requests", "[explain]") {
  const int64_t now = berth::health_clock_ms();
  auto table = table_of({{"exact-root", "example.com", "/"},
                         {"exact-api", "example.com", "/api"},
                         {"wild", "*.example.com", "/"},
                         {"wild-deep", "*.b.example.com", "/"},
                         {"any-api", "", "/api"},
                         {"any-api-hi", "", "/api/admin", 10},
                         {"wild-hi", "*.example.com", "/v2", 3},
                         {"dead", "dead.example.com", "/", 0, 1},
                         {"grace", "grace.example.com", "/", 0, 2}},
                        now);
  for (std::string host : {"example.com", "EXAMPLE.com.", "a.example.com", "a.b.example.com", "x.b.example.com:80",
                           "dead.example.com", "grace.example.com", "other.org", "", "[::1]"}) {
    for (std::string path : {"/", "/api", "/api/admin/x", "/v2/x", "/apix", "/z?api"}) {
      const Route* m = table->match(host, path);
      RouteExplanation x = table->explain(host, path, now);
      INFO(host << " " << path);
      CHECK(x.chosen == m);
    }
  }
}
