// Load-balancing policies through the real binary against real origins: weighted round robin
// shares, least request away from a slow instance, consistent hashing stable across a removal,
// sticky cookies that move once when their instance stops, slow start for a new instance.
#include <signal.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "env.h"

using namespace it;

namespace {

// "origin=NAME path=..." -> NAME
std::string origin_of(const Response& r) {
  if (r.body.rfind("origin=", 0) != 0) return "?";
  return r.body.substr(7, r.body.find(' ') - 7);
}

std::string service_yaml(const std::string& lb, const std::vector<std::pair<Origin*, int>>& endpoints) {
  std::string y = "routes:\n  - {name: r, path: /, service: s}\nservices:\n  s:\n    endpoints:\n";
  for (auto& [o, w] : endpoints) y += "      - {address: \"" + o->address() + "\", weight: " + std::to_string(w) + "}\n";
  if (!lb.empty()) y += "    lb: " + lb + "\n";
  return y;
}

std::optional<std::string> cookie_value(const Response& r, const std::string& name) {
  auto sc = r.header("set-cookie");
  if (!sc || sc->rfind(name + "=", 0) != 0) return std::nullopt;
  return sc->substr(name.size() + 1, sc->find(';') - name.size() - 1);
}

}  // namespace

TEST_CASE("lb: weights 1:2:3 over 6,000 requests within 3 points", "[lb]") {
  Origin a("A"), b("B"), c("C");
  REQUIRE((a.ok() && b.ok() && c.ok()));
  Berth berth(config_head(2) + service_yaml("", {{&a, 1}, {&b, 2}, {&c, 3}}));
  INFO(berth.error());
  REQUIRE(berth.ok());
  std::map<std::string, int> counts;
  // Several keep-alive connections, so both workers take part.
  for (int conn = 0; conn < 6; ++conn) {
    Client client(berth.port());
    REQUIRE(client.connected());
    for (int i = 0; i < 1000; ++i) {
      Response r = client.get("/w", "lb.test");
      REQUIRE(r.status == 200);
      ++counts[origin_of(r)];
    }
  }
  const double share_a = counts["A"] * 100.0 / 6000, share_b = counts["B"] * 100.0 / 6000,
               share_c = counts["C"] * 100.0 / 6000;
  WARN("weights 1:2:3 -> shares A " << share_a << "% B " << share_b << "% C " << share_c << "%");
  CHECK(std::abs(share_a - 100.0 / 6) <= 3.0);
  CHECK(std::abs(share_b - 200.0 / 6) <= 3.0);
  CHECK(std::abs(share_c - 300.0 / 6) <= 3.0);
}

TEST_CASE("lb: least request sends clearly less to a slow instance", "[lb]") {
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  Berth berth(config_head(1) + service_yaml("{policy: least_request}", {{&a, 1}, {&b, 1}}));
  INFO(berth.error());
  REQUIRE(berth.ok());
  std::atomic<int> to_a{0}, to_b{0}, bad{0};
  std::vector<std::thread> threads;
  const auto until = Clock::now() + 2s;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      Client client(berth.port());
      while (Clock::now() < until) {
        Response r = client.get("/p2c?slow=A:40", "lb.test");
        if (r.status != 200) {
          ++bad;
          return;
        }
        (origin_of(r) == "A" ? to_a : to_b)++;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(bad == 0);
  const double share_a = to_a * 100.0 / std::max(1, to_a + to_b);
  WARN("least request, A slowed by 40 ms: A " << to_a << " B " << to_b << " (A " << share_a << "%)");
  CHECK(to_b > 2 * to_a);  // round robin would give 1:1
}

TEST_CASE("lb: consistent hashing keeps keys in place, and most of them when an instance goes", "[lb]") {
  Origin o1("O1"), o2("O2"), o3("O3"), o4("O4"), o5("O5");
  std::vector<Origin*> all = {&o1, &o2, &o3, &o4, &o5};
  for (auto* o : all) REQUIRE(o->ok());
  std::vector<std::pair<Origin*, int>> eps;
  for (auto* o : all) eps.push_back({o, 1});
  const std::string head = config_head(2);
  Berth berth(head + service_yaml("{policy: hash, hash_on: \"header:X-User\"}", eps));
  INFO(berth.error());
  REQUIRE(berth.ok());
  auto map_keys = [&](int n) {
    std::vector<std::string> owner;
    Client client(berth.port());
    for (int k = 0; k < n; ++k) owner.push_back(origin_of(client.get("/h", "x", {"X-User: user-" + std::to_string(k)})));
    return owner;
  };
  auto first = map_keys(1000);
  CHECK(map_keys(1000) == first);
  std::map<std::string, int> spread;
  for (auto& o : first) ++spread[o];
  CHECK(spread.size() == 5);

  // Remove O3 by a reload.
  eps.erase(eps.begin() + 2);
  REQUIRE(berth.rewrite_config(head + service_yaml("{policy: hash, hash_on: \"header:X-User\"}", eps)));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(wait_until([&] { return http_get(berth.admin_port(), "/api/routes", "localhost").body.find(o3.address()) == std::string::npos; }, 5s));
  std::this_thread::sleep_for(300ms);
  auto second = map_keys(1000);
  int kept = 0, moved_elsewhere = 0;
  for (size_t k = 0; k < first.size(); ++k) {
    if (first[k] == second[k]) ++kept;
    else if (first[k] != "O3") ++moved_elsewhere;
    CHECK(second[k] != "O3");
  }
  WARN("hash: removing 1 of 5 instances kept " << kept / 10.0 << "% of 1,000 keys");
  // Exactly O3's keys moved. How many O3 had hangs on where its 160 points per weight fell,
  // which its random port decides: about 20 % give or take 2 (one run gave it 25.9 %).
  CHECK(moved_elsewhere == 0);
  CHECK(kept == 1000 - spread["O3"]);
  CHECK(kept >= 650);
}

TEST_CASE("lb: sticky cookie: same instance every time, moved once when it stops, then sticky again", "[lb]") {
  Origin a("A"), b("B"), c("C");
  REQUIRE((a.ok() && b.ok() && c.ok()));
  Berth berth(config_head(2) + service_yaml("{policy: sticky, cookie: pin}", {{&a, 1}, {&b, 1}, {&c, 1}}));
  INFO(berth.error());
  REQUIRE(berth.ok());
  Response r = http_get(berth.port(), "/s", "x");
  REQUIRE(r.status == 200);
  auto pin = cookie_value(r, "pin");
  REQUIRE(pin);
  CHECK(pin->size() == 16);
  CHECK(r.header("set-cookie")->find("127.0.0.1") == std::string::npos);  // opaque
  const std::string home = origin_of(r);
  for (int i = 0; i < 30; ++i) {
    Response again = http_get(berth.port(), "/s", "x", {"Cookie: a=1; pin=" + *pin});
    REQUIRE(again.status == 200);
    CHECK(origin_of(again) == home);
    CHECK_FALSE(again.header("set-cookie"));
  }
  // Stop the pinned instance (no reload, no health check): the next request moves, re-pinned.
  Origin* stopped = home == "A" ? &a : home == "B" ? &b : &c;
  stopped->process().terminate();
  Response moved = http_get(berth.port(), "/s", "x", {"Cookie: pin=" + *pin});
  INFO(moved.raw_head << moved.body);
  REQUIRE(moved.status == 200);
  const std::string next_home = origin_of(moved);
  CHECK(next_home != home);
  auto repin = cookie_value(moved, "pin");
  REQUIRE(repin);
  CHECK(*repin != *pin);
  for (int i = 0; i < 30; ++i) {
    Response again = http_get(berth.port(), "/s", "x", {"Cookie: pin=" + *repin});
    REQUIRE(again.status == 200);
    CHECK(origin_of(again) == next_home);
    CHECK_FALSE(again.header("set-cookie"));
  }
}

TEST_CASE("lb: two sticky services on one host keep their own default cookies", "[lb]") {
  // "/" and "/api" of one host, each sticky with no lb.cookie: a browser sends both cookies to
  // both paths. One shared default name made each response re-pin the other service's cookie.
  Origin a("A"), b("B"), c("C"), d("D");
  REQUIRE((a.ok() && b.ok() && c.ok() && d.ok()));
  Berth berth(config_head(2) +
              "routes:\n  - {host: \"st.test\", service: web}\n  - {host: \"st.test\", path: /api, service: api}\n"
              "services:\n"
              "  web: {lb: {policy: sticky}, endpoints: [\"" + a.address() + "\", \"" + b.address() + "\"]}\n"
              "  api: {lb: {policy: sticky}, endpoints: [\"" + c.address() + "\", \"" + d.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  Response w = http_get(berth.port(), "/", "st.test");
  Response p = http_get(berth.port(), "/api/x", "st.test");
  REQUIRE((w.status == 200 && p.status == 200));
  INFO(w.raw_head << p.raw_head);
  auto name_of = [](const Response& r) {
    const std::string set = r.header("set-cookie").value_or("");
    return set.substr(0, set.find('='));
  };
  const std::string web_name = name_of(w), api_name = name_of(p);
  CHECK(web_name.starts_with("berth_sticky_"));
  CHECK(api_name.starts_with("berth_sticky_"));
  CHECK(web_name != api_name);
  auto web_pin = cookie_value(w, web_name), api_pin = cookie_value(p, api_name);
  REQUIRE(web_pin);
  REQUIRE(api_pin);
  const std::string cookies = "Cookie: " + web_name + "=" + *web_pin + "; " + api_name + "=" + *api_pin;
  const std::string web_home = origin_of(w), api_home = origin_of(p);
  for (int i = 0; i < 20; ++i) {
    Response again = http_get(berth.port(), i % 2 ? "/api/x" : "/", "st.test", {cookies});
    REQUIRE(again.status == 200);
    CHECK(origin_of(again) == (i % 2 ? api_home : web_home));
    CHECK_FALSE(again.header("set-cookie"));
  }
}

TEST_CASE("lb: slow start: an instance added by a reload gets a small share first, then its own", "[lb][slow_start]") {
  Origin a("A"), b("B");
  REQUIRE((a.ok() && b.ok()));
  const std::string head = config_head(2);
  Berth berth(head + service_yaml("{policy: round_robin, slow_start: 2s}", {{&a, 1}}));
  INFO(berth.error());
  REQUIRE(berth.ok());
  // A is new too when Berth starts: let its own window pass first.
  std::this_thread::sleep_for(2100ms);
  REQUIRE(berth.rewrite_config(head + service_yaml("{policy: round_robin, slow_start: 2s}", {{&a, 1}, {&b, 1}})));
  REQUIRE(berth.process().signal(SIGHUP));
  REQUIRE(wait_until([&] { return http_get(berth.admin_port(), "/api/routes", "localhost").body.find(b.address()) != std::string::npos; }, 5s));
  const auto added = Clock::now();

  // Share of B over a stretch of requests on a few keep-alive connections (both workers).
  auto share_of_b = [&](std::chrono::milliseconds stretch, int* total) {
    std::map<std::string, int> counts;
    std::vector<std::unique_ptr<Client>> clients;
    for (int c = 0; c < 4; ++c) clients.push_back(std::make_unique<Client>(berth.port()));
    const auto until = Clock::now() + stretch;
    for (int i = 0; Clock::now() < until; ++i) {
      Response r = clients[static_cast<size_t>(i) % clients.size()]->get("/ss", "lb.test");
      REQUIRE(r.status == 200);
      ++counts[origin_of(r)];
    }
    *total = counts["A"] + counts["B"];
    return counts["B"] * 100.0 / std::max(1, *total);
  };
  int early_n = 0, late_n = 0;
  const double early = share_of_b(300ms, &early_n);
  const auto early_end = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - added).count();
  std::this_thread::sleep_until(added + 2200ms);
  const double late = share_of_b(500ms, &late_n);
  WARN("slow start 2s, B added by a reload: " << early << "% of " << early_n << " requests in its first "
       << early_end << " ms, " << late << "% of " << late_n << " after the window");
  REQUIRE(early_n >= 20);
  REQUIRE(late_n >= 20);
  // Ideal: 10% of its weight at first, 15% at 300 ms -> about 1 request in 9 to 1 in 8; round
  // robin without slow start would give 50%.
  CHECK(early < 30.0);
  CHECK(std::abs(late - 50.0) <= 10.0);
}
