// The event journal behind /api/events: bounded, ordered, and the changes it finds between two
// looks at the published state.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "proxy/control/event_journal.h"
#include "proxy/model/route_table.h"

using berth::EventJournal;
using berth::InstanceView;
using berth::ObservedState;
using berth::RouteView;

namespace {

std::vector<std::string> types(const EventJournal& j) {
  std::vector<std::string> out;
  for (const auto& e : j.events()) out.push_back(e.type);
  return out;
}

// A field's value as text (a number in decimal).
std::string field(const berth::JournalEvent& e, const std::string& name) {
  for (const auto& [k, v] : e.fields)
    if (k == name) return std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : std::to_string(std::get<int64_t>(v));
  return "<absent>";
}

void add_route(ObservedState& s, const std::string& name, const std::string& service, const std::string& state) {
  s.routes[berth::route_claim_key(name + ".test", "/")] = RouteView{name, name + ".test", "/", service, state};
}

}  // namespace

TEST_CASE("journal: keeps the last entries, oldest first, numbered", "[journal]") {
  EventJournal j(3);
  for (int i = 1; i <= 5; ++i) j.add(1000 * i, "e" + std::to_string(i), {{"n", std::to_string(i)}});
  REQUIRE(j.events().size() == 3);
  CHECK(j.total() == 5);
  CHECK(types(j) == std::vector<std::string>{"e3", "e4", "e5"});
  CHECK(j.events().front().seq == 3);
  CHECK(j.events().back().seq == 5);

  nlohmann::json doc = j.to_json();
  CHECK(doc["capacity"] == 3);
  CHECK(doc["total"] == 5);
  REQUIRE(doc["events"].size() == 3);
  CHECK(doc["events"][0]["type"] == "e3");
  CHECK(doc["events"][0]["n"] == "3");
  CHECK(doc["events"][0]["seq"] == 3);
  CHECK(doc["events"][0]["time_ms"] == 3000);
  CHECK(doc["events"][0]["time"] == "1970-01-01T00:00:03.000Z");
  CHECK(j.to_json(4)["events"].size() == 1);  // only what came after seq 4
  CHECK(EventJournal().capacity() == 256);
}

TEST_CASE("journal: instances joining and leaving services", "[journal]") {
  ObservedState before, after;
  before.instances[{"web", "10.0.0.1:80"}] = InstanceView{"web-1", "unchecked", false, 0, InstanceView::Origin::kContainer};
  before.instances[{"web", "10.0.0.2:80"}] = InstanceView{"web-2", "unchecked", false, 0, InstanceView::Origin::kContainer};
  before.instances[{"api", "127.0.0.1:9000"}] = InstanceView{"", "unchecked", false, 0};
  before.instances[{"remote", "127.0.0.9:80"}] = InstanceView{"", "unchecked", false, 0, InstanceView::Origin::kRegistry};
  after.instances[{"web", "10.0.0.1:80"}] = InstanceView{"web-1", "unchecked", false, 0, InstanceView::Origin::kContainer};
  after.instances[{"web", "10.0.0.3:80"}] = InstanceView{"web-3", "pending", false, 0, InstanceView::Origin::kContainer};
  EventJournal j;
  berth::record_changes(before, after, 5000, j);
  REQUIRE(types(j) == std::vector<std::string>{"instance_left", "instance_left", "instance_left", "instance_joined"});
  const auto& left_api = j.events()[0];
  CHECK(field(left_api, "service") == "api");
  CHECK(field(left_api, "container") == "<absent>");
  CHECK(field(left_api, "why") == "removed from the configuration");
  const auto& left_remote = j.events()[1];
  CHECK(field(left_remote, "service") == "remote");
  CHECK(field(left_remote, "why").find("no longer in the registry") == 0);
  const auto& left_web = j.events()[2];
  CHECK(field(left_web, "container") == "web-2");
  CHECK(field(left_web, "instance") == "10.0.0.2:80");
  CHECK(field(left_web, "why").find("no longer discovered") == 0);
  CHECK(field(j.events()[3], "container") == "web-3");
  CHECK(field(j.events()[3], "probe") == "pending");
  CHECK(j.events()[3].time_ms == 5000);

  EventJournal none;
  berth::record_changes(after, after, 6000, none);
  CHECK(none.events().empty());
}

TEST_CASE("journal: many instances moving in one change are one event, and earlier events stay", "[journal]") {
  ObservedState few, many;
  few.instances[{"web", "127.0.0.1:1"}] = InstanceView{"", "unchecked", false, 0};
  many = few;
  for (int s = 0; s < 100; ++s)
    for (int i = 0; i < 3; ++i)
      many.instances[{"svc" + std::to_string(s), "127.0.0.2:" + std::to_string(i + 1)}] = InstanceView{"", "unchecked", false, 0};
  EventJournal j(8);
  j.add(1, "config_reloaded", {{"result", "ok"}, {"generation", int64_t{2}}});
  berth::record_changes(few, many, 2, j);
  REQUIRE(types(j) == std::vector<std::string>{"config_reloaded", "instances_joined"});
  CHECK(field(j.events()[1], "count") == "300");
  CHECK(field(j.events()[1], "services") == "100");
  nlohmann::json doc = j.to_json();
  CHECK(doc["events"][0]["generation"] == 2);
  CHECK(doc["events"][1]["count"] == 300);
  berth::record_changes(many, few, 3, j);
  REQUIRE(types(j).back() == "instances_left");
  CHECK(field(j.events().back(), "count") == "300");
  // Up to kMaxListedMoves are still listed one by one.
  ObservedState some = few;
  for (size_t i = 0; i < berth::kMaxListedMoves; ++i)
    some.instances[{"web", "127.0.0.3:" + std::to_string(i + 1)}] = InstanceView{"", "unchecked", false, 0};
  EventJournal k(64);
  berth::record_changes(few, some, 4, k);
  CHECK(k.events().size() == berth::kMaxListedMoves);
  CHECK(types(k).front() == "instance_joined");
}

TEST_CASE("journal: ejections, returns and probe changes", "[journal]") {
  ObservedState a, b, c;
  a.instances[{"web", "i1"}] = InstanceView{"c1", "healthy", false, 0};
  b.instances[{"web", "i1"}] = InstanceView{"c1", "unhealthy", true, 1};
  c.instances[{"web", "i1"}] = InstanceView{"c1", "healthy", false, 1};
  EventJournal j;
  berth::record_changes(a, b, 1, j);
  berth::record_changes(b, c, 2, j);
  REQUIRE(types(j) == std::vector<std::string>{"instance_ejected", "probe_changed", "instance_returned", "probe_changed"});
  CHECK(field(j.events()[0], "ejections") == "1");
  CHECK(j.to_json()["events"][0]["ejections"] == 1);  // a JSON number, as counts are elsewhere
  CHECK(field(j.events()[0], "why").find("outlier detection") == 0);
  CHECK(field(j.events()[1], "from") == "healthy");
  CHECK(field(j.events()[1], "to") == "unhealthy");
  CHECK(field(j.events()[3], "to") == "healthy");
}

TEST_CASE("journal: a route goes 503, recovers, goes 503 again and expires", "[journal]") {
  ObservedState ok, empty, off, gone, config_empty;
  add_route(ok, "r", "web", "ok");
  add_route(empty, "r", "web", "503");
  add_route(off, "r", "web", "off");
  EventJournal j;
  berth::record_changes(ok, empty, 1, j);
  berth::record_changes(empty, ok, 2, j);
  berth::record_changes(ok, empty, 3, j);
  berth::record_changes(empty, off, 4, j);
  berth::record_changes(off, ok, 5, j);
  berth::record_changes(ok, empty, 6, j);
  berth::record_changes(empty, gone, 7, j);  // left the table while empty
  CHECK(types(j) == std::vector<std::string>{"route_503", "route_recovered", "route_503", "route_expired",
                                             "route_recovered", "route_503", "route_expired"});
  CHECK(field(j.events()[0], "route") == "r");
  CHECK(field(j.events()[0], "service") == "web");
  CHECK(field(j.events()[0], "host") == "r.test");
  CHECK(field(j.events()[0], "why").find("no instance left") != std::string::npos);

  // A route that appears without instances (a config service with none) is not a change.
  add_route(config_empty, "c", "none", "503");
  EventJournal quiet;
  berth::record_changes(ObservedState{}, config_empty, 1, quiet);
  CHECK(quiet.events().empty());
  // It never served: a reload that removes it expires nothing, and one that gives its service an
  // instance recovers nothing.
  berth::record_changes(config_empty, ObservedState{}, 2, quiet);
  CHECK(quiet.events().empty());
  ObservedState config_ok;
  add_route(config_ok, "c", "none", "ok");
  berth::record_changes(ObservedState{}, config_empty, 3, quiet);
  berth::record_changes(config_empty, config_ok, 4, quiet);
  CHECK(quiet.events().empty());
  // From then on it serves: losing the instance is told, and so is what follows.
  berth::record_changes(config_ok, config_empty, 5, quiet);
  berth::record_changes(config_empty, ObservedState{}, 6, quiet);
  CHECK(types(quiet) == std::vector<std::string>{"route_503", "route_expired"});

  // The same for a route in the state Berth starts with (its first look, recorded as no change).
  EventJournal at_start;
  at_start.first_look(config_empty);
  berth::record_changes(config_empty, config_ok, 1, at_start);
  berth::record_changes(config_ok, config_ok, 2, at_start);
  EventJournal removed_at_start;
  removed_at_start.first_look(config_empty);
  berth::record_changes(config_empty, ObservedState{}, 1, removed_at_start);
  CHECK(at_start.events().empty());
  CHECK(removed_at_start.events().empty());
}

TEST_CASE("journal: many routes going 503, expiring or recovering in one change are one event each", "[journal]") {
  // A bulk change (registry keys deleted, containers stopped) with an empty-route grace: every
  // route goes 503 at once, and expires at once when the grace ends.
  ObservedState ok, empty, gone;
  const size_t n = berth::kMaxListedMoves + 1;
  for (size_t i = 0; i < n; ++i) {
    add_route(ok, "r" + std::to_string(i), "web", "ok");
    add_route(empty, "r" + std::to_string(i), "web", "503");
  }
  EventJournal j;
  berth::record_changes(ok, empty, 1, j);
  berth::record_changes(empty, ok, 2, j);
  berth::record_changes(ok, empty, 3, j);
  berth::record_changes(empty, gone, 4, j);
  REQUIRE(types(j) == std::vector<std::string>{"routes_503", "routes_recovered", "routes_503", "routes_expired"});
  for (const auto& e : j.events()) CHECK(field(e, "count") == std::to_string(n));
  CHECK(field(j.events()[0], "why").find("503") != std::string::npos);

  // Up to kMaxListedMoves of a type are told one by one, beside a bulk event of another type.
  ObservedState mixed_before = ok, mixed_after = empty;
  add_route(mixed_before, "z", "api", "ok");  // leaves while serving
  EventJournal mixed;
  berth::record_changes(mixed_before, mixed_after, 1, mixed);
  REQUIRE(types(mixed) == std::vector<std::string>{"route_expired", "routes_503"});
  CHECK(field(mixed.events()[0], "route") == "z");
}

TEST_CASE("journal: with no empty-route grace a route that stops serving is expired at once, and recovers after that",
          "[journal]") {
  ObservedState ok, off;
  add_route(ok, "r", "web", "ok");
  add_route(off, "r", "web", "off");
  EventJournal j;
  berth::record_changes(ok, off, 1, j);  // its last instance left, empty_route_grace: 0s
  berth::record_changes(off, ok, 2, j);
  berth::record_changes(ok, ObservedState{}, 3, j);  // its container removed while it served
  berth::record_changes(ObservedState{}, ok, 4, j);  // a new one: it appears, it does not recover
  REQUIRE(types(j) == std::vector<std::string>{"route_expired", "route_recovered", "route_expired"});
  CHECK(field(j.events()[0], "route") == "r");
  CHECK(field(j.events()[0], "why").find("no empty-route grace") != std::string::npos);
  CHECK(field(j.events()[2], "why").find("left the table while it had instances") != std::string::npos);

  // A route that was off from its first look (a created container, not started yet) begins to
  // serve: no recovery, since it never went down.
  EventJournal created;
  berth::record_changes(ObservedState{}, off, 1, created);
  berth::record_changes(off, ok, 2, created);
  CHECK(created.events().empty());

  // Many routes leaving while serving in one change (a reload) are one event.
  ObservedState many;
  for (size_t i = 0; i <= berth::kMaxListedMoves; ++i) add_route(many, "r" + std::to_string(i), "web", "ok");
  EventJournal bulk;
  berth::record_changes(many, ObservedState{}, 1, bulk);
  REQUIRE(types(bulk) == std::vector<std::string>{"routes_expired"});
  CHECK(field(bulk.events()[0], "count") == std::to_string(berth::kMaxListedMoves + 1));
}

TEST_CASE("journal: a redirect route is no route event: appearing, leaving, or turning into a routed one",
          "[journal]") {
  // Berth answers a redirect route itself: it has no instance to lose, so it never goes 503,
  // recovers or expires; leaving the table by a reload is told by the reload.
  ObservedState redirect, ok, empty;
  add_route(redirect, "r", "", "redirect");
  add_route(ok, "r", "web", "ok");
  add_route(empty, "r", "web", "503");
  EventJournal j;
  berth::record_changes(ObservedState{}, redirect, 1, j);
  berth::record_changes(redirect, ObservedState{}, 2, j);
  berth::record_changes(redirect, ok, 3, j);
  berth::record_changes(ok, redirect, 4, j);
  berth::record_changes(redirect, empty, 5, j);  // now a route to a service without instances: appears so
  berth::record_changes(empty, redirect, 6, j);
  // Turned into a route whose service has no instance, it never served: an instance given to
  // it is no recovery.
  berth::record_changes(redirect, empty, 7, j);
  berth::record_changes(empty, ok, 8, j);
  CHECK(j.events().empty());
}
