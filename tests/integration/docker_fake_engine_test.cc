// Docker discovery against a fake engine (bench/fake_docker_engine.h) where the test decides
// when an inspect is answered: event orders a real engine produces only by chance.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "bench/fake_docker_engine.h"
#include "env.h"

using namespace it;

TEST_CASE("docker events: a start that arrives while the create's inspect is in flight is routed on that answer",
          "[docker_fake]") {
  TempDir dir;
  const std::string socket = dir.file("docker.sock");
  fake_docker::FakeEngine engine(socket, 0, fake_docker::ojson::parse(fake_docker::kInspectTemplate),
                                 fake_docker::ojson::parse(fake_docker::kListTemplate));
  engine.start();
  Origin origin("race");
  REQUIRE(origin.ok());
  Berth berth(config_head(2) + "docker: {enabled: true, endpoint: \"unix://" + socket +
              "\", empty_route_grace: 1s, reconnect_max: 1s}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  REQUIRE(wait_until([&] { return berth.log().find("event=docker_synced") != std::string::npos; }, 10s));

  fake_docker::Container c;
  c.id = fake_docker::hex_id(77);
  c.name = "race-1";
  c.port = origin.port();
  c.labels = {{"berth.enable", "true"}, {"berth.host", "race.test"}, {"berth.port", std::to_string(origin.port())}};
  c.running = false;
  c.created_ns = pb::realtime_ns();
  const size_t i = engine.add(c);
  engine.hold_inspects(true);
  engine.emit(i, "create");
  REQUIRE(engine.wait_asked(i, 1, 5000));  // asked at create; the answer (not running) is held
  engine.emit(i, "start");                 // the container runs from here on
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
