// Many hosts with real parts (issue 14 §3): three "hosts", each a network namespace made by the
// test (scripts/netns-lab.sh: a veth to a bridge in a "core" namespace, 10.213.0.11..13) with its
// own dockerd and a sidecar Berth; a 3-member etcd cluster and two front doors in the core
// namespace. Every packet stays on loopback or inside those namespaces: the root namespace gets
// no interface and no address.
//
// The test thread runs in the core namespace (setns(2)); a process spawned by a thread starts in
// that thread's namespace, so sidecars and dockerds are spawned from a thread switched into
// their host's namespace for the moment, and a sidecar's admin API is read the same way.
//
// If a part cannot start (ip netns, dockerd, etcd, Berth) the test FAILS with the reason.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "engine.h"
#include "load.h"

using namespace dk;
using it::Clock;

namespace {

constexpr int kHosts = 3;
constexpr int kLeaseTtl = 3;  // seconds: sidecar leases
const std::string kLabScript = std::string(BERTH_SOURCE_DIR) + "/scripts/netns-lab.sh";
const std::string kCoreIp = "10.213.0.1";
const std::string kImage = "bb:local";
constexpr uint16_t kPortV1 = 18080, kPortV2 = 18081, kPortExtra = 18090, kPortLate1 = 18091, kPortLate2 = 18092;

std::string host_ip(int i) { return "10.213.0." + std::to_string(10 + i); }
std::string host_addr(int i, uint16_t port) { return host_ip(i) + ":" + std::to_string(port); }

double ms_since(Clock::time_point t0) { return it::seconds_since(t0) * 1000.0; }

// Moves the calling thread into a network namespace (an open /var/run/netns/NAME); back into the
// one it was in at the end of the scope.
class InNetns {
 public:
  explicit InNetns(int ns_fd) : back_(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (back_ < 0) error_ = std::string("open /proc/thread-self/ns/net: ") + std::strerror(errno);
    else if (::setns(ns_fd, CLONE_NEWNET) != 0) error_ = std::string("setns: ") + std::strerror(errno);
  }
  ~InNetns() {
    if (back_ < 0) return;
    if (error_.empty() && ::setns(back_, CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "many-hosts: cannot return to the previous network namespace: %s\n", std::strerror(errno));
      std::abort();  // going on in the wrong namespace could send packets where they must not go
    }
    ::close(back_);
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  int back_;
  std::string error_;
};

// The namespaces, one dockerd per host namespace; all torn down by the destructor, whatever
// happened (dockerd-local.sh purge signals only the dockerd of its own directory).
class Lab {
 public:
  Lab() : tag_("berth-mh-" + std::to_string(::getpid())) {
    CmdResult up = run_command({"/bin/sh", kLabScript, "up", tag_, std::to_string(kHosts)}, 60s);
    made_ = true;  // even a half-made lab is taken down
    if (!up.ok()) {
      error_ = "scripts/netns-lab.sh up failed (needs root and iproute2): " + up.text();
      return;
    }
    core_fd_ = open_ns(tag_ + "-core");
    for (int i = 1; i <= kHosts; ++i) host_fd_[i] = open_ns(tag_ + "-h" + std::to_string(i));
    if (!error_.empty()) return;
    // The engines start in parallel, each from a thread inside its host's namespace.
    std::string errors[kHosts + 1];
    std::vector<std::thread> threads;
    for (int i = 1; i <= kHosts; ++i) {
      char templ[] = "/tmp/berth-mh-dk-XXXXXX";
      if (::mkdtemp(templ) == nullptr) {
        error_ = std::string("mkdtemp: ") + std::strerror(errno);
        return;
      }
      dir_[i] = templ;
    }
    for (int i = 1; i <= kHosts; ++i) {
      threads.emplace_back([this, i, &errors] {
        InNetns in(host_fd_[i]);
        if (!in.ok()) {
          errors[i] = in.error();
          return;
        }
        CmdResult started = run_command({"/bin/sh", dockerd_script(), "start", dir_[i]}, 90s);
        if (!started.ok()) {
          errors[i] = "dockerd-local.sh start failed (needs root, docker.io, busybox-static): " + started.text() +
                      "\nlog:\n" + it::tail(it::read_file(dir_[i] + "/log"), 2000);
          return;
        }
        CmdResult image = run_command(
            {"/usr/bin/env", "DOCKER_HOST=" + docker_host(i), "/bin/sh", dockerd_script(), "image", dir_[i], kImage},
            120s);
        if (!image.ok()) errors[i] = "could not import the test image: " + image.text();
      });
    }
    for (auto& t : threads) t.join();
    for (int i = 1; i <= kHosts; ++i)
      if (!errors[i].empty()) error_ += "host " + std::to_string(i) + ": " + errors[i] + "\n";
  }
  ~Lab() {
    for (int i = 1; i <= kHosts; ++i) {
      if (dir_[i].empty()) continue;
      CmdResult purged = run_command({"/bin/sh", dockerd_script(), "purge", dir_[i]}, 180s);
      if (!purged.ok()) std::fprintf(stderr, "many-hosts: purge of %s failed: %s\n", dir_[i].c_str(), purged.text().c_str());
    }
    for (int& fd : host_fd_)
      if (fd >= 0) ::close(fd);
    if (core_fd_ >= 0) ::close(core_fd_);
    if (made_) {
      CmdResult down = run_command({"/bin/sh", kLabScript, "down", tag_}, 60s);
      if (!down.ok()) std::fprintf(stderr, "many-hosts: netns-lab.sh down %s failed: %s\n", tag_.c_str(), down.text().c_str());
    }
  }
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& tag() const { return tag_; }
  int core_fd() const { return core_fd_; }
  int host_fd(int i) const { return host_fd_[i]; }
  std::string docker_host(int i) const { return "unix://" + dir_[i] + "/docker.sock"; }
  std::string engine_log(int i) const { return it::tail(it::read_file(dir_[i] + "/log"), 2000); }
  CmdResult docker(int i, const std::vector<std::string>& args) const { return docker_at(docker_host(i), args, 120s); }
  // Host i's veth, both ends.
  bool link(int i, bool up) const {
    return run_command({"/bin/sh", kLabScript, "link", tag_, std::to_string(i), up ? "up" : "down"}, 30s).ok();
  }

 private:
  int open_ns(const std::string& name) {
    int fd = ::open(("/var/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) error_ += "open /var/run/netns/" + name + ": " + std::strerror(errno) + "\n";
    return fd;
  }

  std::string tag_;
  bool made_ = false;
  std::string error_;
  int core_fd_ = -1;
  int host_fd_[kHosts + 1] = {-1, -1, -1, -1};
  std::string dir_[kHosts + 1];
};

// One member of the 3-member cluster, in the core namespace: clients on 10.213.0.1 (what Berth
// uses) and on the core's 127.0.0.1 (for the test's own health probes).
class EtcdMember {
 public:
  EtcdMember(int index, const std::string& dir) : index_(index), dir_(dir) {}
  ~EtcdMember() { kill(); }  // SIGKILL: a SIGTERM of a member waits for a leadership transfer

  static uint16_t client_port(int index) { return static_cast<uint16_t>(2279 + 100 * index); }
  static uint16_t peer_port(int index) { return static_cast<uint16_t>(2280 + 100 * index); }
  static std::string name(int index) { return "m" + std::to_string(index); }
  static std::string url(int index) { return "http://" + kCoreIp + ":" + std::to_string(client_port(index)); }
  static std::string peer_url(int index) { return "http://" + kCoreIp + ":" + std::to_string(peer_port(index)); }

  // Starts the member (its data dir is kept across restarts).
  std::string start() {
    std::string etcd = it::find_in_path("etcd");
    if (etcd.empty())
      return "etcd not found in PATH: install the Debian packages etcd-server and etcd-client "
             "(scripts/install-deps.sh --docker)";
    std::string cluster;
    for (int m = 1; m <= 3; ++m) cluster += (m > 1 ? "," : "") + name(m) + "=" + peer_url(m);
    ++runs_;
    std::string clients = url(index_) + ",http://127.0.0.1:" + std::to_string(client_port(index_));
    proc_ = it::Process({etcd, "--name", name(index_), "--data-dir", dir_ + "/" + name(index_) + ".etcd",
                         "--listen-client-urls", clients, "--advertise-client-urls", url(index_),
                         "--listen-peer-urls", peer_url(index_), "--initial-advertise-peer-urls", peer_url(index_),
                         "--initial-cluster", cluster, "--initial-cluster-token", "berth-many-hosts",
                         "--initial-cluster-state", "new"},
                        dir_ + "/" + name(index_) + ".out" + std::to_string(runs_),
                        dir_ + "/" + name(index_) + ".err" + std::to_string(runs_));
    if (!proc_.started()) return "cannot start etcd: " + proc_.spawn_error();
    return {};
  }
  bool healthy() { return proc_.running() && it::http_get(client_port(index_), "/health", "127.0.0.1").status == 200; }
  void kill() {
    if (proc_.signal(SIGKILL)) proc_.wait_exit(10s);
  }
  std::string log() const { return it::tail(proc_.err(), 1500); }

 private:
  int index_;
  std::string dir_;
  it::Process proc_;
  int runs_ = 0;
};

std::string etcd_list() {
  std::string s;
  for (int m = 1; m <= 3; ++m) s += (m > 1 ? ", " : "") + std::string("\"") + EtcdMember::url(m) + "\"";
  return "[" + s + "]";
}

std::string front_yaml() {
  return "listeners: [\"127.0.0.1:0\"]\nworkers: 2\nadmin: {address: \"127.0.0.1:0\"}\n"
         "timeouts: {upstream_connect: 500ms, upstream_response: 3s}\n"
         "registry: {etcd: " + etcd_list() + ", role: front, service_policy: {retry: {on_response_timeout: true}}}\n";
}

std::string sidecar_yaml(const Lab& lab, int i) {
  return "listeners: [\"127.0.0.1:0\"]\nworkers: 1\nadmin: {address: \"127.0.0.1:0\"}\n"
         "timeouts: {upstream_connect: 500ms, upstream_response: 10s}\n"
         "docker: {enabled: true, endpoint: \"" + lab.docker_host(i) + "\", empty_route_grace: 1s, reconnect_max: 1s}\n"
         "registry: {etcd: " + etcd_list() + ", role: sidecar, host_id: h" + std::to_string(i) +
         ", advertise_address: " + host_ip(i) + ", lease_ttl: " + std::to_string(kLeaseTtl) + "s}\n";
}

// Load from the core namespace (where the front door listens): 2 threads until finish(), 200,000
// requests or 120 s, whichever comes first.
LoadOptions core_load(int core_fd) {
  LoadOptions o;
  o.max_requests = 200'000;
  o.max_time = 120s;
  o.thread_setup = [core_fd](std::string* error) -> std::shared_ptr<void> {
    auto in = std::make_shared<InNetns>(core_fd);
    if (in->ok()) return in;
    *error = in->error();
    return nullptr;
  };
  return o;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// The endpoints of web.mh.test, sorted.
std::vector<std::string> web_endpoints(const nlohmann::json& routes) {
  auto eps = endpoints_for(routes, "web.mh.test");
  std::sort(eps.begin(), eps.end());
  return eps;
}

// /api/routes without what differs between two front doors serving the same table: the
// snapshot generation and per-instance live state (requests in flight, ejection).
nlohmann::json comparable(nlohmann::json routes) {
  if (!routes.is_object()) return routes;
  routes.erase("generation");
  if (routes.contains("services"))
    for (auto& s : routes["services"])
      for (auto& e : s["endpoints"]) {
        e.erase("in_flight");
        e.erase("ejected");
      }
  return routes;
}

WebOptions web_options(const std::string& host, const std::string& service, uint16_t port, bool healthcheck,
                       int drain_seconds) {
  WebOptions o;
  o.labels = {{"berth.enable", "true"}, {"berth.host", host}, {"berth.service", service},
              {"berth.port", std::to_string(port)}};
  o.healthcheck = healthcheck;
  o.drain_seconds = drain_seconds;
  return o;
}

}  // namespace

TEST_CASE("docker: many hosts: 3 network namespaces with a dockerd and a sidecar each, 3-member etcd, two front doors",
          "[docker][many-hosts][slow]") {
  const auto t_start = Clock::now();
  Lab lab;
  INFO("lab " << lab.tag());
  INFO(lab.error());
  REQUIRE(lab.ok());
  InNetns in_core(lab.core_fd());
  INFO(in_core.error());
  REQUIRE(in_core.ok());
  // Reads a sidecar's admin API from inside its host's namespace.
  auto in_host = [&](int i, const std::function<void()>& fn) {
    InNetns in(lab.host_fd(i));
    REQUIRE(in.ok());
    fn();
  };

  // ---- etcd: 3 members started together (a lone member of a new cluster never answers).
  it::TempDir etcd_dir;
  std::vector<std::unique_ptr<EtcdMember>> etcd;
  for (int m = 1; m <= 3; ++m) etcd.push_back(std::make_unique<EtcdMember>(m, etcd_dir.path()));
  for (auto& member : etcd) {
    std::string error = member->start();
    INFO(error);
    REQUIRE(error.empty());
  }
  auto all_healthy = [&] {
    return std::all_of(etcd.begin(), etcd.end(), [](auto& m) { return m->healthy(); });
  };
  {
    bool healthy = it::wait_until(all_healthy, 20s, 50ms);
    INFO("etcd logs:\n" << etcd[0]->log() << "\n" << etcd[1]->log() << "\n" << etcd[2]->log());
    REQUIRE(healthy);
  }
  const double setup_s = it::seconds_since(t_start);

  // ---- Berth: two front doors here in the core, one sidecar per host namespace.
  it::Berth front(front_yaml());
  INFO(front.error());
  REQUIRE(front.ok());
  it::Berth front2(front_yaml());
  INFO(front2.error());
  REQUIRE(front2.ok());
  std::unique_ptr<it::Berth> sidecar[kHosts + 1];
  for (int i = 1; i <= kHosts; ++i) {
    in_host(i, [&] { sidecar[i] = std::make_unique<it::Berth>(sidecar_yaml(lab, i)); });
    INFO("sidecar h" << i << ": " << sidecar[i]->error());
    REQUIRE(sidecar[i]->ok());
  }
  // Recent log lines of every Berth, for failure messages (read where it is used).
  auto logs = [&] {
    std::string s = "--- front door 1:\n" + it::tail(front.log(), 2500) + "\n--- front door 2:\n" +
                    it::tail(front2.log(), 1500);
    for (int i = 1; i <= kHosts; ++i)
      if (sidecar[i]) s += "\n--- sidecar h" + std::to_string(i) + ":\n" + it::tail(sidecar[i]->log(), 1500);
    return s;
  };
  for (int i = 1; i <= kHosts; ++i) {
    bool publishing = it::wait_until(
        [&] { return sidecar[i]->log().find("event=registry_publishing") != std::string::npos; }, 20s);
    INFO("sidecar h" << i << " log:\n" << it::tail(sidecar[i]->log()));
    REQUIRE(publishing);
  }
  for (it::Berth* f : {&front, &front2}) {
    bool synced = it::wait_until([&] { return f->log().find("event=registry_synced") != std::string::npos; }, 20s);
    INFO(it::tail(f->log()));
    REQUIRE(synced);
  }

  // ---- Containers started on each host appear at the front door.
  for (int i = 1; i <= kHosts; ++i) {
    CmdResult run = lab.docker(i, web_run_args_at(kImage, "0.0.0.0", "web-v1", kPortV1, "h" + std::to_string(i) + "-v1",
                                                  web_options("web.mh.test", "web", kPortV1, true, 3)));
    INFO("docker run on host " << i << ": " << run.text() << "\nengine log:\n" << lab.engine_log(i));
    REQUIRE(run.ok());
  }
  REQUIRE(lab.docker(3, web_run_args_at(kImage, "0.0.0.0", "extra", kPortExtra, "h3-extra",
                                        web_options("extra.mh.test", "extra", kPortExtra, false, -1)))
              .ok());
  const std::vector<std::string> all_v1 = {host_addr(1, kPortV1), host_addr(2, kPortV1), host_addr(3, kPortV1)};
  for (it::Berth* f : {&front, &front2}) {
    nlohmann::json last;
    bool all_there = wait_routes(
        f->admin_port(),
        [&](const nlohmann::json& t) { return web_endpoints(t) == all_v1 && has_route(t, "extra.mh.test"); }, 30s,
        &last);
    INFO("routes: " << last.dump());
    INFO(logs());
    REQUIRE(all_there);
  }
  {
    std::set<std::string> seen;
    for (int n = 0; n < 60 && seen.size() < 3; ++n) {
      it::Response r = get(front.port(), "web.mh.test");
      if (r.status == 200) seen.insert(r.body);
    }
    CHECK(seen == std::set<std::string>{"h1-v1\n", "h2-v1\n", "h3-v1\n"});
    it::Response extra = get(front.port(), "extra.mh.test");
    CHECK(extra.status == 200);
    CHECK(extra.body == "h3-extra\n");
  }

  // ---- A rolling deploy across the hosts under continuous load. On host 2 the `docker stop`
  // must drain at the kill event: the old instance leaves the sidecar and the front door while
  // the container still serves (it keeps serving 3 s after SIGTERM).
  double drain_front_ms = -1, drain_sidecar_ms = -1;
  {
    Load load(front.port(), "web.mh.test", core_load(lab.core_fd()));
    for (int i = 1; i <= kHosts; ++i) {
      REQUIRE(lab.docker(i, web_run_args_at(kImage, "0.0.0.0", "web-v2", kPortV2, "h" + std::to_string(i) + "-v2",
                                            web_options("web.mh.test", "web", kPortV2, true, 3)))
                  .ok());
      nlohmann::json last;
      bool routed = wait_routes(
          front.admin_port(), [&](const nlohmann::json& t) { return contains(web_endpoints(t), host_addr(i, kPortV2)); },
          30s, &last);
      INFO("host " << i << ": routes " << last.dump());
      INFO(logs());
      REQUIRE(routed);

      std::atomic<bool> stop_returned{false};
      CmdResult stopped;
      const auto t_stop = Clock::now();
      std::thread stopper([&] {
        stopped = lab.docker(i, {"stop", "-t", "10", "web-v1"});
        stop_returned = true;
      });
      // Poll the front door and the host's own sidecar (from inside its namespace) until the
      // old instance is gone from each: when, and was the container still draining then?
      double front_ms = -1, sidecar_ms = -1;
      bool front_while_serving = false, sidecar_while_serving = false;
      const std::string local_v1 = "127.0.0.1:" + std::to_string(kPortV1);
      it::wait_until(
          [&] {
            if (front_ms < 0 && !contains(web_endpoints(routes(front.admin_port())), host_addr(i, kPortV1))) {
              front_ms = ms_since(t_stop);
              front_while_serving = !stop_returned;
            }
            if (sidecar_ms < 0) {
              InNetns in(lab.host_fd(i));
              if (in.ok() && !contains(web_endpoints(routes(sidecar[i]->admin_port())), local_v1)) {
                sidecar_ms = ms_since(t_stop);
                sidecar_while_serving = !stop_returned;
              }
            }
            return front_ms >= 0 && sidecar_ms >= 0;
          },
          10s, 5ms);
      const bool left_front = front_ms >= 0, left_sidecar = sidecar_ms >= 0;
      stopper.join();
      INFO("docker stop on host " << i << ": " << stopped.text());
      INFO(logs());
      CHECK(stopped.ok());
      // Both dropped it at the kill event, before the container finished draining.
      CHECK(left_front);
      CHECK(left_sidecar);
      CHECK(front_while_serving);
      CHECK(sidecar_while_serving);
      CHECK(front_ms < 2500);
      if (i == 2) {
        drain_front_ms = front_ms;
        drain_sidecar_ms = sidecar_ms;
      }
    }
    const std::vector<std::string> all_v2 = {host_addr(1, kPortV2), host_addr(2, kPortV2), host_addr(3, kPortV2)};
    CHECK(wait_routes(front.admin_port(), [&](const nlohmann::json& t) { return web_endpoints(t) == all_v2; }, 10s));
    it::wait_until([] { return false; }, 300ms);
    load.finish();
    auto statuses = load.statuses();
    INFO("rolling deploy load: " << load.summary());
    INFO(logs());
    CHECK(statuses.size() == 1);
    CHECK(statuses[200] == load.total());
    CHECK(load.total() > 50);
    auto bodies = load.bodies();
    for (int i = 1; i <= kHosts; ++i) {
      CHECK(bodies["h" + std::to_string(i) + "-v1\n"] > 0);
      CHECK(bodies["h" + std::to_string(i) + "-v2\n"] > 0);
    }
    WARN("rolling deploy over 3 hosts: " << load.total() << " requests through the front door, all 200; "
                                         << "docker stop on host 2 (the app drains 3 s) -> gone at its sidecar after "
                                         << drain_sidecar_ms << " ms, at the front door after " << drain_front_ms
                                         << " ms");
  }

  // ---- Host 2 dies: its sidecar SIGKILLed, its link down. Its instances leave the front door
  // within lease_ttl (+ etcd's expiry lag); meanwhile every GET succeeds: connect timeouts are
  // retried on another instance, outlier detection ejects, and a GET already sent to host 2 when
  // its link went down (no answer coming) is retried elsewhere after upstream_response
  // (registry.service_policy: retry.on_response_timeout).
  double host_gone_ms = -1;
  {
    Load load(front.port(), "web.mh.test", core_load(lab.core_fd()));
    it::wait_until([] { return false; }, 500ms);
    const auto t_kill = Clock::now();
    REQUIRE(sidecar[2]->process().signal(SIGKILL));
    REQUIRE(lab.link(2, false));
    const auto t_down = Clock::now();  // the link is down by now
    const std::vector<std::string> survivors = {host_addr(1, kPortV2), host_addr(3, kPortV2)};
    nlohmann::json last;
    bool gone = wait_routes(
        front.admin_port(), [&](const nlohmann::json& t) { return web_endpoints(t) == survivors; },
        std::chrono::seconds(kLeaseTtl + 10), &last);
    host_gone_ms = ms_since(t_kill);
    INFO("routes: " << last.dump());
    CHECK(gone);
    // Within lease_ttl, plus etcd's expiry lag (leases expire 0.2-0.5 s late) and a margin.
    CHECK(host_gone_ms < kLeaseTtl * 1000 + 1500);
    // Past the upstream_response of a GET caught in flight, and some more load.
    it::wait_until([] { return false; }, 3500ms);
    load.finish();
    INFO("load while host 2 died: " << load.summary());
    INFO(logs());
    long in_flight_at_kill = 0;  // failed GETs sent before the link was down
    std::string failed;
    for (const Load::Failure& f : load.failure_records()) {
      in_flight_at_kill += f.sent < t_down;
      failed += "\nGET sent " +
                std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(f.sent - t_down).count()) +
                " ms after the link was down: " + f.text;
    }
    INFO("failed GETs:" << failed);
    CHECK(load.failure_records().empty());
    CHECK(load.total() > 20);
    CHECK(wait_routes(front2.admin_port(), [&](const nlohmann::json& t) { return web_endpoints(t) == survivors; }, 10s));
    WARN("host 2 killed (lease_ttl " << kLeaseTtl << " s): its instances left the front door after " << host_gone_ms
                                     << " ms; " << load.total() << " GETs meanwhile: " << load.statuses()[200]
                                     << " x 200, " << load.failure_records().size() << " failed (" << in_flight_at_kill
                                     << " of them sent before the link was down, "
                                     << std::chrono::duration_cast<std::chrono::milliseconds>(t_down - t_kill).count()
                                     << " ms after the SIGKILL)");
  }

  // ---- One etcd member dies: both sidecars and front doors carry on with the others. It is
  // the first of every Berth's list, the one the front doors watch: their watches move on.
  auto count = [](const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  };
  const size_t resynced_before[2] = {count(front.log(), "event=registry_resynced"),
                                     count(front2.log(), "event=registry_resynced")};
  etcd[0]->kill();
  const auto t_member = Clock::now();
  REQUIRE(lab.docker(1, web_run_args_at(kImage, "0.0.0.0", "late1", kPortLate1, "h1-late1",
                                        web_options("late1.mh.test", "late1", kPortLate1, false, -1)))
              .ok());
  for (it::Berth* f : {&front, &front2}) {
    nlohmann::json last;
    bool routed = wait_routes(f->admin_port(), [&](const nlohmann::json& t) { return has_route(t, "late1.mh.test"); },
                              20s, &last);
    INFO("routes: " << last.dump());
    INFO(logs());
    CHECK(routed);
    CHECK(it::wait_until([&] { return it::http_get(f->admin_port(), "/readyz", "127.0.0.1").status == 200; }, 20s));
  }
  const double member_ms = ms_since(t_member);
  for (int f = 0; f < 2; ++f) {
    it::Berth& door = f == 0 ? front : front2;
    INFO("front door " << f + 1 << ":\n" << it::tail(door.log(), 2500));
    CHECK(it::wait_until([&] { return count(door.log(), "event=registry_resynced") > resynced_before[f]; }, 5s));
    CHECK(door.log().find("event=registry_resynced member=" + EtcdMember::url(1)) == std::string::npos);
  }
  CHECK(it::wait_until([&] { return get(front.port(), "late1.mh.test").body == "h1-late1\n"; }, 5s));

  // ---- All of etcd down: the front doors keep the last good table and say so on /readyz; the
  // sidecars keep routing their own host, changes included.
  etcd[1]->kill();
  etcd[2]->kill();
  for (it::Berth* f : {&front, &front2}) {
    it::Response ready;
    bool stale = it::wait_until(
        [&] {
          ready = it::http_get(f->admin_port(), "/readyz", "127.0.0.1");
          return ready.status == 503;
        },
        20s);
    INFO("readyz: " << ready.status << " " << ready.body);
    INFO(logs());
    CHECK(stale);
    CHECK(ready.body.find("registry: etcd unreachable") != std::string::npos);
    CHECK(ready.body.find("last good table") != std::string::npos);
  }
  for (int n = 0; n < 6; ++n) {
    it::Response r = get(front.port(), "web.mh.test");
    CHECK(r.status == 200);
    CHECK((r.body == "h1-v2\n" || r.body == "h3-v2\n"));
  }
  CHECK(get(front.port(), "late1.mh.test").status == 200);
  CHECK(get(front.port(), "extra.mh.test").status == 200);
  // Host 1 starts a container and host 3 stops one while etcd is away.
  REQUIRE(lab.docker(1, web_run_args_at(kImage, "0.0.0.0", "late2", kPortLate2, "h1-late2",
                                        web_options("late2.mh.test", "late2", kPortLate2, false, -1)))
              .ok());
  REQUIRE(lab.docker(3, {"stop", "-t", "5", "extra"}).ok());
  in_host(1, [&] {
    nlohmann::json last;
    bool routed = wait_routes(sidecar[1]->admin_port(), [&](const nlohmann::json& t) { return has_route(t, "late2.mh.test"); },
                              10s, &last);
    INFO("sidecar h1 routes: " << last.dump());
    INFO(logs());
    CHECK(routed);
    CHECK(it::wait_until([&] { return get(sidecar[1]->port(), "late2.mh.test").body == "h1-late2\n"; }, 5s));
    CHECK(get(sidecar[1]->port(), "web.mh.test").body == "h1-v2\n");
    it::Response ready = it::http_get(sidecar[1]->admin_port(), "/readyz", "127.0.0.1");
    INFO("sidecar h1 readyz: " << ready.body);
    CHECK(ready.status == 200);
  });
  in_host(3, [&] {
    CHECK(wait_routes(sidecar[3]->admin_port(), [&](const nlohmann::json& t) { return !has_route(t, "extra.mh.test"); },
                      10s));
  });
  {
    nlohmann::json t = routes(front.admin_port());
    CHECK(has_route(t, "extra.mh.test"));   // the last good table, unchanged
    CHECK_FALSE(has_route(t, "late2.mh.test"));
  }

  // ---- etcd returns (same data dirs): the sidecars re-publish, the front doors reconcile.
  for (auto& member : etcd) {
    std::string error = member->start();
    INFO(error);
    REQUIRE(error.empty());
  }
  const auto t_back = Clock::now();
  {
    bool healthy = it::wait_until(all_healthy, 20s, 50ms);
    INFO("etcd logs:\n" << etcd[0]->log() << "\n" << etcd[1]->log() << "\n" << etcd[2]->log());
    REQUIRE(healthy);
  }
  const std::vector<std::string> survivors = {host_addr(1, kPortV2), host_addr(3, kPortV2)};
  auto converged = [&](const nlohmann::json& t) {
    return web_endpoints(t) == survivors && has_route(t, "late1.mh.test") && has_route(t, "late2.mh.test") &&
           !has_route(t, "extra.mh.test");
  };
  double converge_ms[2] = {-1, -1};
  int k = 0;
  for (it::Berth* f : {&front, &front2}) {
    nlohmann::json last;
    bool ok = wait_routes(f->admin_port(), converged, 30s, &last);
    converge_ms[k++] = ms_since(t_back);
    INFO("routes: " << last.dump());
    INFO(logs());
    CHECK(ok);
    it::Response ready;
    CHECK(it::wait_until(
        [&] {
          ready = it::http_get(f->admin_port(), "/readyz", "127.0.0.1");
          return ready.status == 200;
        },
        20s));
    INFO("readyz: " << ready.body);
  }
  CHECK(it::wait_until([&] { return get(front.port(), "late2.mh.test").body == "h1-late2\n"; }, 5s));
  CHECK(it::wait_until([&] { return get(front2.port(), "extra.mh.test").status == 404; }, 5s));

  // ---- The two front doors end with the same table.
  nlohmann::json a, b;
  bool same = it::wait_until(
      [&] {
        a = comparable(routes(front.admin_port()));
        b = comparable(routes(front2.admin_port()));
        return a.is_object() && a == b;
      },
      10s, 100ms);
  INFO("front door 1: " << a.dump() << "\nfront door 2: " << b.dump());
  CHECK(same);

  // Every Berth still up stops cleanly on SIGTERM (under the sanitizers: without a report).
  for (it::Berth* b : {&front, &front2, sidecar[1].get(), sidecar[3].get()}) {
    CHECK(b->running());
    std::optional<int> status = b->process().terminate();
    std::string log = b->log();
    INFO(b->config_path() << ":\n" << it::tail(log, 3000));
    CHECK(it::exited_with(status, 0));
    CHECK(log.find("Sanitizer") == std::string::npos);
    CHECK(log.find("runtime error") == std::string::npos);
  }
  WARN("many hosts: setup " << setup_s << " s; one etcd member down -> a new container at both front doors in "
                            << member_ms << " ms; etcd back -> converged after " << converge_ms[0] << " / "
                            << converge_ms[1] << " ms; whole test " << it::seconds_since(t_start) << " s");
}
