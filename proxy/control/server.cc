#include "proxy/control/server.h"

#include <signal.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iterator>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <map>
#include <thread>
#include <unordered_set>

#include "discovery/registry/registry.h"
#include "proxy/base/heap_trim.h"
#include "proxy/base/log.h"
#include "proxy/base/time_text.h"
#include "proxy/control/discovered_merge.h"
#include "proxy/control/status_page.h"
#include "proxy/lb/lb.h"
#include "proxy/net/listen_socket.h"

namespace berth {

namespace {
// At the end, how long an open admin connection may still take to be answered.
constexpr uint64_t kAdminFinishMs = 1000;
}  // namespace

Server::Server(std::string config_path, config::Config initial)
    : config_path_(std::move(config_path)), config_(std::move(initial)) {
  uv_loop_init(&loop_);
  loop_.data = this;
}

Server::~Server() {
  workers_.clear();
  acme_.reset();  // joins the ACME thread
  if (uv_loop_close(&loop_) == UV_EBUSY) {
    // Startup failed part way (an address in use), or the run ended with its signal handles
    // still open (on_worker_stopped): close them and let the closes complete, or the loop's own
    // memory is never freed.
    uv_walk(&loop_, [](uv_handle_t* h, void*) {
      if (!uv_is_closing(h)) uv_close(h, nullptr);
    }, nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }
  // The signal handles are closed (libuv gave each signal its default action back) and the
  // process is on its way out: a reload, log reopen or stop sent now must not end it by signal.
  for (int sig : {SIGHUP, SIGUSR1, SIGTERM, SIGINT}) ::signal(sig, SIG_IGN);
}

bool Server::open_listeners(std::vector<std::vector<ListenSocket>>& per_worker) {
  per_worker.assign(worker_count_, {});
  for (const auto& l : config_.listeners) {
    config::SocketAddress addr = l.address;
    for (unsigned w = 0; w < worker_count_; ++w) {
      std::string error = w == 0 && !share_listeners_ ? listening_elsewhere(addr) : std::string();
      const ListenSocket socket = error.empty() ? open_listen_socket(addr, true, 4096, error) : ListenSocket{};
      if (socket.fd < 0) {
        log::error("listen_failed").kv("listener", addr.to_string()).kv("error", error);
        for (auto& sockets : per_worker)
          for (const ListenSocket& s : sockets) ::close(s.fd);
        return false;
      }
      // Port 0: the first socket picks the port; the other workers join the same port.
      addr.port = socket.port;
      per_worker[w].push_back(socket);
    }
    log::info("listening").kv("listener", addr.to_string()).kv("workers", worker_count_);
  }
  return true;
}

int Server::run() {
  worker_count_ = config_.workers ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  sources_ = discovery::make_sources(config_);
  discovery::registry::add_registry_sources(config_, sources_);
  discovered_.assign(sources_.size(), {});
  if (std::string error; !tls_.load(config_.listeners, &error)) {
    log::error("tls_load_failed").kv("error", error);
    return 1;
  }
  runtime_ = build_runtime();
  reserve_service_names(0);
  start_acme();

  if (config_.access_log.enabled) {
    std::string error;
    access_log_ = accesslog::AccessLog::open(config_.access_log, error);
    if (!access_log_) {
      log::error("access_log_open_failed").kv("error", error);
      return 1;
    }
    access_log_->start();
    log::info("access_log")
        .kv("format", config_.access_log.format == config::AccessLog::Format::kJson ? "json" : "combined")
        .kv("path", config_.access_log.path)
        .kv("syslog", config_.access_log.syslog);
  }

  // The admin listener first: a start that fails there (its address taken) must not have joined
  // the proxy listeners' SO_REUSEPORT groups, where a Berth being taken over from serves, and
  // take the connections the kernel queued on its sockets down with it.
  if (config_.admin.enabled) {
    admin_ = std::make_unique<AdminServer>(&loop_);
    register_admin_paths(*admin_);
    uint16_t port = 0;
    std::string error;
    if (!admin_->start(config_.admin.address, share_listeners_, port, error)) {
      log::error("admin_listen_failed").kv("error", error);
      return 1;
    }
    admin_bound_ = config_.admin.address;
    admin_bound_.port = port;
    log::info("admin_listening").kv("address", admin_bound_.to_string());
  }

  std::vector<std::vector<ListenSocket>> listeners;
  if (!open_listeners(listeners)) return 1;

  uv_async_init(&loop_, &worker_stopped_async_, [](uv_async_t* a) {
    static_cast<Server*>(a->loop->data)->on_worker_stopped();
  });
  for (unsigned i = 0; i < worker_count_; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, std::move(listeners[i]), runtime_, [this](unsigned) {
      workers_stopped_.fetch_add(1);
      uv_async_send(&worker_stopped_async_);
    }));
  }
  attach_record_sinks();

  uv_signal_init(&loop_, &sighup_);
  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_signal_start(&sighup_, on_signal, SIGHUP);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_signal_init(&loop_, &sigusr1_);
  uv_signal_start(&sigusr1_, on_signal, SIGUSR1);
  uv_timer_init(&loop_, &reload_timer_);
  // Blocked since main() started (a SIGHUP then would have killed the process): one that came
  // meanwhile is delivered now, to this thread, and handled as the loop runs.
  sigset_t deferred;
  sigemptyset(&deferred);
  sigaddset(&deferred, SIGHUP);
  sigaddset(&deferred, SIGUSR1);
  pthread_sigmask(SIG_UNBLOCK, &deferred, nullptr);

  uv_timer_init(&loop_, &housekeeping_);
  uv_timer_start(&housekeeping_, [](uv_timer_t*) { run_requested_heap_trim(); }, 250, 250);

  checker_ = std::make_unique<HealthChecker>(&loop_);
  checker_->update(*runtime_->routes);
  last_added_.clear();  // the checker has seen them all
  last_removed_.clear();
  for (auto& w : workers_) w->start();
  for (size_t i = 0; i < sources_.size(); ++i) {
    sources_[i]->start(&loop_, [this, i](std::shared_ptr<const discovery::DiscoveredSet> set) {
      on_discovered(i, std::move(set));
    });
    log::info("discovery_started").kv("source", sources_[i]->name());
  }
  observed_epoch_ = health_epoch();
  observed_generation_ = runtime_->generation;
  observed_ = observe_state(*runtime_->routes, health_clock_ms());
  journal_.first_look(observed_);
  journal_.add(wall_clock_ms(), "started",
               {{"generation", static_cast<int64_t>(generation_)},
                {"routes", static_cast<int64_t>(runtime_->routes->routes().size())},
                {"instances", static_cast<int64_t>(observed_.instances.size())}});
  start_tls_watch();
  uv_timer_init(&loop_, &observe_timer_);
  // Every second: changes for the event journal, and access-log drops for Berth's log.
  uv_timer_start(&observe_timer_,
                 [](uv_timer_t* t) {
                   auto* server = static_cast<Server*>(t->loop->data);
                   server->observe_changes();
                   server->first_probes_waiting();  // for its log line
                   if (server->access_log_) server->access_log_->report_drops();
                 },
                 1000, 1000);
  ready_ = true;
  log::info("ready")
      .kv("workers", worker_count_)
      .kv("routes", static_cast<uint64_t>(runtime_->routes->routes().size()))
      .kv("config", config_path_);
  notifier_.ready("serving");

  uv_run(&loop_, UV_RUN_DEFAULT);
  for (auto& w : workers_) w->join();
  // Every worker is gone: the records of the last requests are queued; write them.
  if (access_log_) access_log_->stop();
  log::info("stopped");
  return 0;
}

void Server::on_signal(uv_signal_t* s, int signum) {
  auto* self = static_cast<Server*>(s->loop->data);
  if (signum == SIGHUP) self->queue_reload();
  else if (signum == SIGUSR1) self->reopen_logs();
  else self->begin_shutdown(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

// A burst of SIGHUPs (a config tool signalling once per file it writes) would otherwise run one
// whole reload each, back to back, and the control loop (admin listener, probes) would answer
// nothing until the last. Each reload reads the file as it is then, so one after the burst
// takes everything; the admin listener gets its turn between two reloads.
void Server::queue_reload() {
  if (reload_queued_) return;
  reload_queued_ = true;
  uv_timer_start(&reload_timer_, [](uv_timer_t* t) {
    auto* self = static_cast<Server*>(t->loop->data);
    self->reload_queued_ = false;
    self->reload();
  }, 0, 0);
}

void Server::reopen_logs() {
  log::info("reopening_logs").kv("signal", "SIGUSR1");
  if (access_log_) access_log_->reopen(&loop_);
}

uint64_t Server::access_log_dropped() const { return access_log_ ? access_log_->dropped() : 0; }

void Server::reload() {
  if (shutting_down_) {
    log::info("reload_ignored").kv("reason", "draining");
    return;
  }
  notifier_.reloading();
  // Reading the file here is fine: this is the control loop, never a worker loop.
  config::LoadResult r = config::load_file(config_path_);
  if (!r.ok()) {
    auto line = log::error("config_reload_failed");
    line.kv("file", config_path_).kv("errors", static_cast<uint64_t>(r.errors.size()));
    if (!r.errors.empty()) line.kv("error", r.errors.front().to_string());
    for (size_t i = 1; i < r.errors.size() && i < 5; ++i) line.kv("error" + std::to_string(i + 1), r.errors[i].to_string());
    line.kv("action", "keeping the running configuration");
    ++config_reloads_.error;
    journal_.add(wall_clock_ms(), "config_reloaded",
                 {{"result", "failed"}, {"error", r.errors.empty() ? std::string() : r.errors.front().to_string()}});
    notifier_.ready("serving; reload failed, kept the running configuration");
    return;
  }
  config::Config next = std::move(*r.config);
  // By address: the same listeners in another order are the same sockets (matched below).
  auto addresses = [](const std::vector<config::Listener>& list) {
    std::vector<std::string> out;
    for (const config::Listener& l : list) out.push_back(l.address.to_string());
    return out;
  };
  const std::vector<std::string> running_addresses = addresses(config_.listeners), next_addresses = addresses(next.listeners);
  const bool listeners_changed = running_addresses != next_addresses;
  std::vector<std::string> added, removed;
  {
    std::vector<std::string> a = running_addresses, b = next_addresses;
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(added));
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(removed));
  }
  // Listeners added, removed or moved wait for a restart; the running ones that the file still
  // names (by address) take its settings for them: TLS and certificates, PROXY protocol.
  // The ones it no longer names keep what they serve, their files not read again.
  std::vector<bool> unnamed;
  if (listeners_changed) {
    std::vector<config::Listener> kept = config_.listeners;
    unnamed.assign(kept.size(), true);
    std::vector<bool> taken(next.listeners.size(), false);
    for (size_t i = 0; i < kept.size(); ++i)
      for (size_t j = 0; j < next.listeners.size(); ++j)
        if (!taken[j] && next.listeners[j].address.to_string() == kept[i].address.to_string()) {
          kept[i] = next.listeners[j];
          taken[j] = true;
          unnamed[i] = false;
          break;
        }
    next.listeners = std::move(kept);
  }
  TlsCertificates next_tls;
  if (acme_) next_tls.set_extra(acme_->certificates());
  if (std::string error; !next_tls.load(next.listeners, &error, &tls_, unnamed)) {
    log::error("config_reload_failed")
        .kv("file", config_path_)
        .kv("error", error)
        .kv("action", "keeping the running configuration");
    ++config_reloads_.error;
    journal_.add(wall_clock_ms(), "config_reloaded", {{"result", "failed"}, {"error", error}});
    notifier_.ready("serving; reload failed, kept the running configuration");
    return;
  }
  // What the file changes that only a restart applies: logged, and kept for /api/status and the
  // event until a reload finds the file in line with what runs again.
  std::vector<std::string> restart_needed;
  if (!(next.access_log == config_.access_log)) restart_needed.push_back("access_log changes only on restart");
  // Discovery sources are made at start with their settings (the Docker client, the label
  // policy, the etcd members and lease): a change waits for a restart, said out loud.
  if (!(next.docker == config_.docker) || !(next.registry == config_.registry))
    restart_needed.push_back("docker and registry settings change only on restart");
  if (!(next.acme == config_.acme)) restart_needed.push_back("acme changes only on restart");
  auto joined = [](const std::vector<std::string>& list) {
    std::string out;
    for (const std::string& s : list) out += (out.empty() ? "" : ", ") + s;
    return out;
  };
  if (!added.empty() || !removed.empty()) {
    std::string what = "listeners";
    if (!added.empty()) what += " added (" + joined(added) + ")";
    if (!removed.empty()) what += std::string(added.empty() ? "" : " and") + " removed (" + joined(removed) + ")";
    restart_needed.push_back(what + " change only on restart");
  }
  if (next.workers != config_.workers)
    restart_needed.push_back("workers (" + std::to_string(config_.workers) + " running, " + std::to_string(next.workers) +
                             " in the file) change only on restart");
  if (next.admin.enabled != config_.admin.enabled || next.admin.address.to_string() != config_.admin.address.to_string())
    restart_needed.push_back("the admin listener (address, enabled) changes only on restart");
  for (const std::string& reason : restart_needed) log::warn("config_restart_needed").kv("reason", reason);
  // Keep what only a restart can change, take everything else.
  tls_ = std::move(next_tls);
  start_tls_watch();
  next.workers = config_.workers;
  next.admin = config_.admin;
  next.access_log = config_.access_log;
  next.docker = config_.docker;
  next.registry = config_.registry;
  next.acme = config_.acme;
  config_ = std::move(next);
  upstream_tls_.forget_all();  // contexts made from now on read their files again
  ++config_reloads_.ok;
  ++generation_;
  config_generation_ = generation_;
  generation_event_received_ns_ = 0;
  // Journalled first: the changes the new snapshot brings follow it.
  restart_needed_ = std::move(restart_needed);
  std::string waiting;
  for (const std::string& reason : restart_needed_) waiting += (waiting.empty() ? "" : "; ") + reason;
  if (waiting.empty())
    journal_.add(wall_clock_ms(), "config_reloaded", {{"result", "ok"}, {"generation", static_cast<int64_t>(generation_)}});
  else
    journal_.add(wall_clock_ms(), "config_reloaded",
                 {{"result", "ok"}, {"generation", static_cast<int64_t>(generation_)}, {"restart_needed", waiting}});
  publish(build_runtime());
  reserve_service_names(0);
  log::info("config_reloaded")
      .kv("generation", generation_)
      .kv("routes", static_cast<uint64_t>(runtime_->routes->routes().size()));
  notifier_.ready("serving");
}

std::shared_ptr<const Runtime> Server::build_runtime() {
  const bool config_changed = !static_runtime_ || static_runtime_->generation != config_generation_;
  if (config_changed)
    static_runtime_ = make_runtime(config_, config_generation_, static_runtime_ ? static_runtime_->routes.get() : nullptr);
  auto rt = std::make_shared<Runtime>(*static_runtime_);
  rt->generation = generation_;
  rt->tls = tls_.contexts();
  const RouteTable& base = *static_runtime_->routes;
  // A discovered service whose name the config file or an earlier source has is left out.
  MergedServices merged = merge_services(base.services(), discovered_);
  std::vector<ServicePtr>& inputs = merged.services;
  std::vector<discovery::RouteList> layouts(discovered_.size());
  for (size_t i = 0; i < discovered_.size(); ++i)
    if (discovered_[i]) layouts[i] = discovered_[i]->routes;
  const RouteTable* previous = runtime_ ? runtime_->routes.get() : nullptr;
  const bool same_layout = previous && !config_changed && layouts == built_layouts_ &&
                           merged.index == built_index_ && inputs.size() == published_inputs_.size() &&
                           inputs.size() == previous->services().size();

  // Shared health state (probes, ejections, circuit counts) for every instance, kept across
  // snapshots for instances that stay. A service handed over unchanged is published as the
  // same object as before; only the others are copied (the input stays as the source made it).
  std::vector<ServicePtr> services(inputs.size());
  std::vector<std::shared_ptr<Service>> added;  // still writable: health state is attached below
  std::vector<const Service*> removed;
  // A fresh copy gets its load-balancing table here, once for every worker (their selectors only
  // read it); the object it replaces at its position lends its table when nothing the table
  // depends on changed. Shared objects keep theirs.
  auto fresh_copy = [&](size_t i) {
    auto fresh = std::make_shared<Service>(*inputs[i]);
    const Service* replaced = previous && i < previous->services().size() ? previous->services()[i].get() : nullptr;
    fresh->upstream_tls = upstream_tls_.get(fresh->name, fresh->policy.tls);
    if (fresh->policy.lb.cookie.empty()) fresh->policy.lb.cookie = config::default_sticky_cookie(fresh->name);
    fresh->lb_table = lb_table_for(*fresh, replaced);
    added.push_back(std::move(fresh));
    services[i] = added.back();
  };
  if (same_layout) {
    // Positions are stable: compare each input with the one at its position (pointers only).
    const std::vector<ServicePtr>& before = previous->services();
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i] == published_inputs_[i]) {
        services[i] = before[i];
      } else {
        fresh_copy(i);
        removed.push_back(before[i].get());
      }
    }
  } else {
    // Services may have moved: find each by the object it was made from (published_inputs_
    // lines up with the previous snapshot's services: the build that made it set both).
    std::vector<std::pair<const Service*, size_t>> by_input;
    if (previous) {
      by_input.reserve(published_inputs_.size());
      for (size_t p = 0; p < published_inputs_.size(); ++p) by_input.emplace_back(published_inputs_[p].get(), p);
      std::sort(by_input.begin(), by_input.end());
    }
    std::vector<uint8_t> kept(by_input.size(), 0);
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto it = std::lower_bound(by_input.begin(), by_input.end(), std::pair<const Service*, size_t>{inputs[i].get(), 0});
      if (it != by_input.end() && it->first == inputs[i].get() && !kept[it->second]) {
        kept[it->second] = 1;
        services[i] = previous->services()[it->second];
      } else {
        fresh_copy(i);
      }
    }
    for (size_t p = 0; p < kept.size(); ++p)
      if (!kept[p]) removed.push_back(previous->services()[p].get());
  }
  std::vector<Service*> writable;
  writable.reserve(added.size());
  for (const auto& service : added) writable.push_back(service.get());
  // The journal may look at the changed services alone when this update is the only health
  // change since it last looked: its own epoch bump, and no known instance's state changed.
  const uint64_t epoch_before = health_epoch();
  health_.update(writable, removed);
  const uint64_t epoch_after = health_epoch();
  update_epochs_ = {0, 0};
  if (!health_.changed_known() && epoch_after - epoch_before <= 1) update_epochs_ = {epoch_before, epoch_after};
  last_added_.assign(added.begin(), added.end());
  last_removed_ = std::move(removed);
  last_same_layout_ = same_layout;
  published_inputs_ = std::move(inputs);
  built_layouts_ = std::move(layouts);
  built_index_ = merged.index;  // merge_routes reads it below

  if (same_layout) {
    rt->routes = RouteTable::with_services(*previous, std::move(services), generation_);
    return rt;
  }
  MergedRoutes routes = merge_routes(base.routes(), discovered_, merged, source_names());
  for (const auto& o : routes.left_out)
    if (!std::binary_search(overridden_.begin(), overridden_.end(), o))
      log::warn("discovered_route_refused").kv("source", o.first).kv("reason", o.second);
  overridden_ = std::move(routes.left_out);
  ++route_index_builds_;
  rt->routes = RouteTable::build(std::move(routes.routes), std::move(services), generation_);
  return rt;
}

void Server::on_discovered(size_t source_index, std::shared_ptr<const discovery::DiscoveredSet> set) {
  if (shutting_down_) return;
  generation_event_received_ns_ = set ? set->event_received_ns : 0;
  auto names_of = [](const std::shared_ptr<const discovery::DiscoveredSet>& s) {
    std::vector<std::string_view> names;
    if (s) for (const ServicePtr& service : s->services) names.emplace_back(service->name);
    return names;
  };
  const bool names_changed = source_index + 1 < sources_.size() && names_of(discovered_[source_index]) != names_of(set);
  discovered_[source_index] = std::move(set);
  ++generation_;
  publish(build_runtime());
  // The later sources learn the names now taken (they publish again, if at all, on a later turn).
  if (names_changed) reserve_service_names(source_index + 1);
  log::info("routes_updated")
      .kv("source", sources_[source_index]->name())
      .kv("generation", generation_)
      .kv("routes", static_cast<uint64_t>(runtime_->routes->routes().size()));
}

std::vector<std::string> Server::source_names() const {
  std::vector<std::string> names;
  for (const auto& source : sources_) names.emplace_back(source->name());
  return names;
}

void Server::reserve_service_names(size_t first) {
  const std::vector<std::string> names = source_names();
  for (size_t i = first; i < sources_.size(); ++i)
    sources_[i]->reserve_service_names(
        reserved_service_names(static_runtime_->routes->services(), discovered_, i, names));
}

void Server::publish(std::shared_ptr<const Runtime> rt) {
  // The previous snapshot keeps the services that just left alive until the checker has seen them.
  std::shared_ptr<const Runtime> previous = std::move(runtime_);
  runtime_ = rt;
  for (auto& w : workers_) w->publish(rt);
  if (metrics_) metrics_->on_snapshot(runtime_->routes);
  if (checker_) checker_->update(*runtime_->routes, last_added_, last_removed_);
  update_acme_wanted();
  // Only some services changed, on the snapshot last looked at, with nothing else to see: the
  // journal looks at those services alone.
  bool observed = false;
  if (ready_ && last_same_layout_ && previous && observed_generation_ == previous->generation &&
      update_epochs_.first != 0 && observed_epoch_ == update_epochs_.first && health_epoch() == update_epochs_.second) {
    const int64_t now_ms = health_clock_ms();
    ObservedState before, after;
    if (now_ms < observed_.next_change_ms &&
        observe_changed_services(*runtime_->routes, last_removed_, last_added_, now_ms, observed_, before, after)) {
      record_changes(before, after, wall_clock_ms(), journal_);
      observed_generation_ = runtime_->generation;
      observed_epoch_ = update_epochs_.second;
      observed = true;
    }
  }
  last_added_.clear();
  last_removed_.clear();
  if (ready_ && !observed) observe_changes();
}

void Server::observe_changes() {
  if (!runtime_) return;
  // Nothing to look at when neither the snapshot nor any health state changed and no ejection
  // or grace period ran out: a second's tick then costs nothing, however many instances.
  const uint64_t epoch = health_epoch();
  const int64_t now_ms = health_clock_ms();
  if (runtime_->generation == observed_generation_ && epoch == observed_epoch_ && now_ms < observed_.next_change_ms)
    return;
  ObservedState now = observe_state(*runtime_->routes, now_ms);
  record_changes(observed_, now, wall_clock_ms(), journal_);
  observed_ = std::move(now);
  observed_generation_ = runtime_->generation;
  observed_epoch_ = epoch;
}

int64_t Server::wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Server::begin_shutdown(const char* signal_name) {
  if (shutting_down_) return;
  shutting_down_ = true;
  notifier_.stopping();
  log::info("draining").kv("signal", signal_name).kv("timeout_ms", static_cast<int64_t>(config_.timeouts.drain.count()));
  for (auto& w : workers_) w->drain();
  for (auto& src : sources_) src->stop([] {});
  if (checker_) checker_->stop();
  // SIGHUP stays handled (reload() ignores it now): with no handler it would kill the process and
  // the requests it is finishing. The admin listener goes when another process listens on its
  // address too (a Berth taking over, --share-listeners), so that /readyz and /metrics are the
  // new one's; alone, it stays and /readyz answers 503 while the drain lasts.
  if (admin_ && listening_sockets_on(admin_bound_) > 1) {
    log::info("admin_handed_over").kv("address", admin_bound_.to_string());
    admin_->stop();
  }
  if (ready_) uv_timer_stop(&observe_timer_);
  if (tls_watching_) uv_timer_stop(&tls_watch_);
  if (acme_) acme_->stop();
}

void Server::start_tls_watch() {
  if (tls_watching_ || !tls_.any()) return;
  uv_timer_init(&loop_, &tls_watch_);
  uv_timer_start(&tls_watch_, [](uv_timer_t* t) { static_cast<Server*>(t->loop->data)->watch_tls_files(); }, 1000,
                 1000);
  tls_watching_ = true;
}

void Server::watch_tls_files() {
  if (shutting_down_ || !tls_.poll_files()) return;
  // New handshakes get the new certificates; open connections keep their context.
  ++generation_;
  publish(build_runtime());
}

void Server::start_acme() {
  if (!config_.acme.enabled) return;
  uv_async_init(&loop_, &acme_async_, [](uv_async_t* a) { static_cast<Server*>(a->loop->data)->on_acme_certificates(); });
  acme_ = std::make_unique<acme::AcmeManager>(config_.acme, [this] { uv_async_send(&acme_async_); });
  // Certificates already in storage are served from the first snapshot on: no new order.
  update_acme_wanted();
  if (tls_.set_extra(acme_->certificates())) runtime_ = build_runtime();
  acme_->start();
  log::info("acme_started")
      .kv("directory", config_.acme.directory)
      .kv("challenge", config::acme_challenge_name(config_.acme.challenge))
      .kv("storage", config_.acme.storage);
}

// Every route asking for ACME gives one certificate with all its host names (routes are
// expanded per host in the table; the name and source tie them together).
void Server::update_acme_wanted() {
  if (!runtime_) return;
  if (!acme_) {
    // Config routes cannot get here (acme: true without acme: is refused at load); a label can.
    // Its routes are served as they are (over plain HTTP, or with the listener's certificates).
    std::set<std::string> asking;
    for (const Route& r : runtime_->routes->routes()) {
      if (!r.acme) continue;
      std::string key = r.source + " " + r.name;
      if (!acme_unconfigured_.count(key))
        log::warn("acme_not_configured")
            .kv("route", r.name)
            .kv("source", r.source)
            .kv("host", r.host)
            .kv("reason", "berth.tls.acme asks for a certificate but the config has no acme: section");
      asking.insert(std::move(key));
    }
    acme_unconfigured_ = std::move(asking);
    return;
  }
  std::map<std::pair<std::string, std::string>, std::vector<std::string>> groups;
  for (const Route& r : runtime_->routes->routes()) {
    if (!r.acme) continue;
    std::vector<std::string>& hosts = groups[{r.source, r.name}];
    if (std::find(hosts.begin(), hosts.end(), r.host) == hosts.end()) hosts.push_back(r.host);
  }
  std::vector<std::vector<std::string>> wanted;
  for (auto& [key, hosts] : groups) wanted.push_back(std::move(hosts));
  if (acme_->set_wanted(wanted) && ready_) uv_async_send(&acme_async_);
}

void Server::on_acme_certificates() {
  if (shutting_down_ || !acme_) return;
  if (!tls_.set_extra(acme_->certificates())) return;
  // New handshakes get the new certificates; open connections keep their context.
  ++generation_;
  publish(build_runtime());
}

void Server::on_worker_stopped() {
  if (workers_stopped_.load() < workers_.size()) return;
  // Admin requests already sent get their answers before the loop ends, those queued on the
  // socket too; a silent connection is given a second.
  if (admin_) admin_->stop();
  if (admin_ && admin_->finish(kAdminFinishMs, [this] { on_worker_stopped(); })) return;
  if (acme_) acme_->stop();  // no uv_async_send after the handles close
  // Signal handles stay open, unreferenced (the loop ends without them): closed, a signal would
  // take its default action (end the process) while the access log writes its last records. The
  // destructor closes them.
  uv_walk(&loop_, [](uv_handle_t* h, void*) {
    if (h->type == UV_SIGNAL) uv_unref(h);
    else if (!uv_is_closing(h)) uv_close(h, nullptr);
  }, nullptr);
}

void Server::attach_record_sinks() {
  // With --log-level debug, every exchange leaves an `event=exchange` line.
  if (log::enabled(log::Level::kDebug)) exchange_log_ = std::make_unique<LogRecordSink>();
  record_fanouts_.clear();
  make_metrics();
  for (auto& w : workers_) {
    auto fanout = std::make_unique<RecordFanout>();
    fanout->add(exchange_log_.get());
    if (metrics_) fanout->add(metrics_->sink(w->index()));
    fanout->add(access_log_.get());
    if (fanout->empty()) continue;
    w->set_record_sink(fanout->size() == 1 ? fanout->only() : fanout.get());
    record_fanouts_.push_back(std::move(fanout));
  }
}

void Server::make_metrics() {
  // Metrics are served by the admin listener: on whenever it is.
  if (!config_.admin.enabled) return;
  MetricsInputs in;
  in.routes = [this] { return runtime_ ? runtime_->routes : nullptr; };
  in.generation = [this] { return generation_; };
  in.open_connections = [this] {
    OpenConnections open;
    for (const auto& w : workers_) {
      open.client += w->gauges().connections.load(std::memory_order_relaxed);
      open.upstream += w->gauges().upstream_open.load(std::memory_order_relaxed);
    }
    return open;
  };
  in.config_reloads = [this] { return config_reloads_; };
  in.discovery = [this] {
    DiscoveryStatus d;
    d.configured = !sources_.empty();
    d.connected = true;
    for (const auto& src : sources_) {
      discovery::SourceStats s = src->stats();
      d.connected = d.connected && s.connected;
      for (const auto& [action, n] : s.events) d.events[action] += n;
    }
    return d;
  };
  in.access_log_dropped = [this] { return access_log_dropped(); };
  in.proxy_protocol_rejected = [this] {
    uint64_t n = 0;
    for (const auto& w : workers_) n += w->stats().get(Counter::kProxyProtocolRejected);
    return n;
  };
  in.tls_handshake_errors = [] {
    std::vector<std::pair<std::string, uint64_t>> out;
    for (size_t c = 0; c < static_cast<size_t>(tls::HandshakeError::kCount); ++c) {
      const auto cause = static_cast<tls::HandshakeError>(c);
      out.emplace_back(tls::handshake_error_name(cause), tls::handshake_errors(cause));
    }
    return out;
  };
  in.tls_certificate_not_after = [this] {
    // A name several certificates carry (RSA and ECDSA, several listeners) shows the earliest.
    std::map<std::string, int64_t> earliest;
    for (const auto& ctx : tls_.contexts()) {
      if (!ctx) continue;
      for (const tls::CertificateFacts& cert : ctx->certificates())
        for (const std::string& name : cert.served_for) {
          auto [it, added] = earliest.emplace(name, cert.not_after_unix);
          if (!added) it->second = std::min(it->second, cert.not_after_unix);
        }
    }
    return std::vector<std::pair<std::string, int64_t>>(earliest.begin(), earliest.end());
  };
  metrics_ = std::make_unique<MetricsExporter>(static_cast<unsigned>(workers_.size()), std::move(in));
  // The status page's request and 5xx rates come from the same per-worker counts.
  status_.traffic = [this] { return metrics_->service_traffic(); };
  if (runtime_) metrics_->on_snapshot(runtime_->routes);
}

void Server::register_admin_paths(AdminServer& admin) {
  auto json = [](std::string body) {
    AdminResponse r;
    r.content_type = "application/json";
    r.body = std::move(body) + "\n";
    return r;
  };
  admin.handle("/healthz", [](const AdminRequest&) { return AdminResponse{200, "text/plain; charset=utf-8", "ok\n"}; });
  admin.handle("/readyz", [this](const AdminRequest&) {
    std::string reason = not_ready_reason();
    if (reason.empty()) return AdminResponse{200, "text/plain; charset=utf-8", "ready\n"};
    return AdminResponse{503, "text/plain; charset=utf-8", "not ready: " + reason + "\n"};
  });
  admin.handle("/api/routes", reuse_slow_documents([this, json](const AdminRequest&) { return json(routes_json()); }));
  admin.handle("/api/stats", [this, json](const AdminRequest&) { return json(stats_json()); });
  // The metrics are made once the workers exist, after the admin listener opened (run()).
  admin.handle("/metrics", reuse_slow_documents([this](const AdminRequest&) {
    if (!metrics_) return AdminResponse{404, "text/plain; charset=utf-8", "not found\n"};
    return AdminResponse{200, MetricsExporter::kContentType, metrics_->render()};
  }));
  // Names and hosts come from files and container labels: never fail on bytes that are not UTF-8.
  auto dump = [](const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); };
  admin.handle("/", [](const AdminRequest&) {
    return AdminResponse{200, "text/html; charset=utf-8", std::string(status_page_html())};
  });
  // ?filter=&limit=&order=: answers of their own, never reused for another query (a slow
  // document is reused only for requests without one).
  admin.handle("/api/status", reuse_slow_documents([this, json, dump](const AdminRequest& req) {
    StatusQuery query;
    if (std::string error; !parse_status_query(req.query, query, &error)) {
      AdminResponse r = json(dump({{"error", error}}));
      r.status = 400;
      return r;
    }
    nlohmann::json j = status_.status(*runtime_->routes, health_clock_ms(), query);
    j["discovery"] = discovery_json();
    j["restart_needed"] = restart_needed_;
    j["time"] = rfc3339_ms(wall_clock_ms());
    return json(dump(j));
  }));
  admin.handle("/api/events", [this, json, dump](const AdminRequest& req) {
    uint64_t after = 0;
    // Absent: every event. Present, even empty ("after=", "after"), it must be a number.
    if (const std::optional<std::string> after_text = admin_query_value(req.query, "after")) {
      const auto [end, ec] = std::from_chars(after_text->data(), after_text->data() + after_text->size(), after);
      if (after_text->empty() || ec != std::errc() || end != after_text->data() + after_text->size()) {
        AdminResponse r = json(dump({{"error", "after: expected a sequence number (0, 1, 2, ...)"}}));
        r.status = 400;
        return r;
      }
    }
    return json(dump(journal_.to_json(after)));
  });
  admin.handle("/api/explain", [this, json, dump](const AdminRequest& req) {
    std::string error;
    // header=Name:value may be given more than once.
    std::vector<std::string> headers;
    for (std::string_view rest = req.query; !rest.empty();) {
      std::string_view pair = rest.substr(0, rest.find('&'));
      rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
      if (pair.starts_with("header=")) headers.push_back(admin_query_param(pair, "header"));
    }
    nlohmann::json j = explain_request(*runtime_->routes, admin_query_param(req.query, "host"),
                                       admin_query_param(req.query, "path"), health_clock_ms(), &error,
                                       admin_query_param(req.query, "method"), headers,
                                       &runtime_->http_limits, runtime_->refused_encodings);
    if (!error.empty()) {
      AdminResponse r = json(dump({{"error", error}}));
      r.status = 400;
      return r;
    }
    return json(dump(j));
  });
}

nlohmann::json Server::discovery_json() const {
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& src : sources_) {
    std::string stale = src->stale_reason();
    sources.push_back({{"name", src->name()},
                       {"in_sync", stale.empty()},
                       {"stale_reason", stale},
                       {"degraded_reason", src->degraded_reason()}});
  }
  return sources;
}

std::string Server::routes_json() const {
  nlohmann::json j = runtime_->routes->to_json_value();
  nlohmann::json rejected = nlohmann::json::array();
  for (const auto& set : discovered_)
    if (set)
      for (const auto& [what, why] : set->rejected) rejected.push_back({{"container", what}, {"reason", why}});
  for (const auto& [what, why] : overridden_) rejected.push_back({{"container", what}, {"reason", why}});
  j["rejected"] = rejected;
  j["discovery"] = discovery_json();
  if (acme_) j["acme"] = acme_->status_json();
  if (!acme_unconfigured_.empty()) {
    nlohmann::json asking = nlohmann::json::array();
    for (const Route& r : runtime_->routes->routes())
      if (r.acme) asking.push_back({{"route", r.name}, {"source", r.source}, {"host", r.host}});
    j["acme_not_configured"] = asking;
  }
  // Names, hosts and rejection reasons come from files and container labels: never fail on
  // bytes that are not UTF-8.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Server::stats_json() const {
  nlohmann::json j;
  nlohmann::json counters = nlohmann::json::object();
  for (size_t c = 0; c < static_cast<size_t>(Counter::kCount_); ++c) {
    uint64_t sum = 0;
    for (const auto& w : workers_) sum += w->stats().get(static_cast<Counter>(c));
    counters[std::string(counter_name(static_cast<Counter>(c)))] = sum;
  }
  j["counters"] = counters;
  nlohmann::json workers = nlohmann::json::array();
  for (const auto& w : workers_) {
    workers.push_back({{"index", w->index()},
                       {"connections", w->gauges().connections.load()},
                       {"upstream_idle", w->gauges().upstream_idle.load()},
                       {"generation", w->runtime_generation()},
                       {"applied_at_ns", w->runtime_applied_at_ns()}});
  }
  j["workers"] = workers;
  j["generation"] = generation_;
  j["generation_event_received_ns"] = generation_event_received_ns_;
  // Snapshots that re-indexed the routes; the others (instances coming and going) only
  // swapped service objects.
  j["route_index_builds"] = route_index_builds_;
  if (access_log_)
    j["access_log"] = {{"dropped", access_log_->dropped()}, {"syslog_sent", access_log_->syslog_sent()}};
  return j.dump();
}

std::string Server::not_ready_reason() const {
  if (shutting_down_) return "draining";
  if (!ready_) return "starting";
  for (const auto& w : workers_)
    if (w->runtime_generation() != generation_) return "workers have not applied the latest configuration yet";
  for (const auto& src : sources_) {
    std::string stale = src->stale_reason();
    if (!stale.empty()) return std::string(src->name()) + ": " + stale;
  }
  if (size_t waiting = first_probes_waiting()) return std::to_string(waiting) + " checked instance(s) wait for their first probe";
  return {};
}

// After the start, until each checked instance's first probe has answered (passed, or failed
// once): before, it takes no traffic, and a Berth taking over from another (or joining a load
// balancer's pool) would answer 503 for instances the other serves. Once only: an instance that
// joins later waits alone, as it should. Looked at by /readyz and once a second.
size_t Server::first_probes_waiting() const {
  if (first_probes_answered_ || !ready_) return 0;
  for (const auto& src : sources_)
    if (!src->stale_reason().empty()) return 0;  // its instances are not in the table yet
  size_t waiting = 0, checked = 0;
  for (const ServicePtr& s : runtime_->routes->services())
    for (const Endpoint& e : s->endpoints) {
      if (!e.health) continue;
      const ProbeState p = e.health->probe.load(std::memory_order_relaxed);
      checked += p != ProbeState::kUnchecked;
      waiting += p == ProbeState::kPending && e.health->failed_probes.load(std::memory_order_relaxed) == 0;
    }
  if (waiting == 0) {
    first_probes_answered_ = true;
    if (checked) log::info("first_probes_answered").kv("instances", static_cast<uint64_t>(checked));
  }
  return waiting;
}

}  // namespace berth
