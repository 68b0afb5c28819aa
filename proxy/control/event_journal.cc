#include "proxy/control/event_journal.h"

#include <nlohmann/json.hpp>

#include "proxy/base/time_text.h"

namespace berth {

void EventJournal::add(int64_t time_ms, std::string type, JournalFields fields) {
  if (events_.size() == capacity_) events_.pop_front();
  events_.push_back({next_seq_++, time_ms, std::move(type), std::move(fields)});
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

std::string route_key(const std::string& name, const std::string& host, const std::string& path_prefix) {
  return name + '\x1f' + host + '\x1f' + path_prefix;
}

namespace {

using Fields = JournalFields;

// One event for many instances joining or leaving at once: how many, of how many services.
void add_bulk(EventJournal& journal, int64_t time_ms, const char* type, size_t count, size_t services,
              const char* why) {
  journal.add(time_ms, type,
              {{"count", static_cast<int64_t>(count)}, {"services", static_cast<int64_t>(services)}, {"why", why}});
}

size_t services_among(const std::vector<const std::pair<const std::pair<std::string, std::string>, InstanceView>*>& moved) {
  size_t n = 0;
  for (size_t i = 0; i < moved.size(); ++i) n += i == 0 || moved[i]->first.first != moved[i - 1]->first.first;
  return n;
}

Fields instance_fields(const std::pair<std::string, std::string>& key, const InstanceView& v) {
  Fields f{{"service", key.first}, {"instance", key.second}};
  if (!v.container.empty()) f.emplace_back("container", v.container);
  return f;
}

Fields route_fields(const RouteView& r) {
  return {{"route", r.name}, {"host", r.host}, {"path_prefix", r.path_prefix}, {"service", r.service}};
}

}  // namespace

void record_changes(const ObservedState& before, const ObservedState& after, int64_t time_ms,
                    EventJournal& journal) {
  std::vector<const std::pair<const std::pair<std::string, std::string>, InstanceView>*> left, joined;
  for (const auto& kv : before.instances)
    if (!after.instances.count(kv.first)) left.push_back(&kv);
  for (const auto& kv : after.instances)
    if (!before.instances.count(kv.first)) joined.push_back(&kv);
  if (left.size() > kMaxListedMoves) {
    add_bulk(journal, time_ms, "instances_left", left.size(), services_among(left),
             "many instances left in one change (a reload, containers stopping): /api/status lists the rest");
  } else {
    for (const auto* kv : left) {
      Fields f = instance_fields(kv->first, kv->second);
      f.emplace_back("why", kv->second.container.empty()
                                ? "removed from the configuration"
                                : "no longer discovered: the container stopped, is unhealthy, paused or draining, "
                                  "or its labels changed");
      journal.add(time_ms, "instance_left", std::move(f));
    }
  }
  if (joined.size() > kMaxListedMoves) {
    add_bulk(journal, time_ms, "instances_joined", joined.size(), services_among(joined),
             "many instances joined in one change (a reload, containers starting): /api/status lists them");
  } else {
    for (const auto* kv : joined) {
      Fields f = instance_fields(kv->first, kv->second);
      f.emplace_back("probe", kv->second.probe);
      journal.add(time_ms, "instance_joined", std::move(f));
    }
  }
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
  for (const auto& [key, was] : before.routes) {
    if (was.state != "503" || after.routes.count(key)) continue;
    Fields f = route_fields(was);
    f.emplace_back("why", "the route left the table while it had no instance");
    journal.add(time_ms, "route_expired", std::move(f));
  }
  for (const auto& [key, now] : after.routes) {
    auto it = before.routes.find(key);
    const std::string was = it == before.routes.end() ? std::string() : it->second.state;
    if (was == now.state) continue;
    if (now.state == "503" && (was == "ok" || was.empty())) {
      // A route that appears without instances (a config service with none) is no change.
      if (was.empty()) continue;
      Fields f = route_fields(now);
      f.emplace_back("why", "its service has no instance left: 503 until one joins or the empty-route grace ends");
      journal.add(time_ms, "route_503", std::move(f));
    } else if (now.state == "ok" && (was == "503" || was == "off")) {
      journal.add(time_ms, "route_recovered", route_fields(now));
    } else if (now.state == "off" && was == "503") {
      Fields f = route_fields(now);
      f.emplace_back("why", "empty-route grace over: the route no longer matches");
      journal.add(time_ms, "route_expired", std::move(f));
    }
  }
}

}  // namespace berth
