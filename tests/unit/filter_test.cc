// Filter chains: verdicts (continue, reply, pending), resumption, cancellation, per-worker
// state, and the filters a config route builds (address ranges, methods, header edits).

#include <arpa/inet.h>

#include <catch2/catch.hpp>

#include <functional>

#include "config/config.h"
#include "config_helpers.h"
#include "proxy/filter/filter.h"
#include "proxy/filter/rate_limit.h"
#include "proxy/filter/route_filters.h"
#include "proxy/http/http_head.h"
#include "proxy/http/http_rewrite.h"
#include "proxy/model/route_table.h"

using namespace berth;

namespace {

// A filter whose behaviour the test scripts; it logs its calls.
class ScriptedFilter final : public RequestFilter {
 public:
  using Script = std::function<FilterResult(FilterState*, HeaderEdits&, FilterReply&, const FilterWaiter&)>;
  ScriptedFilter(std::string name, std::vector<std::string>* calls, Script script)
      : name_(std::move(name)), calls_(calls), script_(std::move(script)) {}
  std::string_view name() const override { return name_; }
  FilterResult on_request(const FilterRequest&, FilterState* state, HeaderEdits& edits, FilterReply& reply,
                          const FilterWaiter& waiter) const override {
    calls_->push_back(name_);
    return script_(state, edits, reply, waiter);
  }

 private:
  std::string name_;
  std::vector<std::string>* calls_;
  Script script_;
};

// Per-worker state: a counter only this worker's runs touch.
struct CountState final : FilterState {
  int seen = 0;
};
class CountingFilter final : public RequestFilter {
 public:
  std::string_view name() const override { return "count"; }
  std::unique_ptr<FilterState> make_state() const override { return std::make_unique<CountState>(); }
  FilterResult on_request(const FilterRequest&, FilterState* state, HeaderEdits& edits, FilterReply&,
                          const FilterWaiter&) const override {
    auto* s = static_cast<CountState*>(state);
    ++s->seen;
    edits.add_request.push_back({"X-Seen", std::to_string(s->seen)});
    return FilterResult::kContinue;
  }
};

struct Owner final : FilterRunOwner {
  int done = 0;
  void on_filter_done() override { ++done; }
};

// A parsed request and a route to run filters against.
struct Fixture {
  std::string raw;
  http::RequestHead head;
  Route route;
  explicit Fixture(std::string text = "GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n") : raw(std::move(text)) {
    http::Limits limits;
    REQUIRE(http::parse_request_head(raw, limits, head).ok());
    route.name = "r";
  }
  FilterRequest request(std::string_view client_ip = "127.0.0.1") const { return FilterRequest{head, route, client_ip}; }
};

FilterChain chain_of(std::vector<std::shared_ptr<const RequestFilter>> filters) { return FilterChain(std::move(filters)); }

// The chain of a config route whose access is `access` (YAML flow mapping).
std::shared_ptr<const FilterChain> access_chain(const std::string& access) {
  auto cfg = config::testing::load(
      "listeners: [\"127.0.0.1:0\"]\n"
      "routes:\n"
      "  - service: s\n"
      "    access: " + access + "\n"
      "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
  INFO(config::testing::all_errors(cfg));
  REQUIRE(cfg.ok());
  auto chain = build_route_filters(cfg.config->routes[0]);
  REQUIRE(chain);
  return chain;
}

}  // namespace

TEST_CASE("filters: every filter passes, edits add up, in order", "[filter]") {
  std::vector<std::string> calls;
  auto add = [](std::string v) {
    return [v](FilterState*, HeaderEdits& e, FilterReply&, const FilterWaiter&) {
      e.add_request.push_back({"X-Step", v});
      return FilterResult::kContinue;
    };
  };
  FilterChain chain = chain_of({std::make_shared<ScriptedFilter>("a", &calls, add("1")),
                                std::make_shared<ScriptedFilter>("b", &calls, add("2"))});
  Fixture fx;
  FilterStates states;
  FilterRun run;
  Owner owner;
  CHECK(run.start(chain, states, fx.request(), &owner) == FilterResult::kContinue);
  CHECK(calls == std::vector<std::string>{"a", "b"});
  REQUIRE(run.edits().add_request.size() == 2);
  CHECK(run.edits().add_request[1].value == "2");
  CHECK(owner.done == 0);
  CHECK_FALSE(run.pending());
}

TEST_CASE("filters: a reply stops the chain", "[filter]") {
  std::vector<std::string> calls;
  FilterChain chain = chain_of(
      {std::make_shared<ScriptedFilter>("deny", &calls,
                                        [](FilterState*, HeaderEdits&, FilterReply& r, const FilterWaiter&) {
                                          r.status = 429;
                                          r.cause = "rate-limited";
                                          r.headers.push_back({"Retry-After", "1"});
                                          return FilterResult::kReply;
                                        }),
       std::make_shared<ScriptedFilter>("never", &calls, [](auto...) { return FilterResult::kContinue; })});
  Fixture fx;
  FilterStates states;
  FilterRun run;
  CHECK(run.start(chain, states, fx.request(), nullptr) == FilterResult::kReply);
  CHECK(calls == std::vector<std::string>{"deny"});
  CHECK(run.reply().status == 429);
  CHECK(run.reply().cause == "rate-limited");
}

TEST_CASE("filters: a pending filter answers later, then the chain goes on", "[filter]") {
  std::vector<std::string> calls;
  FilterWaiter kept;
  auto wait = [&](FilterState*, HeaderEdits&, FilterReply&, const FilterWaiter& w) {
    kept = w;
    return FilterResult::kPending;
  };
  FilterChain chain = chain_of({std::make_shared<ScriptedFilter>("auth", &calls, wait),
                                std::make_shared<ScriptedFilter>("after", &calls, [](auto...) { return FilterResult::kContinue; })});
  Fixture fx;
  FilterStates states;
  FilterRun run;
  Owner owner;
  REQUIRE(run.start(chain, states, fx.request(), &owner) == FilterResult::kPending);
  CHECK(run.pending());
  CHECK(calls == std::vector<std::string>{"auth"});
  CHECK(owner.done == 0);

  SECTION("continue: the next filter runs on proceed") {
    kept.edits().add_request.push_back({"X-User", "alice"});  // what the auth service said
    kept.done(FilterResult::kContinue);
    CHECK(owner.done == 1);
    CHECK_FALSE(run.pending());
    kept.done(FilterResult::kContinue);  // a second answer is ignored
    CHECK(owner.done == 1);
    CHECK(run.proceed(fx.request()) == FilterResult::kContinue);
    CHECK(calls == std::vector<std::string>{"auth", "after"});
    REQUIRE(run.edits().add_request.size() == 1);
    CHECK(run.edits().add_request[0].value == "alice");
  }
  SECTION("reply: the rest of the chain is skipped") {
    kept.reply().status = 401;
    kept.reply().cause = "auth-required";
    kept.done(FilterResult::kReply);
    CHECK(owner.done == 1);
    CHECK(run.proceed(fx.request()) == FilterResult::kReply);
    CHECK(run.reply().status == 401);
    CHECK(calls == std::vector<std::string>{"auth"});
  }
  SECTION("the request went away: a late answer does nothing") {
    run.cancel();
    CHECK(kept.cancelled());
    kept.done(FilterResult::kContinue);
    CHECK(owner.done == 0);
  }
}

TEST_CASE("filters: an answer given before on_request returns is taken at once", "[filter]") {
  std::vector<std::string> calls;
  FilterChain chain = chain_of(
      {std::make_shared<ScriptedFilter>("cached", &calls,
                                        [](FilterState*, HeaderEdits&, FilterReply&, const FilterWaiter& w) {
                                          w.done(FilterResult::kContinue);  // e.g. a cache hit
                                          return FilterResult::kPending;
                                        }),
       std::make_shared<ScriptedFilter>("next", &calls, [](auto...) { return FilterResult::kContinue; })});
  Fixture fx;
  FilterStates states;
  FilterRun run;
  Owner owner;
  CHECK(run.start(chain, states, fx.request(), &owner) == FilterResult::kContinue);
  CHECK(owner.done == 0);
  CHECK(calls == std::vector<std::string>{"cached", "next"});
}

TEST_CASE("filters: state is per worker and kept while the filter is published", "[filter]") {
  auto counting = std::make_shared<CountingFilter>();
  FilterChain chain = chain_of({counting});
  Fixture fx;
  FilterStates worker1, worker2;
  auto seen = [&](FilterStates& states) {
    FilterRun run;
    REQUIRE(run.start(chain, states, fx.request(), nullptr) == FilterResult::kContinue);
    return run.edits().add_request.at(0).value;
  };
  CHECK(seen(worker1) == "1");
  CHECK(seen(worker1) == "2");
  CHECK(seen(worker2) == "1");  // another worker: its own state
  worker1.retain({counting.get()});
  CHECK(seen(worker1) == "3");  // still published: kept
  worker1.retain({});
  CHECK(worker1.size() == 0);
  CHECK(seen(worker1) == "1");  // unpublished, then back: afresh
}

TEST_CASE("route filters: address ranges, deny first", "[filter]") {
  auto chain = access_chain("{allow: [\"10.0.0.0/8\", \"::1\"], deny: [\"10.1.2.0/24\"]}");
  Fixture fx;
  FilterStates states;
  auto verdict = [&](std::string_view ip) {
    FilterRun run;
    FilterResult r = run.start(*chain, states, fx.request(ip), nullptr);
    if (r == FilterResult::kReply) {
      CHECK(run.reply().status == 403);
      CHECK(run.reply().cause == "forbidden-address");
    }
    return r;
  };
  CHECK(verdict("10.9.8.7") == FilterResult::kContinue);
  CHECK(verdict("10.1.2.3") == FilterResult::kReply);     // denied within the allowed range
  CHECK(verdict("10.1.3.1") == FilterResult::kContinue);
  CHECK(verdict("11.0.0.1") == FilterResult::kReply);     // not allowed
  CHECK(verdict("::1") == FilterResult::kContinue);
  CHECK(verdict("::2") == FilterResult::kReply);
  CHECK(verdict("::ffff:10.0.0.1") == FilterResult::kContinue);  // IPv4-mapped
  CHECK(verdict("not-an-address") == FilterResult::kReply);

  // The transport's binary address is what counts when it is there (the text is for logs).
  auto verdict_bin = [&](std::string_view text, uint8_t family, std::string_view bin_text) {
    uint8_t bin[16] = {};
    REQUIRE(inet_pton(family == 4 ? AF_INET : AF_INET6, std::string(bin_text).c_str(), bin) == 1);
    FilterRequest req = fx.request(text);
    req.client_addr = bin;
    req.client_family = family;
    FilterRun run;
    return run.start(*chain, states, req, nullptr);
  };
  CHECK(verdict_bin("11.0.0.1", 4, "10.9.8.7") == FilterResult::kContinue);
  CHECK(verdict_bin("10.9.8.7", 4, "10.1.2.3") == FilterResult::kReply);
  CHECK(verdict_bin("", 6, "::1") == FilterResult::kContinue);
  CHECK(verdict_bin("", 6, "::ffff:10.1.2.3") == FilterResult::kReply);  // mapped: IPv4 rules
  CHECK(verdict_bin("", 6, "::ffff:10.9.8.7") == FilterResult::kContinue);
}

TEST_CASE("rate limit filter: an IPv4 client and its IPv4-mapped form share one bucket", "[filter]") {
  config::RateLimit cfg;
  cfg.per_second = 1;
  cfg.burst = 1;
  RateLimitFilter limit(cfg);
  Fixture fx;
  HeaderEdits edits;
  FilterReply reply;
  // As the transport gives it: binary when known (text kept for logs), else text only.
  auto take = [&](uint8_t family, std::string_view ip) {
    uint8_t bin[16] = {};
    FilterRequest req = fx.request(ip);
    if (family != 0) {
      REQUIRE(inet_pton(family == 4 ? AF_INET : AF_INET6, std::string(ip).c_str(), bin) == 1);
      req.client_addr = bin;
      req.client_family = family;
    }
    req.now_ns = 1'000'000'000;  // one instant: no refill between the takes
    reply.clear();
    return limit.on_request(req, nullptr, edits, reply, FilterWaiter{});
  };
  CHECK(take(4, "10.0.0.1") == FilterResult::kContinue);
  CHECK(take(6, "::ffff:10.0.0.1") == FilterResult::kReply);  // a dual-stack listener's view
  CHECK(reply.status == 429);
  CHECK(take(0, "::ffff:10.0.0.1") == FilterResult::kReply);  // text only (PROXY header)
  CHECK(take(0, "10.0.0.1") == FilterResult::kReply);
  CHECK(take(6, "::ffff:10.0.0.2") == FilterResult::kContinue);
  CHECK(take(4, "10.0.0.2") == FilterResult::kReply);
  CHECK(take(6, "2001:db8::1") == FilterResult::kContinue);  // IPv6 proper: its own bucket
}

TEST_CASE("rate limit filter: IPv6 clients are keyed by their prefix (ipv6_prefix, /64 by default)", "[filter]") {
  Fixture fx;
  HeaderEdits edits;
  FilterReply reply;
  auto take = [&](RateLimitFilter& limit, uint8_t family, std::string_view ip) {
    uint8_t bin[16] = {};
    FilterRequest req = fx.request(ip);
    if (family != 0) {
      REQUIRE(inet_pton(AF_INET6, std::string(ip).c_str(), bin) == 1);
      req.client_addr = bin;
      req.client_family = family;
    }
    req.now_ns = 1'000'000'000;
    reply.clear();
    return limit.on_request(req, nullptr, edits, reply, FilterWaiter{});
  };
  config::RateLimit cfg;
  cfg.per_second = 1;
  cfg.burst = 1;
  RateLimitFilter by64(cfg);
  CHECK(take(by64, 6, "2001:db8:1:2::1") == FilterResult::kContinue);
  // Another address of the same /64, binary or as text (a PROXY header's): the same bucket.
  CHECK(take(by64, 6, "2001:db8:1:2:ffff:ffff:ffff:fffe") == FilterResult::kReply);
  CHECK(take(by64, 0, "2001:db8:1:2::99") == FilterResult::kReply);
  CHECK(take(by64, 6, "2001:db8:1:3::1") == FilterResult::kContinue);  // the next /64
  cfg.ipv6_prefix = 128;
  RateLimitFilter by128(cfg);
  CHECK(take(by128, 6, "2001:db8:1:2::1") == FilterResult::kContinue);
  CHECK(take(by128, 6, "2001:db8:1:2::2") == FilterResult::kContinue);
  CHECK(take(by128, 6, "2001:db8:1:2::2") == FilterResult::kReply);
  cfg.ipv6_prefix = 52;  // not a byte boundary: 2001:db8:1:2000::/52
  RateLimitFilter by52(cfg);
  CHECK(take(by52, 6, "2001:db8:1:2abc::1") == FilterResult::kContinue);
  CHECK(take(by52, 6, "2001:db8:1:2fff::1") == FilterResult::kReply);
  CHECK(take(by52, 6, "2001:db8:1:3000::1") == FilterResult::kContinue);
}

TEST_CASE("route filters: whole-space and single-address ranges", "[filter]") {
  auto chain = access_chain("{allow: [\"0.0.0.0/0\", \"2001:db8::/32\"], deny: [\"192.0.2.7/32\", \"2001:db8::7/128\"]}");
  Fixture fx;
  FilterStates states;
  auto verdict = [&](std::string_view ip) {
    FilterRun run;
    return run.start(*chain, states, fx.request(ip), nullptr);
  };
  CHECK(verdict("255.255.255.255") == FilterResult::kContinue);
  CHECK(verdict("0.0.0.0") == FilterResult::kContinue);
  CHECK(verdict("192.0.2.7") == FilterResult::kReply);
  CHECK(verdict("192.0.2.6") == FilterResult::kContinue);
  CHECK(verdict("192.0.2.8") == FilterResult::kContinue);
  CHECK(verdict("2001:db8:ffff::1") == FilterResult::kContinue);
  CHECK(verdict("2001:db8::7") == FilterResult::kReply);
  CHECK(verdict("2001:db9::1") == FilterResult::kReply);  // not allowed: 0.0.0.0/0 is IPv4 only
}

TEST_CASE("route filters: methods answer 405 with Allow; headers become edits", "[filter]") {
  auto cfg = config::testing::load(
      "listeners: [\"127.0.0.1:0\"]\n"
      "routes:\n"
      "  - service: s\n"
      "    access: {methods: [get, POST]}\n"
      "    headers:\n"
      "      request: {set: {X-Env: prod}, add: {X-Tag: a}, remove: [Cookie]}\n"
      "      response: {set: {Cache-Control: no-store}, remove: [Server]}\n"
      "  - service: s\n"
      "    path: /plain\n"
      "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
  INFO(config::testing::all_errors(cfg));
  REQUIRE(cfg.ok());
  CHECK(build_route_filters(cfg.config->routes[1]) == nullptr);
  auto chain = build_route_filters(cfg.config->routes[0]);
  REQUIRE(chain);
  FilterStates states;
  {
    Fixture fx("DELETE /x HTTP/1.1\r\nHost: a.test\r\n\r\n");
    FilterRun run;
    REQUIRE(run.start(*chain, states, fx.request(), nullptr) == FilterResult::kReply);
    CHECK(run.reply().status == 405);
    CHECK(run.reply().cause == "method-not-allowed");
    REQUIRE(run.reply().headers.size() == 1);
    CHECK(run.reply().headers[0].name == "Allow");
    CHECK(run.reply().headers[0].value == "GET, POST, HEAD");  // GET allows HEAD
  }
  {
    Fixture fx("HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n");
    FilterRun run;
    CHECK(run.start(*chain, states, fx.request(), nullptr) == FilterResult::kContinue);
  }
  {
    FilterChain only({std::make_shared<MethodFilter>(std::vector<std::string>{"POST"})});
    Fixture fx("HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n");
    FilterRun run;
    REQUIRE(run.start(only, states, fx.request(), nullptr) == FilterResult::kReply);
    CHECK(run.reply().headers.at(0).value == "POST");
  }
  Fixture fx("GET /x HTTP/1.1\r\nHost: a.test\r\nCookie: c=1\r\nX-Env: dev\r\nAccept: */*\r\n\r\n");
  FilterRun run;
  REQUIRE(run.start(*chain, states, fx.request(), nullptr) == FilterResult::kContinue);
  const HeaderEdits& e = run.edits();
  REQUIRE_FALSE(e.empty());
  // The rules are the route's, pointed to rather than copied per request.
  REQUIRE(e.fixed != nullptr);
  CHECK(e.add_request.empty());

  http::ForwardInfo info{"192.0.2.1", "http", 80, "id-1", &e};
  std::string up;
  http::build_upstream_request(fx.head, info, up);
  CHECK(up.find("Cookie") == std::string::npos);
  CHECK(up.find("X-Env: dev") == std::string::npos);
  CHECK(up.find("X-Env: prod\r\n") != std::string::npos);
  CHECK(up.find("X-Tag: a\r\n") != std::string::npos);
  CHECK(up.find("Accept: */*\r\n") != std::string::npos);

  std::string raw_resp = "HTTP/1.1 200 OK\r\nServer: x\r\nCache-Control: max-age=9\r\nContent-Length: 0\r\n\r\n";
  http::ResponseHead resp;
  REQUIRE(http::parse_response_head(raw_resp, http::Limits{}, false, resp).ok());
  std::string down;
  http::build_client_response(resp, http::plan_response(resp, 1, false), false, down, &e);
  CHECK(down.find("Server") == std::string::npos);
  CHECK(down.find("max-age") == std::string::npos);
  CHECK(down.find("Cache-Control: no-store\r\n") != std::string::npos);

  run.reset();
  CHECK(run.edits().empty());
}

TEST_CASE("access.methods: GET lets HEAD through, once; other lists are kept as they are", "[filter]") {
  using List = std::vector<std::string>;
  CHECK(config::methods_let_through({"GET", "POST"}) == List{"GET", "POST", "HEAD"});
  CHECK(config::methods_let_through({"HEAD", "GET"}) == List{"HEAD", "GET"});
  CHECK(config::methods_let_through({"POST"}) == List{"POST"});
  CHECK(config::methods_let_through({"HEAD"}) == List{"HEAD"});
  CHECK(config::methods_let_through({}).empty());
}

TEST_CASE("route filters: the route's header rules keep their place among other filters' edits", "[filter]") {
  std::vector<std::string> calls;
  auto adder = [](std::string name) {
    return [name](FilterState*, HeaderEdits& e, FilterReply&, const FilterWaiter&) {
      e.add_request.push_back({name, "1"});
      e.add_response.push_back({name, "1"});
      return FilterResult::kContinue;
    };
  };
  config::HeaderRules rules;
  rules.add.emplace_back("X-Rule", "1");
  FilterChain chain = chain_of({std::make_shared<ScriptedFilter>("before", &calls, adder("X-Before")),
                                std::make_shared<HeaderFilter>(rules, rules),
                                std::make_shared<ScriptedFilter>("after", &calls, adder("X-After"))});
  FilterStates states;
  Fixture fx;
  FilterRun run;
  REQUIRE(run.start(chain, states, fx.request(), nullptr) == FilterResult::kContinue);
  const HeaderEdits& e = run.edits();
  std::string up;
  http::build_upstream_request(fx.head, http::ForwardInfo{"192.0.2.1", "http", 80, "id-1", &e}, up);
  const size_t before = up.find("X-Before: 1"), rule = up.find("X-Rule: 1"), after = up.find("X-After: 1");
  REQUIRE(after != std::string::npos);
  CHECK(before < rule);
  CHECK(rule < after);

  std::string raw_resp = "HTTP/1.1 204 No Content\r\n\r\n";
  http::ResponseHead resp;
  REQUIRE(http::parse_response_head(raw_resp, http::Limits{}, false, resp).ok());
  std::string down;
  http::build_client_response(resp, http::plan_response(resp, 1, false), false, down, &e);
  const size_t rb = down.find("X-Before: 1"), rr = down.find("X-Rule: 1"), ra = down.find("X-After: 1");
  REQUIRE(ra != std::string::npos);
  CHECK(rb < rr);
  CHECK(rr < ra);
}

TEST_CASE("route filters: the routes of one config route share its chain", "[filter]") {
  auto cfg = config::testing::load(
      "listeners: [\"127.0.0.1:0\"]\n"
      "routes:\n"
      "  - {host: [a.test, b.test], service: s, access: {methods: [GET]}}\n"
      "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
  REQUIRE(cfg.ok());
  auto table = RouteTable::from_config(*cfg.config, 1, [](const config::Route& r) { return build_route_filters(r); });
  REQUIRE(table->routes().size() == 2);
  REQUIRE(table->routes()[0].filters);
  CHECK(table->routes()[0].filters == table->routes()[1].filters);
  CHECK(RouteTable::from_config(*cfg.config, 1)->routes()[0].filters == nullptr);
}

TEST_CASE("filters: a waiter from an earlier request of a reused run is cancelled", "[filter]") {
  std::vector<std::string> calls;
  std::vector<FilterWaiter> kept;
  auto wait = [&](FilterState*, HeaderEdits&, FilterReply&, const FilterWaiter& w) {
    kept.push_back(w);
    return FilterResult::kPending;
  };
  FilterChain chain = chain_of({std::make_shared<ScriptedFilter>("auth", &calls, wait)});
  Fixture fx;
  FilterStates states;
  Owner owner;
  auto run = std::make_unique<FilterRun>();
  REQUIRE(run->start(chain, states, fx.request(), &owner) == FilterResult::kPending);
  run->cancel();  // the first request went away; the run object is pooled and reused
  REQUIRE(run->start(chain, states, fx.request(), &owner) == FilterResult::kPending);
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].cancelled());
  CHECK_FALSE(kept[1].cancelled());
  kept[0].done(FilterResult::kReply);  // the old request's late answer
  CHECK(owner.done == 0);
  CHECK(run->pending());
  kept[1].done(FilterResult::kContinue);
  CHECK(owner.done == 1);
  CHECK(run->proceed(fx.request()) == FilterResult::kContinue);

  REQUIRE(run->start(chain, states, fx.request(), &owner) == FilterResult::kPending);
  run.reset();  // the run object itself is gone
  REQUIRE(kept.size() == 3);
  CHECK(kept[2].cancelled());
  kept[2].done(FilterResult::kContinue);
  CHECK(owner.done == 1);
}

TEST_CASE("route filters: a reload with the same basic auth keeps its filter and what it verified", "[filter][auth]") {
  config::Route route;
  route.name = "admin";
  route.service = "s";
  route.access.basic_auth.htpasswd = "/etc/berth/admin.htpasswd";
  route.access.basic_auth.users = {{"alice", "$6$rounds=5000$saltsalt$aaaa"}, {"bob", "$6$rounds=5000$saltsalt$bbbb"}};
  const auto before = build_route_filters(route);
  REQUIRE(before);
  REQUIRE(before->filters().size() == 1);
  // The same settings and users: the same filter object, so each worker's state (its verified
  // credentials) goes on.
  const auto same = build_route_filters(route, before.get());
  REQUIRE(same);
  CHECK(same->filters()[0] == before->filters()[0]);
  // A user's hash changed (a password reset), or the realm: a new filter, nothing remembered.
  for (int change = 0; change < 2; ++change) {
    config::Route edited = route;
    if (change == 0) edited.access.basic_auth.users[1].second = "$6$rounds=5000$saltsalt$cccc";
    else edited.access.basic_auth.realm = "other";
    const auto after = build_route_filters(edited, before.get());
    REQUIRE(after);
    CHECK(after->filters()[0] != before->filters()[0]);
  }
}
