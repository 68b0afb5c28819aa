#include "proxy/health/health_checker.h"

#include <algorithm>
#include <cstring>

#include "proxy/base/clock.h"
#include "proxy/base/log.h"
#include "proxy/http/http_head.h"

namespace berth {

struct HealthChecker::Target {
  std::string endpoint;  // the address, as Endpoint::key
  std::string service;
  config::HealthCheck check;
  std::shared_ptr<EndpointHealth> health;
  sockaddr_storage addr{};
  uv_timer_t timer;
  Probe* probe = nullptr;  // in flight
  uint32_t ok_streak = 0;
  uint32_t fail_streak = 0;
  ProbeState last_state = ProbeState::kPending;
};

struct HealthChecker::Probe {
  Target* target;  // null once the target is gone: the result is dropped
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  uv_timer_t timeout;
  std::string request;
  std::string response;
  int open_handles = 0;
  bool done = false;
  uint64_t due_ms = 0;    // uv_now() when the timeout should fire
  bool extended = false;  // the timeout was moved once for a stalled loop
};

namespace {

using Target = HealthChecker::Target;
using Probe = HealthChecker::Probe;

void on_handle_closed(uv_handle_t* h) {
  auto* p = static_cast<Probe*>(h->data);
  if (--p->open_handles == 0) delete p;
}

void report(Target* t, bool ok, const char* why) {
  EndpointHealth& h = *t->health;
  const ProbeState now = h.probe.load();
  // Changed behind our back (an outlier ejection): count afresh from here.
  if (now != t->last_state) t->ok_streak = t->fail_streak = 0;
  ProbeState next = now;
  if (ok) {
    h.failed_probes.store(0, std::memory_order_relaxed);
  } else {
    h.failed_probes.fetch_add(1, std::memory_order_relaxed);
    h.last_probe_failure.store(why, std::memory_order_relaxed);
    // Ejected, and now failing its probes too: out by its probes from here on (no retry
    // goes to it, and it no longer counts as ejected).
    h.held_by_ejection.store(false, std::memory_order_relaxed);
  }
  if (ok) {
    ++t->ok_streak;
    t->fail_streak = 0;
    // A new instance needs one passing probe; one coming back from unhealthy, healthy_threshold.
    if (now == ProbeState::kPending || (now != ProbeState::kHealthy && t->ok_streak >= t->check.healthy_threshold))
      next = ProbeState::kHealthy;
  } else {
    ++t->fail_streak;
    t->ok_streak = 0;
    if (now == ProbeState::kHealthy && t->fail_streak >= t->check.unhealthy_threshold) next = ProbeState::kUnhealthy;
  }
  if (next != now) {
    // Routable again from here on: slow start ramps it up from this probe.
    if (next == ProbeState::kHealthy) {
      h.routable_since_ms.store(health_clock_ms(), std::memory_order_relaxed);
      h.held_by_ejection.store(false, std::memory_order_relaxed);
    }
    h.probe.store(next);
    bump_health_epoch();
    auto line = next == ProbeState::kHealthy ? log::info("health_changed") : log::warn("health_changed");
    line.kv("service", t->service).kv("endpoint", t->endpoint).kv("from", probe_state_name(now)).kv("to", probe_state_name(next));
    if (!ok) line.kv("reason", why);
  }
  t->last_state = next;
}

void finish(Probe* p, bool ok, const char* why) {
  if (p->done) return;
  p->done = true;
  if (p->target) {
    p->target->probe = nullptr;
    report(p->target, ok, why);
    p->target = nullptr;
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&p->tcp), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->timeout), on_handle_closed);
}

// The probe's response status once its whole head is in: -1 while incomplete, 0 when the head is
// malformed or too large. The head goes through the proxy's own strict response parser, so a
// probe judges an instance's responses as the data path would.
int status_of(const std::string& response) {
  constexpr uint32_t kMaxHead = 16 * 1024;
  const size_t end = http::find_head_end(response.data(), response.size(), 0);
  if (end == 0) return response.size() > kMaxHead ? 0 : -1;
  http::Limits limits;
  limits.max_header_bytes = kMaxHead;
  http::ResponseHead head;
  if (!http::parse_response_head(std::string_view(response.data(), end), limits, false, head).ok()) return 0;
  return head.status;
}

void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* p = static_cast<Probe*>(s->data);
  if (nread > 0) p->response.append(buf->base, static_cast<size_t>(nread));
  delete[] buf->base;
  if (p->done) return;
  const int status = status_of(p->response);
  if (status > 0 && p->target) {
    const bool ok = status >= p->target->check.status_min && status <= p->target->check.status_max;
    finish(p, ok, "status");
  } else if (status == 0) {
    finish(p, false, "bad-response");
  } else if (nread < 0) {
    finish(p, false, "closed");
  }
}

void on_connected(uv_connect_t* req, int status) {
  auto* p = static_cast<Probe*>(req->data);
  if (p->done) return;
  if (status < 0) {
    finish(p, false, "connect-failed");
    return;
  }
  uv_buf_t buf = uv_buf_init(p->request.data(), static_cast<unsigned>(p->request.size()));
  p->write.data = p;
  uv_write(&p->write, reinterpret_cast<uv_stream_t*>(&p->tcp), &buf, 1, [](uv_write_t* w, int st) {
    auto* probe = static_cast<Probe*>(w->data);
    if (st < 0 && !probe->done) finish(probe, false, "write-failed");
  });
  uv_read_start(reinterpret_cast<uv_stream_t*>(&p->tcp),
                [](uv_handle_t*, size_t, uv_buf_t* b) { *b = uv_buf_init(new char[4096], 4096); }, on_read);
}

// A timeout that fires well after it was due means the control loop was held up (a large admin
// document being built, the process stopped or starved): the answer may be waiting in the socket,
// unread. The probe gets the time it lost, once (late_timer_extension), instead of failing a
// healthy instance.
void on_probe_timeout(uv_timer_t* timer) {
  auto* p = static_cast<Probe*>(timer->data);
  if (p->target) {
    const auto timeout_ms = static_cast<uint64_t>(p->target->check.timeout.count());
    if (const uint64_t more = late_timer_extension(p->due_ms, uv_now(timer->loop), timeout_ms, p->extended)) {
      p->extended = true;
      uv_timer_start(timer, on_probe_timeout, more, 0);
      return;
    }
  }
  finish(p, false, "timeout");
}

void start_probe(uv_loop_t* loop, Target* t) {
  auto* p = new Probe();
  p->target = t;
  p->request = "GET " + t->check.path + " HTTP/1.1\r\nHost: " + t->endpoint +
               "\r\nUser-Agent: berth-health-check\r\nConnection: close\r\n\r\n";
  uv_tcp_init(loop, &p->tcp);
  uv_timer_init(loop, &p->timeout);
  p->tcp.data = p->timeout.data = p->connect.data = p;
  p->open_handles = 2;
  t->probe = p;
  const auto timeout_ms = static_cast<uint64_t>(t->check.timeout.count());
  p->due_ms = uv_now(loop) + timeout_ms;
  uv_timer_start(&p->timeout, on_probe_timeout, timeout_ms, 0);
  if (uv_tcp_connect(&p->connect, &p->tcp, reinterpret_cast<const sockaddr*>(&t->addr), on_connected) != 0)
    finish(p, false, "connect-failed");
}

void drop_target(Target* t) {
  if (t->probe) {
    t->probe->target = nullptr;
    finish(t->probe, false, "removed");
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&t->timer), [](uv_handle_t* h) { delete static_cast<Target*>(h->data); });
}

}  // namespace

// stop() must have run while the loop was still running (Server::begin_shutdown); closing
// handles here could touch a loop that is already closed.
HealthChecker::~HealthChecker() = default;

void HealthChecker::update(const RouteTable& routes) {
  if (stopped_) return;
  listed_.clear();
  for (const ServicePtr& shared : routes.services())
    if (shared->policy.health.enabled)
      for (const Endpoint& e : shared->endpoints)
        if (e.health) listed_[HealthRegistry::key_of(shared->name, e.key)].push_back(Listing{shared, &e});
  indexed_ = true;
  std::vector<std::string> keys;
  keys.reserve(targets_.size() + listed_.size());
  for (const auto& [key, target] : targets_) keys.push_back(key);
  for (const auto& [key, listings] : listed_) keys.push_back(key);
  for (const std::string& key : keys) reconcile(key);
}

void HealthChecker::update(const RouteTable& routes, const std::vector<ServicePtr>& added,
                           const std::vector<const Service*>& removed) {
  if (stopped_) return;
  auto checked = [](const Service* s) { return s->policy.health.enabled; };
  const bool any_added = std::any_of(added.begin(), added.end(), [&](const ServicePtr& s) { return checked(s.get()); });
  if (!any_added && std::none_of(removed.begin(), removed.end(), checked)) return;
  if (!indexed_) {
    update(routes);
    return;
  }
  std::vector<std::string> keys;  // touched; may repeat (reconcile() is idempotent)
  for (const Service* s : removed) {
    if (!checked(s)) continue;
    for (const Endpoint& e : s->endpoints) {
      std::string key = HealthRegistry::key_of(s->name, e.key);
      auto it = listed_.find(key);
      if (it == listed_.end()) continue;
      std::erase_if(it->second, [&](const Listing& l) { return l.service.get() == s && l.endpoint == &e; });
      if (it->second.empty()) listed_.erase(it);
      keys.push_back(std::move(key));
    }
  }
  for (const ServicePtr& shared : added) {
    if (!checked(shared.get())) continue;
    for (const Endpoint& e : shared->endpoints) {
      if (!e.health) continue;
      std::string key = HealthRegistry::key_of(shared->name, e.key);
      std::vector<Listing>& listings = listed_[key];
      const bool known = std::any_of(listings.begin(), listings.end(),
                                     [&](const Listing& l) { return l.endpoint == &e; });
      if (!known) listings.push_back(Listing{shared, &e});  // a service listed twice counts once
      keys.push_back(std::move(key));
    }
  }
  for (const std::string& key : keys) reconcile(key);
}

void HealthChecker::reconcile(const std::string& key) {
  auto w = listed_.find(key);
  auto t = targets_.find(key);
  if (t != targets_.end()) {
    if (w != listed_.end() && w->second.front().service->policy.health == t->second->check &&
        w->second.front().endpoint->health == t->second->health)
      return;
    drop_target(t->second);
    targets_.erase(t);
  }
  if (w != listed_.end()) start_target(key, w->second.front());
}

void HealthChecker::start_target(const std::string& key, const Listing& listing) {
  auto* t = new Target();
  t->endpoint = listing.endpoint->key;
  t->service = listing.service->name;
  t->check = listing.service->policy.health;
  t->health = listing.endpoint->health;
  t->addr = listing.endpoint->addr;
  t->last_state = t->health->probe.load();
  if (t->check.port) {
    if (t->addr.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&t->addr)->sin6_port = htons(t->check.port);
    else reinterpret_cast<sockaddr_in*>(&t->addr)->sin_port = htons(t->check.port);
  }
  uv_timer_init(loop_, &t->timer);
  t->timer.data = t;
  // First probe at once, then every interval (a probe still in flight skips a turn).
  uv_timer_start(&t->timer, [](uv_timer_t* timer) {
    auto* target = static_cast<Target*>(timer->data);
    if (!target->probe) start_probe(timer->loop, target);
  }, 0, static_cast<uint64_t>(t->check.interval.count()));
  targets_.emplace(key, t);
}

const config::HealthCheck* HealthChecker::check_of(const std::string& service, const std::string& endpoint) const {
  auto it = targets_.find(HealthRegistry::key_of(service, endpoint));
  return it == targets_.end() ? nullptr : &it->second->check;
}

void HealthChecker::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& [key, t] : targets_) drop_target(t);
  targets_.clear();
  listed_.clear();
}

}  // namespace berth
