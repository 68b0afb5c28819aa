// Docker discovery against a fake engine (bench/fake_docker_engine.h) where the test decides
// when an inspect is answered: event orders a real engine produces only by chance.
#include <catch2/catch.hpp>

#include <csignal>
#include <functional>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

namespace {

// A fake engine with no container yet, an origin, and Berth with Docker discovery on the fake
// engine's socket, in sync with it. Torn down in reverse: Berth first, the engine last.
struct Setup {
  TempDir dir;
  std::unique_ptr<fake_docker::FakeEngine> engine_owner;
  Origin origin{"race"};
  std::unique_ptr<Berth> berth_owner;

  // `running`: containers the engine has from the start (churn-<i>, routed at c<i>.churn.test);
  // `more`: further containers it has from the start, made with the origin's port.
  explicit Setup(const std::string& docker_extra = "", int running = 0,
                 const std::function<std::vector<fake_docker::Container>(int)>& more = {}) {
    engine_owner = std::make_unique<fake_docker::FakeEngine>(
        dir.file("docker.sock"), running, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
        fake_docker::ojson::parse(fake_docker::kListTemplate));
    if (more)
      for (auto& c : more(origin.port())) engine_owner->add(std::move(c));
    engine_owner->start();
    REQUIRE(origin.ok());
    berth_owner = std::make_unique<Berth>(config_head(2) + "docker: {enabled: true, endpoint: \"unix://" +
                                          dir.file("docker.sock") +
                                          "\", empty_route_grace: 1s, reconnect_max: 1s" + docker_extra + "}\n");
    INFO(berth_owner->error());
    REQUIRE(berth_owner->ok());
    REQUIRE(berth_owner->log_shows("event=docker_synced", 10s));
    // Logged in the control loop's turn that publishes the sync's routes (the admin API answers
    // on that loop, after it): then every worker serves them.
    REQUIRE(workers_caught_up(berth_owner->admin_port()));
  }
  fake_docker::FakeEngine& engine() { return *engine_owner; }
  Berth& berth() { return *berth_owner; }
};

// `create`, then `start` while Berth's inspect of the create is held unanswered.
void start_during_create_inspect(fake_docker::FakeEngine& engine, size_t i) {
  engine.hold_inspects(true);
  engine.emit(i, "create");
  REQUIRE(engine.wait_asked(i, 1, 5000));  // asked at create; the answer (not running) is held
  engine.emit(i, "start");                 // the container runs from here on
}

}  // namespace

TEST_CASE("docker events: a start that arrives while the create's inspect is in flight is routed on that answer",
          "[docker_fake]") {
  Setup setup;
  auto& engine = setup.engine();
  Berth& berth = setup.berth();
  const Origin& origin = setup.origin;

  const size_t i = engine.add(fake_docker::routed_container(77, "race-1", "race.test", origin.port()));
  start_during_create_inspect(engine, i);
  INFO(berth.log());
  // Nothing to route before the facts are known.
  CHECK(http_get(berth.port(), "/", "race.test").status == 404);

  engine.allow_inspects(1);  // the answer from before the start
  // Routed on that answer: the start is applied to it, while the inspect that confirms it is
  // still unanswered.
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "race.test").status == 200; }, 3s));
  CHECK(engine.wait_asked(i, 2, 3000));
  CHECK(engine.inspects_of(i) == 1);
  // The generation serving it is attributed to the start event's receipt.
  auto stats = nlohmann::json::parse(http_get(berth.admin_port(), "/api/stats", "127.0.0.1").body, nullptr, false);
  REQUIRE(stats.is_object());
  CHECK(stats.value("generation_event_received_ns", int64_t{0}) > 0);

  // The confirmation (running) changes nothing; a kill with the stop signal drains it.
  const uint64_t generation = stats.value("generation", uint64_t{0});
  engine.hold_inspects(false);
  REQUIRE(wait_until([&] { return engine.inspects_of(i) == 2; }, 3s));
  std::this_thread::sleep_for(100ms);
  auto after = nlohmann::json::parse(http_get(berth.admin_port(), "/api/stats", "127.0.0.1").body, nullptr, false);
  CHECK(after.value("generation", uint64_t{0}) == generation);
  CHECK(http_get(berth.port(), "/", "race.test").status == 200);
  engine.emit(i, "kill", {{"signal", "15"}});
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "race.test").status == 503; }, 3s));
  CHECK(berth.running());
}

TEST_CASE("docker events: off the host network, a start during the create's inspect waits for the address",
          "[docker_fake]") {
  Setup setup(", network: appnet");
  auto& engine = setup.engine();
  Berth& berth = setup.berth();
  const Origin& origin = setup.origin;

  fake_docker::Container c = fake_docker::routed_container(78, "race-net-1", "net.test", origin.port());
  c.network = "appnet";
  c.ip = "127.0.0.1";  // the engine's address for it on appnet (loopback: this is a test)
  const size_t i = engine.add(c);
  start_during_create_inspect(engine, i);
  engine.allow_inspects(1);  // from before the start: on appnet, no address yet
  INFO(berth.log());
  // Berth asks again for the address instead of routing without one (or forgetting the start).
  REQUIRE(engine.wait_asked(i, 2, 3000));
  CHECK(http_get(berth.port(), "/", "net.test").status == 404);
  engine.allow_inspects(1);  // running, with its address
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "net.test").status == 200; }, 3s));
  auto stats = nlohmann::json::parse(http_get(berth.admin_port(), "/api/stats", "127.0.0.1").body, nullptr, false);
  REQUIRE(stats.is_object());
  CHECK(stats.value("generation_event_received_ns", int64_t{0}) > 0);
  engine.hold_inspects(false);
  CHECK(berth.running());
}

namespace {
nlohmann::json stats_of(Berth& berth) {
  return nlohmann::json::parse(http_get(berth.admin_port(), "/api/stats", "127.0.0.1").body, nullptr, false);
}
}  // namespace

TEST_CASE("docker events: stop and start of one container among many swap its service, the route index stays",
          "[docker_fake]") {
  Setup setup("", 200);
  auto& engine = setup.engine();
  Berth& berth = setup.berth();
  const Origin& origin = setup.origin;

  const size_t i = engine.add(fake_docker::routed_container(90000, "app-1", "app.test", origin.port()));
  engine.emit(i, "create");
  REQUIRE(engine.wait_asked(i, 1, 5000));
  engine.emit(i, "start");
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "app.test").status == 200; }, 3s));
  // Let the confirming inspect land.
  REQUIRE(wait_until([&] { return engine.inspects_of(i) >= 2; }, 3s));
  std::this_thread::sleep_for(100ms);
  auto before = stats_of(berth);
  REQUIRE(before.is_object());
  const uint64_t builds = before.value("route_index_builds", uint64_t{0});
  const uint64_t generation = before.value("generation", uint64_t{0});
  CHECK(builds > 0);

  // Stopped: 503 for the grace (1 s), then 404 and gone from /api/routes.
  engine.emit_stop(i);
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "app.test").status == 503; }, 3s));
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "app.test").status == 404; }, 3s));
  auto routes = nlohmann::json::parse(http_get(berth.admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  REQUIRE(routes.is_object());
  for (const auto& r : routes["routes"]) CHECK(r.value("host", "") != "app.test");
  CHECK(routes["routes"].size() == 200);
  // Started again: served at once.
  engine.emit(i, "start");
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "app.test").status == 200; }, 3s));
  // Stopped and started within the grace.
  engine.emit_stop(i);
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "app.test").status == 503; }, 3s));
  engine.emit(i, "start");
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "app.test").status == 200; }, 3s));

  // Every one of those publications swapped the service only: no route index was built.
  auto after = stats_of(berth);
  CHECK(after.value("generation", uint64_t{0}) >= generation + 4);
  CHECK(after.value("route_index_builds", uint64_t{0}) == builds);
  CHECK(berth.running());
}

TEST_CASE("docker events: an unpause without a health event is routed when the engine says healthy",
          "[docker_fake]") {
  // An engine that took a container over after its restart (live-restore) sends no
  // health_status after that container's first unpause, and says `healthy` throughout.
  Setup setup("", 0, [](int port) {
    fake_docker::Container c = fake_docker::running_routed(92000, "hc-1", "hc.test", port);
    c.health = "healthy";
    return std::vector<fake_docker::Container>{c};
  });
  auto& engine = setup.engine();
  Berth& berth = setup.berth();
  INFO(tail(berth.log()));
  REQUIRE(http_get(berth.port(), "/", "hc.test").status == 200);
  engine.emit(0, "pause");
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "hc.test").status != 200; }, 3s));
  engine.emit(0, "unpause");
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "hc.test").status == 200; }, 5s));
  CHECK(berth.running());
}

TEST_CASE("docker events: a container still running stop_signal_timeout after its stop signal is routed again",
          "[docker_fake]") {
  // `docker kill -s TERM` to a process that ignores it: drained at the kill, as for `docker
  // stop`, but no die follows.
  Setup setup(", stop_signal_timeout: 2s", 0, [](int port) {
    return std::vector<fake_docker::Container>{fake_docker::running_routed(92100, "stubborn-1", "stubborn.test", port)};
  });
  auto& engine = setup.engine();
  Berth& berth = setup.berth();
  INFO(tail(berth.log()));
  REQUIRE(http_get(berth.port(), "/", "stubborn.test").status == 200);
  engine.emit(0, "kill", {{"signal", "15"}});
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "stubborn.test").status != 200; }, 3s));
  CHECK(berth.log_shows("event=docker_instance_draining"));
  std::this_thread::sleep_for(1s);
  CHECK(http_get(berth.port(), "/", "stubborn.test").status != 200);  // within the timeout: out
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "stubborn.test").status == 200; }, 5s));
  CHECK(berth.log_shows("event=docker_instance_drain_ended"));
  CHECK(berth.running());
}

TEST_CASE("docker sync: a container whose inspect fails is left out, the others are routed", "[docker_fake]") {
  // The engine answers one container's inspect with HTTP 500: that is no lost engine.
  Setup setup("", 0, [](int port) {
    fake_docker::Container bad = fake_docker::running_routed(91001, "bad-1", "bad.test", port);
    bad.inspect_status = 500;
    return std::vector<fake_docker::Container>{fake_docker::running_routed(91000, "good-1", "good.test", port), bad};
  });
  Berth& berth = setup.berth();
  INFO(berth.log());
  CHECK(http_get(berth.port(), "/", "good.test").status == 200);
  CHECK(http_get(berth.port(), "/", "bad.test").status == 404);
  auto routes = nlohmann::json::parse(http_get(berth.admin_port(), "/api/routes", "127.0.0.1").body, nullptr, false);
  REQUIRE(routes.is_object());
  CHECK(routes["discovery"][0]["in_sync"] == true);
  std::vector<std::string> hosts;
  for (const auto& r : routes["routes"]) hosts.push_back(r.value("host", ""));
  CHECK(hosts == std::vector<std::string>{"good.test"});
  CHECK(berth.log().find("event=docker_disconnected") == std::string::npos);
  CHECK(berth.log_shows(fake_docker::hex_id(91001).substr(0, 12)));  // named in the warning
  CHECK(berth.running());
}

TEST_CASE("docker relist: the sync ends with the list's answer even when an older inspect answers first",
          "[docker_fake]") {
  // A relist (here after an event too large to read; also after Berth stood still, and every
  // 5 min) lists the containers again to learn what events it missed. An inspect asked before it
  // (an update event's) may answer while the list is still on its way: the sync must not end on
  // that answer, or what the list no longer has (a container removed unseen) stays routed.
  Setup setup("", 0, [](int port) {
    return std::vector<fake_docker::Container>{fake_docker::running_routed(92001, "keep-1", "keep.test", port),
                                               fake_docker::running_routed(92002, "gone-1", "gone.test", port)};
  });
  auto& engine = setup.engine();
  Berth& berth = setup.berth();
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "gone.test").status == 200; }, 3s));

  engine.hold_inspects(true);
  engine.hold_lists(true);
  const uint64_t asked = engine.inspects_of(0);
  engine.emit(0, "update");  // Berth inspects keep-1; the answer is held
  REQUIRE(engine.wait_asked(0, asked + 1, 5000));
  engine.remove_unseen(1);   // gone-1 is removed, and its events are lost
  const uint64_t lists = engine.request_counts()["list"];
  engine.emit(0, "update", {{"padding", std::string(17u << 20, 'x')}});  // skipped: Berth lists again
  REQUIRE(wait_until([&] { return engine.request_counts()["list"] > lists; }, 5s));
  engine.allow_inspects(1);  // the update's answer arrives before the list's
  REQUIRE(engine.wait_inspects(0, asked + 1, 5000));
  std::this_thread::sleep_for(200ms);
  engine.hold_inspects(false);
  engine.hold_lists(false);

  CHECK(wait_until([&] { return http_get(berth.port(), "/", "gone.test").status != 200; }, 3s));
  CHECK(wait_until([&] { return http_get(berth.port(), "/", "gone.test").status == 404; }, 3s));
  CHECK(http_get(berth.port(), "/", "keep.test").status == 200);
  CHECK(berth.log_shows("event=docker_event_skipped", 3s));
}

TEST_CASE("docker relist: a stall while a relist waits for its inspects lists once more when it ends",
          "[docker_fake]") {
  // The relist's list has answered and its inspects are under way when the process stands still
  // (5 s and more); a container removed meanwhile, its events lost, is not in that list's past.
  Setup setup("", 0, [](int port) {
    return std::vector<fake_docker::Container>{fake_docker::running_routed(93001, "keep-2", "keep2.test", port),
                                               fake_docker::running_routed(93002, "gone-2", "gone2.test", port)};
  });
  auto& engine = setup.engine();
  Berth& berth = setup.berth();
  INFO(berth.log());
  REQUIRE(wait_until([&] { return http_get(berth.port(), "/", "gone2.test").status == 200; }, 3s));

  engine.hold_inspects(true);
  const uint64_t asked_keep = engine.inspects_of(0), asked_gone = engine.inspects_of(1);
  engine.emit(0, "update", {{"padding", std::string(17u << 20, 'x')}});  // skipped: Berth lists again
  // The list answered; its inspects are asked, their answers (both running) held.
  REQUIRE(engine.wait_asked(0, asked_keep + 1, 5000));
  REQUIRE(engine.wait_asked(1, asked_gone + 1, 5000));
  REQUIRE(berth.process().signal(SIGSTOP));
  engine.remove_unseen(1);
  // 6.5 s: the one-second watch tick comes at least 5 s late, wherever it was.
  std::this_thread::sleep_for(6500ms);
  REQUIRE(berth.process().signal(SIGCONT));
  // The watch tick, 5 s late, comes while the relist still waits for its inspect.
  REQUIRE(wait_until([&] { return http_get(berth.admin_port(), "/healthz", "127.0.0.1").status == 200; }, 3s));
  std::this_thread::sleep_for(300ms);
  engine.hold_inspects(false);

  CHECK(wait_until([&] { return http_get(berth.port(), "/", "gone2.test").status == 404; }, 5s));
  CHECK(http_get(berth.port(), "/", "keep2.test").status == 200);
  CHECK(berth.log_shows("event=docker_relist reason=stalled", 3s));
}
