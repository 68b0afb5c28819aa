#include "discovery/docker_source.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>

#include "discovery/self_container.h"
#include "proxy/model/endpoint_health.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"

namespace berth::discovery {

namespace {

using namespace std::chrono_literals;
constexpr auto kRequestTimeout = 30s;
constexpr auto kPingInterval = 10s;
constexpr auto kPingTimeout = 5s;
// The engine drops events for a subscriber that does not read them fast enough, with no gap
// marker, and the stream stays open: a lost `die` would leave a stopped container routed for
// good. The containers are listed again (as after a reconnect, while the stream goes on) when a
// tick of the kWatchInterval timer comes kStallLateness late (the process stood still: stopped,
// starved, a frozen VM), and every kRelistInterval in any case.
constexpr auto kWatchInterval = 1s;
constexpr auto kStallLateness = 5s;
constexpr auto kRelistInterval = 5min;
constexpr size_t kMaxInspectsInFlight = 16;
constexpr size_t kRecentEvents = 4096;
constexpr size_t kMaxDormant = 4096;
constexpr const char* kContainerFilter = "%7B%22type%22%3A%5B%22container%22%5D%7D";  // {"type":["container"]}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// "Fri, 27 Nov 2026 16:41:43 GMT" -> ns since the epoch; 0 when unparsable.
int64_t parse_http_date(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S", &tm);
  if (!end) return 0;
  return static_cast<int64_t>(timegm(&tm)) * 1'000'000'000;
}

// "1.41" -> 141; -1 when unparsable.
int api_number(const std::string& version) {
  int major = 0, minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) != 2) return -1;
  return major * 100 + minor;
}

bool starts_with(const std::string& s, std::string_view prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

BuilderOptions options_from(const config::Docker& cfg) {
  BuilderOptions o;
  o.labels.exposed_by_default = cfg.exposed_by_default;
  o.labels.nginx_proxy = cfg.compat.nginx_proxy;
  o.labels.traefik = cfg.compat.traefik;
  o.host_address = cfg.host_address;
  o.network = cfg.network;
  o.prefer_ipv6 = cfg.prefer_ipv6;
  o.use_published_ports = cfg.use_published_ports;
  o.empty_route_grace = cfg.empty_route_grace;
  o.allowed_hosts = cfg.allowed_hosts;
  o.max_priority = cfg.max_priority;
  o.allow_any_host = cfg.allow_any_host;
  o.forward_auth_addresses = cfg.forward_auth_addresses;
  o.labels.access_files_dir = cfg.access_files_dir;
  return o;
}

}  // namespace

DockerSource::DockerSource(const config::Docker& cfg, bool publish_policies)
    : cfg_(cfg), options_(options_from(cfg)), grace_(cfg.empty_route_grace) {
  options_.publish_policies = publish_policies;
  std::string error;
  endpoint_ = parse_docker_endpoint(cfg_.endpoint, &error);
  if (!endpoint_) {
    setup_error_ = error;
    return;
  }
  bool tls = !cfg_.tls.ca.empty() || !cfg_.tls.cert.empty();
  if (tls && endpoint_->kind == DockerEndpoint::Kind::kTcp) {
    tls_ = TlsContext::create(cfg_.tls, &error);
    if (!tls_) setup_error_ = error;
  }
}

DockerSource::~DockerSource() { client_.reset(); }

void DockerSource::start(uv_loop_t* loop, UpdateFn on_update) {
  loop_ = loop;
  on_update_ = std::move(on_update);
  if (!setup_error_.empty()) {
    stale_ = "docker discovery cannot start: " + setup_error_;
    log::error("docker_setup_failed").kv("reason", setup_error_);
    phase_ = Phase::kStopped;
    return;
  }
  client_ = std::make_unique<DockerClient>(loop_, *endpoint_, tls_);
  own_id_guess_ = guess_own_container_id();
  stale_ = "not yet in sync with the docker engine at " + endpoint_->to_string();
  connect();
}

void DockerSource::stop(std::function<void()> done) {
  phase_ = Phase::kStopped;
  client_.reset();
  retry_timer_.close();
  grace_timer_.close();
  ping_timer_.close();
  watch_timer_.close();
  if (done) done();
}

std::string DockerSource::stale_reason() const { return stale_; }

SourceStats DockerSource::stats() const {
  SourceStats s;
  s.connected = phase_ == Phase::kSynced;
  s.events.assign(event_counts_.begin(), event_counts_.end());
  return s;
}

// ---- sync ----

void DockerSource::connect() {
  if (phase_ == Phase::kStopped) return;
  phase_ = Phase::kConnecting;
  client_->get("/version", kRequestTimeout, [this](HttpResult r) { on_version(r); });
}

void DockerSource::on_version(const HttpResult& r) {
  if (!r.ok()) {
    lost("GET /version: " + r.describe());
    return;
  }
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  std::string api = j.is_object() && j.value("ApiVersion", nlohmann::json()).is_string() ? j["ApiVersion"].get<std::string>() : "";
  std::string version = j.is_object() && j.value("Version", nlohmann::json()).is_string() ? j["Version"].get<std::string>() : "?";
  int number = api_number(api);
  if (number < 0) {
    lost("GET /version: no ApiVersion in the answer");
    return;
  }
  if (number < 125) {
    lost("engine API " + api + " is too old (Berth needs 1.25 or newer)");
    return;
  }
  api_prefix_ = number >= 141 ? "/v1.41" : "/v" + api;
  if (last_event_ns_ == 0 && first_since_ns_ == 0) {
    // A daemon-clock time just before subscribing: the host clock for a local socket, the
    // engine's Date header for a remote one; a second early, since replays are de-duplicated.
    int64_t t = realtime_ns();
    if (endpoint_->kind == DockerEndpoint::Kind::kTcp) {
      int64_t engine = parse_http_date(r.head.header("date"));
      if (engine > 0) t = engine;
    }
    first_since_ns_ = t - 1'000'000'000;
  }
  log::info("docker_connected")
      .kv("endpoint", endpoint_->to_string())
      .kv("engine_version", version)
      .kv("engine_api", api)
      .kv("using_api", api_prefix_.substr(2));
  if (!own_id_guess_.empty() && !own_networks_known_) find_own_networks();
  else subscribe();
}

void DockerSource::find_own_networks() {
  client_->get(path("/containers/" + own_id_guess_ + "/json"), kRequestTimeout, [this](HttpResult r) {
    if (r.status == 404) {
      own_networks_known_ = true;  // not a container of this engine
    } else if (r.ok()) {
      nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
      if (auto facts = parse_inspect(j, nullptr)) {
        options_.own_networks.clear();
        options_.own_container_id = facts->id;
        for (const auto& n : facts->networks) options_.own_networks.push_back(n.name);
        memo_.clear();
        own_networks_known_ = true;
        std::string names;
        for (const auto& n : options_.own_networks) names += (names.empty() ? "" : ",") + n;
        log::info("docker_own_container").kv("container", facts->display()).kv("networks", names);
      }
    }
    subscribe();
  });
}

void DockerSource::subscribe() {
  if (phase_ == Phase::kStopped) return;
  phase_ = Phase::kSubscribing;
  splitter_.reset();
  buffered_.clear();
  int64_t since = last_event_ns_ ? last_event_ns_ : first_since_ns_;
  std::string target = path("/events?since=" + format_since(since) + "&filters=" + kContainerFilter);
  DockerClient::StreamCallbacks callbacks;
  callbacks.on_head = [this](const ResponseHead& head) {
    if (head.status != 200) {
      lost("GET /events: HTTP " + std::to_string(head.status));
      return;
    }
    list();  // subscribed: now list, the events that arrive meanwhile are buffered
  };
  callbacks.on_data = [this](std::string_view bytes) { on_stream_data(bytes); };
  callbacks.on_end = [this](const std::string& why) { lost("event stream: " + why); };
  client_->stream(target, kRequestTimeout, std::move(callbacks));
}

void DockerSource::on_stream_data(std::string_view bytes) {
  const int64_t received = realtime_ns();
  const uint64_t skipped_before = splitter_.skipped();
  splitter_.feed(bytes, [this, received](std::string_view line) {
    if (phase_ == Phase::kWaiting || phase_ == Phase::kStopped) return;
    std::string error;
    auto event = parse_event(line, &error);
    if (!event) {
      log::warn("docker_event_unreadable").kv("reason", error).kv("bytes", static_cast<uint64_t>(line.size()));
      return;
    }
    if (phase_ == Phase::kSynced) {
      event_received_ns_ = received;
      handle_event(*event);
      if (dirty_ && !cause_received_ns_) cause_received_ns_ = received;
    } else {
      buffered_.push_back(std::move(*event));
    }
  });
  if (splitter_.skipped() != skipped_before) {
    // What the skipped event said is learnt again from the engine: a fresh list and inspects,
    // while the stream goes on (events meanwhile are buffered and replayed, as at start).
    log::warn("docker_event_skipped").kv("reason", "an event larger than 16 MiB")
        .kv("action", phase_ == Phase::kSynced ? "listing the containers again" : "the sync under way covers it");
    if (phase_ == Phase::kSynced) {
      list();
      return;
    }
  }
  if (phase_ == Phase::kSynced && dirty_) {
    dirty_ = false;
    rebuild();
  }
}

void DockerSource::list() {
  phase_ = Phase::kListing;
  // all=1: stopped containers too. A resync keeps what was known of the stopped ones (dormant_,
  // their route claims) and forgets only those the list no longer has (removed meanwhile).
  client_->get(path("/containers/json?all=1"), kRequestTimeout, [this](HttpResult r) { on_list(r); });
}

void DockerSource::on_list(const HttpResult& r) {
  if (!r.ok()) {
    lost("GET /containers/json: " + r.describe());
    return;
  }
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_array()) {
    lost("GET /containers/json: not a JSON array");
    return;
  }
  std::set<std::string> listed;
  std::vector<std::string> wanted;
  for (const auto& entry : j) {
    if (!entry.is_object() || !entry.contains("Id") || !entry["Id"].is_string()) continue;
    std::string id = entry["Id"].get<std::string>();
    listed.insert(id);
    // Not running: created, exited or dead (paused and restarting containers run; an entry
    // without a State is taken as running, and its inspect says).
    auto state = entry.find("State");
    const bool stopped = state != entry.end() && state->is_string() &&
                         (*state == "created" || *state == "exited" || *state == "dead");
    if (stopped) {
      // One that ran stopped while we were not looking: its inspect keeps it dormant. One
      // known dormant stays so as it is. One never seen is left until its start, as at the
      // first sync (Berth learns a container at its create or while it runs).
      if (cache_.count(id)) wanted.push_back(id);
      continue;
    }
    std::map<std::string, std::string> labels;
    auto l = entry.find("Labels");
    if (l != entry.end() && l->is_object()) {
      for (auto it = l->begin(); it != l->end(); ++it)
        if (it->is_string()) labels.emplace(it.key(), it->get<std::string>());
    }
    if (matters(labels) || cache_.count(id) || dormant_.count(id)) wanted.push_back(id);
  }
  // Whatever is gone from the list was removed while we were not looking (no event for that).
  for (ContainerCache* known : {&cache_, &dormant_}) {
    for (auto it = known->begin(); it != known->end();) {
      if (listed.count(it->first)) ++it;
      else it = known->erase(it);
    }
  }
  memo_.touch_all();
  phase_ = Phase::kInspecting;
  sync_waiting_ = std::set<std::string>(wanted.begin(), wanted.end());
  for (const std::string& id : wanted) inspect(id);
  if (sync_waiting_.empty()) finish_sync();
}

void DockerSource::finish_sync() {
  phase_ = Phase::kSynced;
  std::vector<DockerEvent> buffered = std::move(buffered_);
  buffered_.clear();
  event_received_ns_ = 0;  // replayed events: their receipt is not what a publication waits on
  for (const DockerEvent& e : buffered) handle_event(e);
  bool was_stale_after_sync = published_ != nullptr && !stale_.empty();
  stale_.clear();
  unreachable_since_.clear();
  backoff_ = 200ms;
  log::info(was_stale_after_sync ? "docker_resynced" : "docker_synced")
      .kv("endpoint", endpoint_->to_string())
      .kv("containers", static_cast<uint64_t>(cache_.size()))
      .kv("replayed_events", static_cast<uint64_t>(buffered.size()));
  rebuild();
  const auto ping_ms = static_cast<uint64_t>(std::chrono::milliseconds(kPingInterval).count());
  ping_timer_.start(loop_, ping_ms, [this] { ping(); }, ping_ms);
  const auto watch_ms = static_cast<uint64_t>(std::chrono::milliseconds(kWatchInterval).count());
  synced_at_ms_ = last_watch_ms_ = uv_now(loop_);
  watch_timer_.start(loop_, watch_ms, [this] { watch(); }, watch_ms);
  if (stalled_in_sync_ms_ >= 0) {
    log::info("docker_relist").kv("reason", "stalled").kv("late_ms", stalled_in_sync_ms_).kv("during", "relist");
    stalled_in_sync_ms_ = -1;
    list();
  }
}

void DockerSource::lost(const std::string& why) {
  if (phase_ == Phase::kStopped) return;
  client_->cancel_all();
  in_flight_.clear();
  waiting_cause_ns_.clear();
  queued_.clear();
  inspect_queue_.clear();
  sync_waiting_.clear();
  buffered_.clear();
  pending_kills_.clear();
  stalled_in_sync_ms_ = -1;  // the reconnect lists anyway
  // dormant_ stays (stopped containers keep their routes and claims): the re-list (all=1)
  // after the reconnect prunes it of the containers removed meanwhile.
  memo_.touch_all();
  splitter_.reset();
  ping_timer_.stop();
  phase_ = Phase::kWaiting;
  if (unreachable_since_.empty()) unreachable_since_ = now_text();
  stale_ = "docker engine " + endpoint_->to_string() + " unreachable since " + unreachable_since_ + " (" + why +
           ")" + (published_ ? "; serving the last good routes" : "");
  log::warn("docker_disconnected")
      .kv("endpoint", endpoint_->to_string())
      .kv("reason", why)
      .kv("retry_in_ms", static_cast<int64_t>(backoff_.count()))
      .kv("serving", published_ ? "last good routes" : "no docker routes yet");
  retry_timer_.start(loop_, static_cast<uint64_t>(backoff_.count()), [this] { connect(); });
  backoff_ = std::min(backoff_ * 2, std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.reconnect_max));
}

void DockerSource::watch() {
  const uint64_t now = uv_now(loop_);
  const auto late = std::chrono::milliseconds(now - last_watch_ms_) - kWatchInterval;
  last_watch_ms_ = now;
  if (phase_ != Phase::kSynced) {
    // A reconnect lists anyway. A relist under way may have its list already, older than what
    // the engine dropped while the process stood still: it lists again when it ends.
    if ((phase_ == Phase::kListing || phase_ == Phase::kInspecting) && late >= kStallLateness)
      stalled_in_sync_ms_ = late.count();
    return;
  }
  const char* relist = late >= kStallLateness                                          ? "stalled"
                       : std::chrono::milliseconds(now - synced_at_ms_) >= kRelistInterval ? "interval"
                                                                                        : nullptr;
  if (!relist) {
    // Containers that got their stop signal stop_signal_timeout ago and are still listed as
    // running: asked again (store() routes one the engine still runs).
    const int64_t due = health_clock_ms() - cfg_.stop_signal_timeout.count();
    for (const auto& [id, c] : cache_)
      if (c.draining && c.draining_since_ms <= due && !in_flight_.count(id)) inspect(id);
    return;
  }
  log::info("docker_relist").kv("reason", relist).kv("late_ms", static_cast<int64_t>(late.count()));
  list();
}

void DockerSource::ping() {
  if (phase_ != Phase::kSynced) return;
  client_->get("/_ping", kPingTimeout, [this](HttpResult r) {
    if (!r.ok() && phase_ == Phase::kSynced) lost("GET /_ping: " + r.describe());
  });
}

// ---- events and inspects ----

bool DockerSource::matters(const std::map<std::string, std::string>& labels) const {
  if (cfg_.exposed_by_default || cfg_.compat.nginx_proxy) return true;
  for (const auto& [key, value] : labels) {
    if (starts_with(key, "berth.")) return true;
    if (cfg_.compat.traefik && starts_with(key, "traefik.")) return true;
  }
  return false;
}

bool DockerSource::duplicate(const DockerEvent& e) {
  std::string key = e.key();
  if (!recent_set_.insert(key).second) return true;
  recent_keys_.push_back(std::move(key));
  if (recent_keys_.size() > kRecentEvents) {
    recent_set_.erase(recent_keys_.front());
    recent_keys_.pop_front();
  }
  return false;
}

void DockerSource::handle_event(const DockerEvent& e) {
  if (e.type != "container" || duplicate(e)) return;
  last_event_ns_ = std::max(last_event_ns_, e.time_nano);
  const std::string& action = e.action;
  const std::string& id = e.id;
  auto flight = in_flight_.find(id);
  const bool tracked = cache_.count(id) || dormant_.count(id) || flight != in_flight_.end() || queued_.count(id);
  if (!tracked && !matters(e.attributes)) return;
  if (starts_with(action, "exec_") || action == "top" || action == "attach" ||
      action == "resize" || action == "archive-path" || action == "extract-to-dir" || action == "export" ||
      action == "commit" || action == "copy" || action == "detach")
    return;
  {
    // Counted by action; the engine's names form a small set, anything else is "other".
    static const char* const kKnown[] = {"create", "start", "restart", "rename", "update", "kill", "die", "stop",
                                         "destroy", "oom", "pause", "unpause", "health_status"};
    const char* counted = "other";
    for (const char* known : kKnown)
      if (action == known) counted = known;
    ++event_counts_[counted];
  }
  memo_.touch(id);  // whatever changes below, only this container's services need a rebuild
  // dirty_ is set only where the cache changes: an event that merely queues an inspect, or
  // repeats what is known, costs no rebuild of the whole set.
  // The answer of an inspect in flight may predate this event. A `start` alone is applied on
  // top of it; anything else asks again.
  if (flight != in_flight_.end() && action != "start") flight->second.stale = true;
  auto it = cache_.find(id);
  ContainerFacts* c = it == cache_.end() ? nullptr : &it->second;
  // An event from before the container's current run (a replay) changes nothing.
  const bool stale_event = c && c->started_at_ns && e.time_nano && e.time_nano < c->started_at_ns;

  if (action == "create") {
    inspect(id);  // not running yet: its facts wait in dormant_ for the start
  } else if (action == "start") {
    bool deferred_to_answer = false;
    if (c) {
      c->running = true;
      c->paused = false;
      c->draining = false;
      c->health = c->has_healthcheck ? "starting" : "";
      dirty_ = true;
    } else if (revive(id, e.time_nano)) {
      dirty_ = true;
    } else {
      // Facts not known yet: routed on the next answer. If its create's inspect is in flight,
      // that answer gets this start applied and is followed by another inspect (on_inspect).
      deferred_to_answer = flight != in_flight_.end() && !flight->second.stale;
      if (deferred_to_answer) flight->second.started_ns = e.time_nano;
      if (event_received_ns_) waiting_cause_ns_.try_emplace(id, event_received_ns_);
    }
    pending_kills_.erase(id);
    // Confirms (and refreshes StartedAt, addresses); publishes only a change.
    if (!deferred_to_answer) inspect(id);
  } else if (action == "restart" || action == "rename" || action == "update") {
    if (event_received_ns_) waiting_cause_ns_.try_emplace(id, event_received_ns_);
    inspect(id);
  } else if (action == "kill") {
    auto signal = parse_signal(e.attribute("signal"));
    if (c && !stale_event) {
      if (signal && (*signal == c->stop_signal || *signal == 9)) {
        if (!c->draining) {
          log::info("docker_instance_draining").kv("container", c->display()).kv("signal", static_cast<int64_t>(*signal));
          dirty_ = true;
          c->draining_since_ms = health_clock_ms();
        }
        c->draining = true;
      }
    } else if (!c && signal) {
      pending_kills_[id] = Kill{e.time_nano, *signal};
    }
  } else if (action == "die" || action == "stop" || action == "destroy" || action == "oom") {
    if (!stale_event && action != "oom") {
      if (c) {
        ContainerFacts facts = std::move(*c);
        cache_.erase(it);
        dirty_ = true;
        if (action != "destroy") keep_dormant(std::move(facts));
      }
      if (action == "destroy") dormant_.erase(id);
      pending_kills_.erase(id);
    }
  } else if (action == "pause") {
    if (c && !stale_event && !c->paused) {
      c->paused = true;
      dirty_ = true;
    }
  } else if (action == "unpause") {
    if (c) {
      c->paused = false;
      if (c->has_healthcheck) {
        // Until the next check passes, as the engine says then; but an engine that took the
        // container over after a restart (live-restore) says `healthy` and sends no event at
        // all: what it says is asked for.
        c->health = "unhealthy";
        inspect(id);
      }
      dirty_ = true;
    }
  } else if (action == "health_status") {
    if (c && !stale_event && c->health != e.detail) {
      c->health = e.detail;
      dirty_ = true;
    }
  }
}

void DockerSource::inspect(const std::string& id) {
  auto flight = in_flight_.find(id);
  if (flight != in_flight_.end()) {
    flight->second.stale = true;
    return;
  }
  if (!queued_.insert(id).second) return;
  inspect_queue_.push_back(id);
  pump_inspects();
}

void DockerSource::pump_inspects() {
  while (in_flight_.size() < kMaxInspectsInFlight && !inspect_queue_.empty()) {
    std::string id = std::move(inspect_queue_.front());
    inspect_queue_.pop_front();
    queued_.erase(id);
    in_flight_[id] = Flight{};
    client_->get(path("/containers/" + id + "/json"), kRequestTimeout,
                 [this, id](HttpResult r) { on_inspect(id, r); });
  }
}

void DockerSource::on_inspect(const std::string& id, const HttpResult& r) {
  auto flight = in_flight_.find(id);
  Flight state = flight != in_flight_.end() ? flight->second : Flight{};
  memo_.touch(id);
  if (flight != in_flight_.end()) in_flight_.erase(flight);
  const bool was_dirty = dirty_;
  bool answered = true;  // this answer settles what waited for it
  if (r.status == 404) {
    if (cache_.erase(id)) dirty_ = true;
    dormant_.erase(id);
    pending_kills_.erase(id);
    sync_waiting_.erase(id);
  } else if (r.status == 0) {
    // No answer at all: the engine is gone. An answer with an error status or an oversized
    // body concerns that container only (below), so it does not end the sync for the others.
    lost("inspect " + id.substr(0, 12) + ": " + r.describe());
    return;
  } else if (state.stale) {
    answered = false;
    inspect(id);  // events arrived while it was answered: ask again, apply that answer
  } else {
    std::string error = r.ok() ? "" : r.describe();
    std::optional<ContainerFacts> facts;
    if (error.empty()) facts = parse_inspect(nlohmann::json::parse(r.body, nullptr, false), &error);
    if (facts) {
      // Asked before a `start` that arrived meanwhile (typically the create's inspect): the
      // facts are current but for the run state, which the event gives.
      const bool start_after = state.started_ns != 0 && !facts->running;
      store(std::move(*facts));
      if (start_after) {
        // Routed now on the host network; off it, the address comes with the next answer.
        if (revive(id, state.started_ns)) dirty_ = true;
        answered = false;
        inspect(id);  // confirms, as after any start
      }
    } else {
      log::warn("docker_inspect_unreadable").kv("container", id.substr(0, 12)).kv("reason", error);
    }
    sync_waiting_.erase(id);
  }
  auto cause = waiting_cause_ns_.find(id);
  if (cause != waiting_cause_ns_.end()) {
    if (dirty_ && !was_dirty && !cause_received_ns_) cause_received_ns_ = cause->second;
    if (answered || dirty_) waiting_cause_ns_.erase(cause);
  }
  pump_inspects();
  if (phase_ == Phase::kInspecting && sync_waiting_.empty()) {
    finish_sync();
  } else if (phase_ == Phase::kSynced && dirty_) {
    dirty_ = false;
    rebuild();
  }
}

void DockerSource::store(ContainerFacts facts) {
  std::string id = facts.id;
  auto kill = pending_kills_.find(id);
  if (kill != pending_kills_.end()) {
    if (kill->second.time_nano >= facts.started_at_ns &&
        (kill->second.signal == facts.stop_signal || kill->second.signal == 9)) {
      facts.draining = true;
      facts.draining_since_ms = health_clock_ms();
    }
    pending_kills_.erase(kill);
  }
  auto it = cache_.find(id);
  auto sleeping = dormant_.find(id);
  // Same labels and addresses as known: keep the revision, so nothing is parsed again.
  const ContainerFacts* known = it != cache_.end() ? &it->second : sleeping != dormant_.end() ? &sleeping->second : nullptr;
  facts.revision = known && same_static_facts(*known, facts) ? known->revision : ++revision_;
  if (!facts.running) {
    if (it != cache_.end()) {
      cache_.erase(it);
      dirty_ = true;
    }
    keep_dormant(std::move(facts));
    return;
  }
  if (sleeping != dormant_.end()) dormant_.erase(sleeping);
  if (it != cache_.end() && it->second.draining && it->second.started_at_ns == facts.started_at_ns) {
    // Still running stop_signal_timeout after its stop signal: the signal did not stop it (a
    // `docker kill -s TERM` its process ignores; `docker stop` would have killed it by now).
    if (health_clock_ms() - it->second.draining_since_ms < cfg_.stop_signal_timeout.count()) {
      facts.draining = true;
      facts.draining_since_ms = it->second.draining_since_ms;
    } else {
      log::warn("docker_instance_drain_ended")
          .kv("container", facts.display())
          .kv("reason", "still running " + std::to_string(cfg_.stop_signal_timeout.count() / 1000) +
                            " s after its stop signal");
    }
  }
  // A confirmation of what an event already applied changes nothing.
  if (it == cache_.end() || it->second.revision != facts.revision || is_routable(it->second) != is_routable(facts) ||
      held_back_reason(it->second) != held_back_reason(facts))
    dirty_ = true;
  cache_[id] = std::move(facts);
}

void DockerSource::keep_dormant(ContainerFacts facts) {
  facts.running = facts.paused = facts.draining = false;
  facts.health.clear();
  if (dormant_.size() >= kMaxDormant && !dormant_.count(facts.id)) {
    memo_.touch(dormant_.begin()->first);
    dormant_.erase(dormant_.begin());
  }
  std::string id = facts.id;
  dormant_[id] = std::move(facts);
}

// A `start` of a container whose facts are known from its create (or its last run): route it
// now. Only for host networking, where the address does not depend on the run; others wait for
// their inspect (their IP is assigned at start).
bool DockerSource::revive(const std::string& id, int64_t started_ns) {
  auto it = dormant_.find(id);
  if (it == dormant_.end() || it->second.network_mode != "host" || options_.use_published_ports) return false;
  ContainerFacts facts = std::move(it->second);
  dormant_.erase(it);
  facts.running = true;
  facts.started_at_ns = started_ns;
  facts.health = facts.has_healthcheck ? "starting" : "";
  cache_[id] = std::move(facts);
  return true;
}

// ---- publication ----

void DockerSource::rebuild() {
  if (phase_ != Phase::kSynced) return;
  dirty_ = false;
  const int64_t now_ms = health_clock_ms();
  DiscoveredSet live = build_discovered_set(std::vector<const ContainerCache*>{&cache_, &dormant_}, options_, &memo_, now_ms);
  if (!published_ || live.rejected != published_->rejected) log_rejections(live);
  live.event_received_ns = cause_received_ns_;
  cause_received_ns_ = 0;
  std::shared_ptr<const DiscoveredSet> out = grace_.apply(std::move(live), now_ms);
  arm_grace_timer();
  if (published_ && same_set(*published_, *out)) return;
  published_ = out;
  if (log::enabled(log::Level::kDebug)) {  // counting is a walk over every service
    size_t endpoints = 0;
    for (const auto& s : out->services) endpoints += s->endpoints.size();
    log::debug("docker_set_changed")
        .kv("routes", static_cast<uint64_t>(out->routes->size()))
        .kv("instances", static_cast<uint64_t>(endpoints))
        .kv("rejected", static_cast<uint64_t>(out->rejected.size()))
        .kv("in_grace", static_cast<uint64_t>(grace_.in_grace()));
  }
  on_update_(std::move(out));
}

void DockerSource::log_rejections(const DiscoveredSet& set) {
  std::map<std::string, std::string> now(set.rejected.begin(), set.rejected.end());
  for (const auto& [container, reason] : now) {
    auto it = logged_rejections_.find(container);
    if (it != logged_rejections_.end() && it->second == reason) continue;
    log::warn("docker_container_rejected").kv("container", container).kv("reason", reason);
  }
  logged_rejections_ = std::move(now);
}

void DockerSource::arm_grace_timer() {
  // Whichever ends first: a held route's grace, or an incumbent's claim keeping a newcomer out
  // (the newcomer is then let in by a full build).
  auto next = grace_.next_expiry();
  const auto claim = memo_.next_claim_expiry();
  if (claim && (!next || *claim < *next)) next = claim;
  if (!next) {
    grace_timer_.stop();
    return;
  }
  const int64_t wait = *next - health_clock_ms();
  uint64_t ms = wait > 0 ? static_cast<uint64_t>(wait) + 1 : 1;
  grace_timer_.start(loop_, ms, [this] {
    if (auto due = memo_.next_claim_expiry(); due && *due <= health_clock_ms()) memo_.touch_all();
    rebuild();
  });
}

}  // namespace berth::discovery
