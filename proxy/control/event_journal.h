// The journal behind GET /api/events: the last changes the control side saw (instances joining
// and leaving services, ejections, probe results, routes answering 503, config reloads), each
// with a wall-clock time. Pure: the control loop observes the state (status.h) and hands it
// here; this finds what changed and keeps the last `capacity` entries. Control thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "proxy/model/source_origin.h"

namespace berth {

// A field's value: text, or a number (a count, a generation), shown as a JSON number.
using JournalValue = std::variant<std::string, int64_t>;
using JournalFields = std::vector<std::pair<std::string, JournalValue>>;

struct JournalEvent {
  uint64_t seq = 0;     // 1, 2, ... for the life of the process
  int64_t time_ms = 0;  // wall clock, ms since the Unix epoch
  std::string type;
  JournalFields fields;  // e.g. {"service", "web"}, {"generation", 7}
};

struct ObservedState;

class EventJournal {
 public:
  explicit EventJournal(size_t capacity = 256) : capacity_(capacity ? capacity : 1) {}
  void add(int64_t time_ms, std::string type, JournalFields fields);
  const std::deque<JournalEvent>& events() const { return events_; }  // oldest first
  uint64_t total() const { return next_seq_ - 1; }                    // ever added
  size_t capacity() const { return capacity_; }
  // {"capacity":256,"total":N,"events":[{"seq":1,"time":"2026-12-02T08:00:00.123Z","time_ms":...,
  //  "type":"instance_left","service":"web",...}]}: oldest first (newest last); only events with
  // seq > after_seq. Fields sit beside seq, time and type (their names never clash with those).
  nlohmann::json to_json(uint64_t after_seq = 0) const;
  // The first look at the state (at start), recorded as no change: a route answering 503 in it
  // (a config service without instances) never served, as one a later change adds so.
  void first_look(const ObservedState& state);

 private:
  friend void record_changes(const ObservedState& before, const ObservedState& after, int64_t time_ms,
                             EventJournal& journal);
  size_t capacity_;
  std::deque<JournalEvent> events_;
  uint64_t next_seq_ = 1;
  // The routes (by claim) that are off (no longer matching) by a recorded route_expired: a
  // route that serves again after being off recovers only if it is one of these, not when it
  // was off from its first look (a created container not yet started). Forgotten when the
  // route serves again or leaves the table.
  std::set<std::string> down_routes_;
  // The routes (by claim) answering 503 since their first look (a config service without
  // instances): no route_503 was told for them, so none recovers or expires either.
  std::set<std::string> quiet_503_;
};

// What the journal compares between two looks at the published state.
struct InstanceView {
  using Origin = SourceOrigin;
  std::string container;  // "" for config instances
  std::string probe;      // probe_state_name(): "unchecked", "pending", "healthy", "unhealthy"
  bool ejected = false;
  uint32_t ejections = 0;  // how often it was ejected so far
  Origin origin = Origin::kConfig;
};
struct RouteView {
  // service: the route's service; a split route's services, in order, joined by ", ".
  std::string name, host, path_prefix, service;
  // "ok": it has instances; "503": none left, answering 503 in its empty-route grace (or a config
  // service without instances); "off": its grace is over, it no longer matches; "redirect": a
  // redirect route, answered by Berth itself (no instance, never a route event).
  std::string state;
  bool split = false;  // a split route (its why names its services)
};
struct ObservedState {
  std::map<std::pair<std::string, std::string>, InstanceView> instances;  // (service, address)
  // By route_claim_key (host, path, matchers), not by name: a config route without a name is
  // called by its place in the file (route-3), which an edit above it changes.
  std::map<std::string, RouteView> routes;
  // When this state changes by time alone (an ejection or an empty route's grace ends;
  // health_clock_ms), else INT64_MAX. Other changes come with a new snapshot or health_epoch().
  int64_t next_change_ms = INT64_MAX;
};

// Appends to `journal` every change from `before` to `after`: instance_joined, instance_left,
// instance_ejected, instance_returned, probe_changed, route_503, route_recovered,
// route_expired. Instances are listed by service, then address; routes by key. A route that
// stops matching straight from serving (ok -> off or gone: no empty-route grace) is expired at
// once; route_recovered follows a route answering 503, or one a recorded route_expired turned
// off (not one off from its first look). A route answering 503 from its first look (a config
// service without instances) never served: it neither recovers nor expires. More than
// kMaxListedMoves instances joining (or leaving) in one change (a reload, a burst of containers)
// give one instances_joined (instances_left) event with their count instead, and more than
// kMaxListedMoves route_503 (route_expired, route_recovered) one routes_503 (routes_expired,
// routes_recovered), so that one bulk change does not push every earlier event out of the journal.
constexpr size_t kMaxListedMoves = 16;
void record_changes(const ObservedState& before, const ObservedState& after, int64_t time_ms,
                    EventJournal& journal);

}  // namespace berth
