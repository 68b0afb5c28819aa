// Docker discovery under change: rolling replacement under load, drain at the kill event with
// a slow in-flight request, the engine killed while Berth serves, 50 containers at once.
#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine.h"
#include "load.h"

using namespace dk;
using it::Response;

namespace {

}  // namespace

TEST_CASE("docker: rolling replacement of 3 instances under continuous load, every request 200", "[docker][slow]") {
  engine();
  auto berth = start_berth();
  std::vector<std::string> old_names = {"dk-roll-old-0", "dk-roll-old-1", "dk-roll-old-2"};
  std::vector<std::string> new_names = {"dk-roll-new-0", "dk-roll-new-1", "dk-roll-new-2"};
  Cleanup cleanup{old_names};
  cleanup.names.insert(cleanup.names.end(), new_names.begin(), new_names.end());
  auto options = [](uint16_t port) {
    WebOptions o;
    o.labels = {{"berth.enable", "true"}, {"berth.host", "roll.dk.test"}, {"berth.service", "roll"},
                {"berth.port", std::to_string(port)}};
    o.healthcheck = true;
    o.drain_seconds = 1;  // keeps serving for 1 s after SIGTERM, like a well-behaved server
    return o;
  };
  std::vector<uint16_t> old_ports, new_ports;
  for (int i = 0; i < 3; ++i) {
    old_ports.push_back(fresh_port());
    REQUIRE_FALSE(run_web(old_names[i], old_ports[i], "old" + std::to_string(i), options(old_ports[i])).empty());
  }
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "roll.dk.test").size() == 3; }, 20s));

  Load load(berth->port(), "roll.dk.test");
  for (int i = 0; i < 3; ++i) {
    new_ports.push_back(fresh_port());
    REQUIRE_FALSE(run_web(new_names[i], new_ports[i], "new" + std::to_string(i), options(new_ports[i])).empty());
    // Wait until the new instance is healthy and routed, then stop an old one.
    REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
      auto eps = endpoints_for(j, "roll.dk.test");
      return std::find(eps.begin(), eps.end(), addr(new_ports[i])) != eps.end(); }, 20s));
    REQUIRE(docker({"stop", "-t", "10", old_names[i]}).ok());
  }
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "roll.dk.test").size() == 3; }, 10s));
  it::wait_until([] { return false; }, 500ms);
  load.finish();

  auto statuses = load.statuses();
  long total = 0;
  for (auto& [status, n] : statuses) total += n;
  INFO("statuses: " << [&] { std::string s; for (auto& [k, v] : statuses) s += std::to_string(k) + "=" + std::to_string(v) + " "; return s; }());
  INFO(load.failures());
  CHECK(statuses.size() == 1);
  CHECK(statuses[200] == total);
  CHECK(total > 100);
  auto bodies = load.bodies();
  for (int i = 0; i < 3; ++i) {
    CHECK(bodies["new" + std::to_string(i) + "\n"] > 0);
    CHECK(bodies["old" + std::to_string(i) + "\n"] > 0);
  }
  WARN("rolling replacement: " << total << " requests, all 200");
  CHECK(berth->running());
}

TEST_CASE("docker: docker stop drains at the kill event, the slow in-flight request completes", "[docker][slow]") {
  engine();
  auto berth = start_berth("", "10s");
  Cleanup cleanup{{"dk-drain-a", "dk-drain-b"}};
  const uint16_t pa = fresh_port(), pb = fresh_port();
  auto options = [](uint16_t port) {
    WebOptions o;
    o.labels = {{"berth.enable", "true"}, {"berth.host", "drain.dk.test"}, {"berth.service", "drain"},
                {"berth.port", std::to_string(port)}};
    o.drain_seconds = 4;  // after SIGTERM: 4 more seconds of serving, then exit
    return o;
  };
  REQUIRE_FALSE(run_web("dk-drain-a", pa, "A", options(pa)).empty());
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "drain.dk.test").size() == 1; }, 10s));

  // A slow request (3 s) in flight on A.
  Response slow;
  std::thread slow_thread([&] { slow = get(berth->port(), "drain.dk.test", "/cgi-bin/slow?3"); });
  it::wait_until([] { return false; }, 300ms);
  REQUIRE_FALSE(run_web("dk-drain-b", pb, "B", options(pb)).empty());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "drain.dk.test").size() == 2; }, 10s));

  // docker stop A: the kill(15) event takes A out of selection at once, while A still serves.
  auto t0 = it::Clock::now();
  std::thread stopper([] { docker({"stop", "-t", "10", "dk-drain-a"}); });
  bool left = wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "drain.dk.test") == std::vector<std::string>{addr(pb)}; }, 5s);
  auto drained_ms = std::chrono::duration_cast<std::chrono::milliseconds>(it::Clock::now() - t0).count();
  CHECK(left);
  CHECK(drained_ms < 1500);
  // A is still running and answering directly...
  CHECK(docker({"inspect", "-f", "{{.State.Running}}", "dk-drain-a"}).out == "true\n");
  CHECK(it::http_get(pa, "/", "x").body == "A\n");
  // ... but no new request through Berth reaches it.
  int to_b = 0, other = 0;
  for (int i = 0; i < 30; ++i) {
    Response r = get(berth->port(), "drain.dk.test");
    (r.status == 200 && r.body == "B\n" ? to_b : other)++;
  }
  CHECK(to_b == 30);
  CHECK(other == 0);
  // The in-flight request completed normally on A.
  slow_thread.join();
  CHECK(slow.status == 200);
  CHECK(slow.body == "slow A\n");
  stopper.join();
  WARN("instance left selection " << drained_ms << " ms after docker stop was issued");
  CHECK(berth->running());
}

TEST_CASE("docker: the engine killed while Berth serves, it catches up when the engine is back", "[docker][slow]") {
  engine();
  auto berth = start_berth("", "1s");
  Cleanup cleanup{{"dk-crash-keep", "dk-crash-new"}};
  const uint16_t pk = fresh_port(), pn = fresh_port();
  WebOptions keep;
  keep.labels = {{"berth.enable", "true"}, {"berth.host", "keep.dk.test"}, {"berth.port", std::to_string(pk)}};
  keep.restart = "always";
  REQUIRE_FALSE(run_web("dk-crash-keep", pk, "keep", keep).empty());
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "keep.dk.test").size() == 1; }, 10s));

  REQUIRE(kill_engine());
  // Discovery is stale, readiness says so, and the last good routes keep serving.
  REQUIRE(it::wait_until([&] { return berth->log().find("event=docker_disconnected") != std::string::npos; }, 5s));
  for (int i = 0; i < 10; ++i) {
    Response r = get(berth->port(), "keep.dk.test");
    CHECK(r.status == 200);
    CHECK(r.body == "keep\n");
    it::wait_until([] { return false; }, 100ms);
  }
  Response ready = it::http_get(berth->admin_port(), "/readyz", "127.0.0.1");
  CHECK(ready.status == 503);
  CHECK(ready.body.find("docker") != std::string::npos);
  auto t = routes(berth->admin_port());
  CHECK(t["discovery"][0]["in_sync"] == false);
  CHECK(t["discovery"][0]["stale_reason"].get<std::string>().find("serving the last good routes") != std::string::npos);
  CHECK(endpoints_for(t, "keep.dk.test").size() == 1);

  // Back: containers started while Berth was not in sync appear.
  std::string error;
  REQUIRE(restart_engine(&error));
  WebOptions fresh;
  fresh.labels = {{"berth.enable", "true"}, {"berth.host", "new.dk.test"}, {"berth.port", std::to_string(pn)}};
  REQUIRE_FALSE(run_web("dk-crash-new", pn, "new", fresh).empty());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return j["discovery"][0]["in_sync"] == true && endpoints_for(j, "new.dk.test").size() == 1 &&
           endpoints_for(j, "keep.dk.test").size() == 1; }, 60s, &t));
  CHECK(get(berth->port(), "new.dk.test").body == "new\n");
  REQUIRE(it::wait_until([&] { return get(berth->port(), "keep.dk.test").status == 200; }, 10s));
  CHECK(it::http_get(berth->admin_port(), "/readyz", "127.0.0.1").status == 200);
  // The log is written by its own thread: wait for the line rather than read the file once.
  CHECK(it::wait_until([&] { return berth->log().find("event=docker_resynced") != std::string::npos; }, 5s));
  CHECK(berth->running());
}

TEST_CASE("docker: after Berth stood still, it lists the containers again", "[docker][slow]") {
  // The engine drops events a subscriber does not read in time, silently. After the process
  // stood still (SIGSTOP here; a starved or frozen machine elsewhere) its one-second timer comes
  // late, and Berth lists every container again rather than trust the stream.
  engine();
  auto berth = start_berth("", "1s");
  Cleanup cleanup{{"dk-stall-a"}};
  const uint16_t pa = fresh_port();
  WebOptions o;
  o.labels = {{"berth.enable", "true"}, {"berth.host", "stall.dk.test"}, {"berth.port", std::to_string(pa)}};
  REQUIRE_FALSE(run_web("dk-stall-a", pa, "stall", o).empty());
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "stall.dk.test").size() == 1; }, 10s));
  REQUIRE(it::wait_until([&] { return berth->log().find("event=docker_synced") != std::string::npos; }, 5s));
  CHECK(berth->log().find("event=docker_relist") == std::string::npos);

  REQUIRE(berth->process().signal(SIGSTOP));
  REQUIRE(docker({"rm", "-f", "dk-stall-a"}).ok());
  it::wait_until([] { return false; }, 7s);  // the timer's next tick comes 6 s late at least
  REQUIRE(berth->process().signal(SIGCONT));
  CHECK(it::wait_until([&] { return berth->log().find("event=docker_relist reason=stalled") != std::string::npos; }, 10s));
  CHECK(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return j["discovery"][0]["in_sync"] == true && endpoints_for(j, "stall.dk.test").empty(); }, 10s));
  CHECK(it::http_get(berth->admin_port(), "/readyz", "127.0.0.1").status == 200);
  CHECK(berth->running());
}

TEST_CASE("docker: 50 containers started at once give the exact table", "[docker][slow]") {
  engine();
  auto berth = start_berth("", "1s");
  const int kCount = 50;
  std::vector<std::string> names;
  std::vector<uint16_t> ports;
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < kCount; ++i) {
    names.push_back("dk-bulk-" + std::to_string(i));
    ports.push_back(fresh_port());
    WebOptions o;
    o.labels = {{"berth.enable", "true"}, {"berth.host", "n" + std::to_string(i) + ".bulk.dk.test"},
                {"berth.port", std::to_string(ports[i])}};
    commands.push_back(web_run_args(names[i], ports[i], "bulk" + std::to_string(i), o));
  }
  Cleanup cleanup{names};
  auto results = docker_parallel(commands, 10);
  for (int i = 0; i < kCount; ++i) {
    INFO(names[i] << ": " << results[i].text());
    REQUIRE(results[i].ok());
  }
  auto exact = [&](const nlohmann::json& j) {
    int bulk = 0;
    for (const auto& r : j["routes"])
      if (r["host"].get<std::string>().find(".bulk.dk.test") != std::string::npos) ++bulk;
    if (bulk != kCount) return false;
    for (int i = 0; i < kCount; ++i) {
      if (endpoints_for(j, "n" + std::to_string(i) + ".bulk.dk.test") != std::vector<std::string>{addr(ports[i])})
        return false;
    }
    return true;
  };
  nlohmann::json t;
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), exact, 30s, &t));
  for (int i = 0; i < kCount; i += 7) {
    REQUIRE(wait_listening(ports[i]));  // routed at `start`, which comes before httpd listens
    Response r = get(berth->port(), "n" + std::to_string(i) + ".bulk.dk.test");
    CHECK(r.body == "bulk" + std::to_string(i) + "\n");
  }
  // All removed at once: the table is exactly empty of them after the grace.
  remove_containers(names);
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    for (const auto& r : j["routes"])
      if (r["host"].get<std::string>().find(".bulk.dk.test") != std::string::npos) return false;
    return true; }, 20s));
  CHECK(berth->running());
}
