#include "proxy/control/event_journal.h"

#include <nlohmann/json.hpp>

#include "proxy/base/time_text.h"

namespace berth {

void EventJournal::add(int64_t time_ms, std::string type, JournalFields fields) {
  if (events_.size() == capacity_) events_.pop_front();
  events_.push_back({next_seq_++, time_ms, std::move(type), std::move(fields)});
}

void EventJournal::first_look(const ObservedState& state) {
  for (const auto& [key, route] : state.routes)
    if (route.state == "503") quiet_503_.insert(key);
}

nlohmann::json EventJournal::to_json(uint64_t after_seq) const {
  nlohmann::json events = nlohmann::json::array();
  for (const JournalEvent& e : events_) {
    if (e.seq <= after_seq) continue;
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, value] : e.fields) std::visit([&, &name = name](const auto& v) { j[name] = v; }, value);
    j["seq"] = e.seq;
    j["time"] = rfc3339_ms(e.time_ms);
    j["time_ms"] = e.time_ms;
    j["type"] = e.type;
    events.push_back(std::move(j));
  }
  return {{"capacity", capacity_}, {"total", total()}, {"order", "oldest first"}, {"events", std::move(events)}};
}

namespace {

using Fields = JournalFields;

// An element of ObservedState::instances: {service, instance} and what was seen of it.
using InstanceEntry = std::pair<const std::pair<std::string, std::string>, InstanceView>;

Fields instance_fields(const std::pair<std::string, std::string>& key, const InstanceView& v) {
  Fields f{{"service", key.first}, {"instance", key.second}};
  if (!v.container.empty()) f.emplace_back("container", v.container);
  return f;
}

// Instances that joined or left in one change: an event each, or, past kMaxListedMoves, one event
// for them all saying how many, of how many services. detail adds an event's own fields.
template <typename Detail>
void record_moves(EventJournal& journal, int64_t time_ms, const std::vector<const InstanceEntry*>& moved,
                  const char* type, const char* bulk_type, const char* bulk_why, Detail detail) {
  if (moved.size() > kMaxListedMoves) {
    size_t services = 0;  // moved is in key order: a service's instances are together
    for (size_t i = 0; i < moved.size(); ++i) services += i == 0 || moved[i]->first.first != moved[i - 1]->first.first;
    journal.add(time_ms, bulk_type,
                {{"count", static_cast<int64_t>(moved.size())}, {"services", static_cast<int64_t>(services)},
                 {"why", bulk_why}});
    return;
  }
  for (const InstanceEntry* kv : moved) {
    Fields f = instance_fields(kv->first, kv->second);
    detail(f, kv->second);
    journal.add(time_ms, type, std::move(f));
  }
}

Fields route_fields(const RouteView& r) {
  return {{"route", r.name}, {"host", r.host}, {"path_prefix", r.path_prefix}, {"service", r.service}};
}

// The route events of one change, told in order; past kMaxListedMoves of one type, a single event
// of its bulk type says how many instead, where the first of them would have been.
enum class RouteEvent { k503, kExpired, kRecovered };

class RouteEvents {
 public:
  void add(RouteEvent type, const RouteView& r, const char* why) {
    Fields f = route_fields(r);
    if (why) f.emplace_back("why", why);
    entries_.push_back({type, std::move(f)});
  }
  void flush(EventJournal& journal, int64_t time_ms) {
    struct Kind {
      const char* type;
      const char* bulk_type;
      const char* why;
      size_t count = 0;
    };
    Kind kinds[] = {  // in RouteEvent's order
        {"route_503", "routes_503",
         "many routes lost their last instance in one change: each answers 503 until one joins or its empty-route "
         "grace ends (/api/status lists them)"},
        {"route_expired", "routes_expired",
         "many routes stopped matching in one change (a reload, containers or registry keys removed, empty-route "
         "graces ending)"},
        {"route_recovered", "routes_recovered", "many routes got an instance back in one change"},
    };
    for (const Entry& e : entries_) ++kinds[static_cast<size_t>(e.type)].count;
    for (Entry& e : entries_) {
      Kind& k = kinds[static_cast<size_t>(e.type)];
      if (k.count <= kMaxListedMoves) {
        journal.add(time_ms, k.type, std::move(e.fields));
      } else if (k.why) {  // the first of them: one event for all
        journal.add(time_ms, k.bulk_type, {{"count", static_cast<int64_t>(k.count)}, {"why", k.why}});
        k.why = nullptr;
      }
    }
  }

 private:
  struct Entry {
    RouteEvent type;
    Fields fields;
  };
  std::vector<Entry> entries_;
};

}  // namespace

void record_changes(const ObservedState& before, const ObservedState& after, int64_t time_ms,
                    EventJournal& journal) {
  std::vector<const InstanceEntry*> left, joined;
  for (const auto& kv : before.instances)
    if (!after.instances.count(kv.first)) left.push_back(&kv);
  for (const auto& kv : after.instances)
    if (!before.instances.count(kv.first)) joined.push_back(&kv);
  record_moves(journal, time_ms, left, "instance_left", "instances_left",
               "many instances left in one change (a reload, containers stopping)",
               [](Fields& f, const InstanceView& v) {
                 switch (v.origin) {
                   case InstanceView::Origin::kConfig: f.emplace_back("why", "removed from the configuration"); break;
                   case InstanceView::Origin::kContainer:
                     f.emplace_back("why", "no longer discovered: the container stopped, is unhealthy, paused or "
                                           "draining, or its labels changed");
                     break;
                   case InstanceView::Origin::kRegistry:
                     f.emplace_back("why", "no longer in the registry: its key was deleted, its lease expired, or it is "
                                           "refused (see /api/routes rejected)");
                     break;
                 }
               });
  record_moves(journal, time_ms, joined, "instance_joined", "instances_joined",
               "many instances joined in one change (a reload, containers starting): /api/status lists them",
               [](Fields& f, const InstanceView& v) { f.emplace_back("probe", v.probe); });
  for (const auto& [key, now] : after.instances) {
    auto it = before.instances.find(key);
    if (it == before.instances.end()) continue;
    const InstanceView& was = it->second;
    if (now.ejected && !was.ejected) {
      Fields f = instance_fields(key, now);
      f.emplace_back("why", "outlier detection: consecutive connect failures or 5xx answers");
      f.emplace_back("ejections", static_cast<int64_t>(now.ejections));
      journal.add(time_ms, "instance_ejected", std::move(f));
    } else if (!now.ejected && was.ejected) {
      Fields f = instance_fields(key, now);
      f.emplace_back("why", "ejection time over");
      journal.add(time_ms, "instance_returned", std::move(f));
    }
    if (now.probe != was.probe) {
      Fields f = instance_fields(key, now);
      f.emplace_back("from", was.probe);
      f.emplace_back("to", now.probe);
      journal.add(time_ms, "probe_changed", std::move(f));
    }
  }
  std::set<std::string>& down = journal.down_routes_;
  std::set<std::string>& quiet = journal.quiet_503_;
  RouteEvents events;
  // Routes that left the table: from 503, their grace ended with them; from ok, they stopped
  // matching at once (no empty-route grace held them: their instances left with them, or a
  // reload or a label change removed them). One that answered 503 from its first look (a config
  // service without instances) never served: nothing expires.
  for (const auto& [key, was] : before.routes) {
    if (after.routes.count(key)) continue;
    down.erase(key);
    const bool never_served = quiet.erase(key) > 0;
    if (was.state == "ok")
      events.add(RouteEvent::kExpired, was,
                 "the route left the table while it had instances (no empty-route grace held it): its instances "
                 "left with it, or a reload or a label change removed it");
    else if (was.state == "503" && !never_served)
      events.add(RouteEvent::kExpired, was, "the route left the table while it had no instance");
  }
  for (const auto& [key, now] : after.routes) {
    auto it = before.routes.find(key);
    const std::string was = it == before.routes.end() ? std::string() : it->second.state;
    if (was == now.state) continue;
    // Whether it answered 503 since its first look, untold: no route_503 was said, so no
    // route_recovered or route_expired follows either.
    const bool never_served = quiet.erase(key) > 0;
    if (now.state == "503" && (was == "ok" || was.empty() || was == "redirect")) {
      // A route that appears without instances (a config service with none), or a redirect
      // route a reload turned into one, is no change: it never served.
      if (was != "ok") {
        quiet.insert(key);
        continue;
      }
      events.add(RouteEvent::k503, now,
                 now.split ? "none of its services has an instance left: 503 until one joins or the empty-route grace "
                             "ends"
                           : "its service has no instance left: 503 until one joins or the empty-route grace ends");
    } else if (now.state == "ok" && (was == "503" || was == "off")) {
      // From 503 it answered 503; from off, only a route whose expiry was told recovers: one
      // that was off from its first look (a created container's) just begins to serve.
      const bool expired = down.erase(key) > 0;
      if ((was == "503" && !never_served) || expired) events.add(RouteEvent::kRecovered, now, nullptr);
    } else if (now.state == "off" && (was == "503" || was == "ok")) {
      if (never_served) continue;
      events.add(RouteEvent::kExpired, now,
                 was == "503" ? "empty-route grace over: the route no longer matches"
                              : "its service has no instance left and no empty-route grace: the route no longer "
                                "matches");
      down.insert(key);
    } else if (now.state == "redirect") {
      down.erase(key);  // no instance to lose or get back
    }
  }
  events.flush(journal, time_ms);
}

}  // namespace berth
