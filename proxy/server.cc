#include "proxy/server.h"

#include <nlohmann/json.hpp>

#include <thread>

#include "proxy/listen_socket.h"
#include "proxy/log.h"

namespace berth {

Server::Server(std::string config_path, config::Config initial)
    : config_path_(std::move(config_path)), config_(std::move(initial)) {
  uv_loop_init(&loop_);
  loop_.data = this;
}

Server::~Server() {
  workers_.clear();
  uv_loop_close(&loop_);
}

bool Server::open_listeners(std::vector<std::vector<int>>& per_worker_fds) {
  per_worker_fds.assign(worker_count_, {});
  for (const auto& l : config_.listeners) {
    config::SocketAddress addr = l.address;
    for (unsigned w = 0; w < worker_count_; ++w) {
      uint16_t port = 0;
      std::string error;
      int fd = open_listen_socket(addr, true, 4096, port, error);
      if (fd < 0) {
        log::error("listen_failed").kv("listener", addr.to_string()).kv("error", error);
        for (auto& fds : per_worker_fds)
          for (int f : fds) ::close(f);
        return false;
      }
      // Port 0: the first socket picks the port; the other workers join the same port.
      addr.port = port;
      per_worker_fds[w].push_back(fd);
    }
    log::info("listening").kv("listener", addr.to_string()).kv("workers", worker_count_);
  }
  return true;
}

int Server::run() {
  worker_count_ = config_.workers ? config_.workers : std::max(1u, std::thread::hardware_concurrency());
  sources_ = discovery::make_sources(config_);
  discovered_.assign(sources_.size(), {});
  runtime_ = build_runtime();

  std::vector<std::vector<int>> fds;
  if (!open_listeners(fds)) return 1;

  uv_async_init(&loop_, &worker_stopped_async_, [](uv_async_t* a) {
    static_cast<Server*>(a->loop->data)->on_worker_stopped();
  });
  for (unsigned i = 0; i < worker_count_; ++i) {
    workers_.push_back(std::make_unique<Worker>(i, std::move(fds[i]), runtime_, [this](unsigned) {
      workers_stopped_.fetch_add(1);
      uv_async_send(&worker_stopped_async_);
    }));
  }

  if (config_.admin.enabled) {
    admin_ = std::make_unique<AdminServer>(
        &loop_, AdminHandlers{[this] { return routes_json(); }, [this] { return stats_json(); },
                              [this] { return not_ready_reason(); }});
    uint16_t port = 0;
    std::string error;
    if (!admin_->start(config_.admin.address, port, error)) {
      log::error("admin_listen_failed").kv("error", error);
      return 1;
    }
    config::SocketAddress shown = config_.admin.address;
    shown.port = port;
    log::info("admin_listening").kv("address", shown.to_string());
  }

  uv_signal_init(&loop_, &sighup_);
  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_signal_start(&sighup_, on_signal, SIGHUP);
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);

  checker_ = std::make_unique<HealthChecker>(&loop_);
  checker_->update(*runtime_->routes);
  for (auto& w : workers_) w->start();
  for (size_t i = 0; i < sources_.size(); ++i) {
    sources_[i]->start(&loop_, [this, i](std::shared_ptr<const discovery::DiscoveredSet> set) {
      on_discovered(i, std::move(set));
    });
    log::info("discovery_started").kv("source", sources_[i]->name());
  }
  ready_ = true;
  log::info("ready")
      .kv("workers", worker_count_)
      .kv("routes", static_cast<uint64_t>(runtime_->routes->routes().size()))
      .kv("config", config_path_);

  uv_run(&loop_, UV_RUN_DEFAULT);
  for (auto& w : workers_) w->join();
  log::info("stopped");
  return 0;
}

void Server::on_signal(uv_signal_t* s, int signum) {
  auto* self = static_cast<Server*>(s->loop->data);
  if (signum == SIGHUP) self->reload();
  else self->begin_shutdown(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

void Server::reload() {
  if (shutting_down_) return;
  // Reading the file here is fine: this is the control loop, never a worker loop.
  config::LoadResult r = config::load_file(config_path_);
  if (!r.ok()) {
    auto line = log::error("config_reload_failed");
    line.kv("file", config_path_).kv("errors", static_cast<uint64_t>(r.errors.size()));
    if (!r.errors.empty()) line.kv("error", r.errors.front().to_string());
    for (size_t i = 1; i < r.errors.size() && i < 5; ++i) line.kv("error" + std::to_string(i + 1), r.errors[i].to_string());
    line.kv("action", "keeping the running configuration");
    return;
  }
  config::Config next = std::move(*r.config);
  bool listeners_changed = next.listeners.size() != config_.listeners.size();
  for (size_t i = 0; !listeners_changed && i < next.listeners.size(); ++i)
    listeners_changed = next.listeners[i].address.to_string() != config_.listeners[i].address.to_string();
  if (listeners_changed || next.workers != config_.workers ||
      next.admin.address.to_string() != config_.admin.address.to_string())
    log::warn("config_restart_needed")
        .kv("reason", "listeners, workers and the admin address change only on restart");
  // Keep what only a restart can change, take everything else.
  next.listeners = config_.listeners;
  next.workers = config_.workers;
  next.admin = config_.admin;
  config_ = std::move(next);
  ++generation_;
  config_generation_ = generation_;
  generation_event_received_ns_ = 0;
  publish(build_runtime());
  log::info("config_reloaded")
      .kv("generation", generation_)
      .kv("routes", static_cast<uint64_t>(runtime_->routes->routes().size()));
}

std::shared_ptr<const Runtime> Server::build_runtime() {
  if (!static_runtime_ || static_runtime_->generation != config_generation_)
    static_runtime_ = make_runtime(config_, config_generation_);
  auto rt = std::make_shared<Runtime>(*static_runtime_);
  rt->generation = generation_;
  const RouteTable& base = *static_runtime_->routes;
  std::vector<Route> routes = base.routes();
  std::vector<ServicePtr> inputs = base.services();
  for (const auto& set : discovered_) {
    if (!set) continue;
    const uint32_t offset = static_cast<uint32_t>(inputs.size());
    inputs.insert(inputs.end(), set->services.begin(), set->services.end());
    for (Route r : set->routes) {
      r.service += offset;
      routes.push_back(std::move(r));
    }
  }
  // Shared health state (probes, ejections, circuit counts) for every instance, kept across
  // snapshots for instances that stay. A service handed over unchanged is published as the
  // same object as before; the cost per unchanged service is a lookup and two pointer copies.
  auto by_source = [](const SharedService& a, const SharedService& b) { return std::less<>{}(a.from, b.from); };
  std::vector<SharedService> next;
  next.reserve(inputs.size());
  std::vector<ServicePtr> services;
  services.reserve(inputs.size());
  std::vector<Service*> fresh;
  for (ServicePtr& in : inputs) {
    SharedService probe{in.get(), nullptr, nullptr};
    auto it = std::lower_bound(shared_services_.begin(), shared_services_.end(), probe, by_source);
    ServicePtr out;
    if (it != shared_services_.end() && it->from == in.get()) {
      out = it->published;
    } else {
      auto copy = std::make_shared<Service>(*in);
      fresh.push_back(copy.get());
      out = std::move(copy);
    }
    services.push_back(out);
    next.push_back(SharedService{in.get(), std::move(in), std::move(out)});
  }
  std::sort(next.begin(), next.end(), by_source);
  health_.attach(services, fresh);
  shared_services_ = std::move(next);
  rt->routes = RouteTable::build(std::move(routes), std::move(services), generation_);
  return rt;
}

void Server::on_discovered(size_t source_index, std::shared_ptr<const discovery::DiscoveredSet> set) {
  if (shutting_down_) return;
  generation_event_received_ns_ = set ? set->event_received_ns : 0;
  discovered_[source_index] = std::move(set);
  ++generation_;
  publish(build_runtime());
  log::info("routes_updated")
      .kv("source", sources_[source_index]->name())
      .kv("generation", generation_)
      .kv("routes", static_cast<uint64_t>(runtime_->routes->routes().size()));
}

void Server::publish(std::shared_ptr<const Runtime> rt) {
  runtime_ = rt;
  for (auto& w : workers_) w->publish(rt);
  if (checker_) checker_->update(*runtime_->routes);
}

void Server::begin_shutdown(const char* signal_name) {
  if (shutting_down_) return;
  shutting_down_ = true;
  log::info("draining").kv("signal", signal_name).kv("timeout_ms", static_cast<int64_t>(config_.timeouts.drain.count()));
  for (auto& w : workers_) w->drain();
  for (auto& src : sources_) src->stop([] {});
  if (checker_) checker_->stop();
  uv_signal_stop(&sighup_);
}

void Server::on_worker_stopped() {
  if (workers_stopped_.load() < workers_.size()) return;
  if (admin_) admin_->stop();
  uv_walk(&loop_, [](uv_handle_t* h, void*) {
    if (!uv_is_closing(h)) uv_close(h, nullptr);
  }, nullptr);
}

std::string Server::routes_json() const {
  nlohmann::json j = runtime_->routes->to_json_value();
  nlohmann::json rejected = nlohmann::json::array();
  for (const auto& set : discovered_)
    if (set)
      for (const auto& [what, why] : set->rejected) rejected.push_back({{"container", what}, {"reason", why}});
  j["rejected"] = rejected;
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& src : sources_) {
    std::string stale = src->stale_reason();
    sources.push_back({{"name", src->name()}, {"in_sync", stale.empty()}, {"stale_reason", stale}});
  }
  j["discovery"] = sources;
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
  return {};
}

}  // namespace berth
