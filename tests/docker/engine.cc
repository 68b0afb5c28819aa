#include "engine.h"

#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <deque>
#include <mutex>
#include <set>
#include <fstream>
#include <thread>

namespace dk {

namespace {

const std::string kScript = std::string(BERTH_SOURCE_DIR) + "/scripts/dockerd-local.sh";

struct EngineHolder {
  std::unique_ptr<Engine> engine;
  bool failed = false;
  std::string failure;
  ~EngineHolder() {
    if (!engine) return;
    // Remove everything and stop the private engine (also after failures).
    std::string cmd = kScript + " purge " + engine->dir + " >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "warning: could not purge %s\n", engine->dir.c_str());
  }
};
EngineHolder g_holder;

// Runs a command line to completion with a timeout; stdout+stderr captured.
CmdResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  it::TempDir dir;
  it::Process p(argv, dir.file("out"), dir.file("err"));
  CmdResult r;
  if (!p.started()) {
    r.out = p.spawn_error();
    return r;
  }
  auto st = p.wait_exit(timeout);
  r.out = p.out();
  r.err = p.err();
  if (!st) {
    p.terminate();
    r.err += "\n(timed out after " + std::to_string(timeout.count()) + " s)";
    return r;
  }
  r.status = WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  return r;
}

std::string pid_of_engine(const Engine& e) {
  std::ifstream f(e.dir + "/pid");
  std::string pid;
  f >> pid;
  return pid;
}

}  // namespace

std::string Engine::log() const { return it::tail(it::read_file(dir + "/log"), 3000); }

Engine& engine() {
  if (g_holder.failed) FAIL("the private Docker engine failed to start earlier: " << g_holder.failure);
  if (g_holder.engine) return *g_holder.engine;
  g_holder.failed = true;
  auto e = std::make_unique<Engine>();
  char templ[] = "/tmp/berth-dk-XXXXXX";
  REQUIRE(::mkdtemp(templ) != nullptr);
  e->dir = templ;
  e->host = "unix://" + e->dir + "/docker.sock";
  g_holder.engine = std::move(e);  // from here on, the holder cleans up
  Engine& eng = *g_holder.engine;
  CmdResult started = run({"/bin/sh", kScript, "start", eng.dir}, 90s);
  if (!started.ok()) {
    g_holder.failure = "scripts/dockerd-local.sh start failed (docker tests need root, docker.io and "
                       "busybox-static): " + started.text() + "\nengine log:\n" + eng.log();
    FAIL(g_holder.failure);
  }
  ::setenv("DOCKER_HOST", eng.host.c_str(), 1);
  CmdResult image = run({"/bin/sh", kScript, "image", eng.dir, eng.image}, 120s);
  if (!image.ok()) {
    g_holder.failure = "could not build the test image: " + image.text();
    FAIL(g_holder.failure);
  }
  g_holder.failed = false;
  return eng;
}

bool kill_engine() {
  Engine& e = engine();
  std::string pid = pid_of_engine(e);
  if (pid.empty()) return false;
  pid_t p = static_cast<pid_t>(std::atoi(pid.c_str()));
  if (p <= 0 || ::kill(p, SIGKILL) != 0) return false;
  return it::wait_until([&] { return ::kill(p, 0) != 0; }, 10s, 20ms);
}

bool restart_engine(std::string* error) {
  Engine& e = engine();
  CmdResult started = run({"/bin/sh", kScript, "start", e.dir}, 120s);
  if (!started.ok() && error) *error = started.text() + "\n" + e.log();
  return started.ok();
}

CmdResult docker(const std::vector<std::string>& args, std::chrono::seconds timeout) {
  engine();
  std::vector<std::string> argv{"/usr/bin/env", "docker"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout);
}

CmdResult docker_at(const std::string& docker_host, const std::vector<std::string>& args,
                    std::chrono::seconds timeout) {
  std::vector<std::string> argv{"/usr/bin/env", "docker", "-H", docker_host};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout);
}

CmdResult run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout) { return run(argv, timeout); }

const std::string& dockerd_script() { return kScript; }

CmdResult docker_compose(const std::vector<std::string>& args, std::chrono::seconds timeout) {
  engine();
  std::vector<std::string> argv{"/usr/bin/env", "docker-compose"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout);
}

std::vector<CmdResult> docker_parallel(const std::vector<std::vector<std::string>>& commands, size_t parallel) {
  engine();
  std::vector<CmdResult> results(commands.size());
  std::vector<std::thread> threads;
  std::atomic<size_t> next{0};
  for (size_t t = 0; t < std::min(parallel, commands.size()); ++t) {
    threads.emplace_back([&] {
      for (size_t i = next++; i < commands.size(); i = next++) {
        std::vector<std::string> argv{"/usr/bin/env", "docker"};
        argv.insert(argv.end(), commands[i].begin(), commands[i].end());
        results[i] = run(argv, 120s);
      }
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

std::vector<std::string> web_run_args(const std::string& name, uint16_t port, const std::string& body,
                                      const WebOptions& o) {
  return web_run_args_at(engine().image, "127.0.0.1", name, port, body, o);
}

std::vector<std::string> web_run_args_at(const std::string& image, const std::string& listen_ip,
                                         const std::string& name, uint16_t port, const std::string& body,
                                         const WebOptions& o) {
  const std::string listen = listen_ip + ":" + std::to_string(port);
  // --pull never: only the locally imported image, never a registry lookup.
  std::vector<std::string> args{"run", "-d", "--pull", "never", "--name", name, "--network", "host", "--label", "bt.case=1"};
  for (const auto& [k, v] : o.labels) {
    args.push_back("--label");
    args.push_back(k + "=" + v);
  }
  for (const auto& e : o.env) {
    args.push_back("-e");
    args.push_back(e);
  }
  if (o.healthcheck) {
    for (std::string a : std::vector<std::string>{"--health-cmd", "wget -q -O- http://" + listen + "/ || exit 1", "--health-interval", "1s",
                          "--health-retries", "1", "--health-timeout", "2s"})
      args.push_back(a);
  }
  if (!o.restart.empty()) {
    args.push_back("--restart");
    args.push_back(o.restart);
  }
  std::string script = "echo " + body + " > /www/index.html; ";
  if (!o.extra_script.empty()) script += o.extra_script + "; ";
  if (o.drain_seconds >= 0) {
    // A draining server: on SIGTERM it keeps serving for a while, then exits.
    script += "httpd -f -p " + listen + " -h /www & p=$!; trap \"sleep " + std::to_string(o.drain_seconds) +
              "; kill $p; exit 0\" TERM; while true; do wait; done";
  } else {
    args.push_back("--init");  // tini: SIGTERM stops httpd at once
    script += "exec httpd -f -p " + listen + " -h /www";
  }
  args.push_back(image);
  args.push_back("sh");
  args.push_back("-c");
  args.push_back(script);
  return args;
}

std::string run_web(const std::string& name, uint16_t port, const std::string& body, const WebOptions& o,
                    std::string* error) {
  CmdResult r = docker(web_run_args(name, port, body, o));
  if (!r.ok()) {
    if (error) *error = r.text();
    return {};
  }
  if (o.wait_listening) wait_listening(port);
  std::string id = r.out;
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
  size_t nl = id.rfind('\n');
  return nl == std::string::npos ? id : id.substr(nl + 1);
}

bool wait_listening(uint16_t port, std::chrono::milliseconds timeout) {
  return it::wait_until([&] { return it::Client(port, 1s).connected(); }, timeout);
}

void remove_containers(const std::vector<std::string>& names) {
  if (names.empty()) return;
  std::vector<std::string> args{"rm", "-f"};
  args.insert(args.end(), names.begin(), names.end());
  docker(args, 120s);
}

std::string berth_yaml(const std::string& docker_extra, const std::string& grace) {
  std::string y = "listeners: [\"127.0.0.1:0\"]\nworkers: 2\nadmin: {address: \"127.0.0.1:0\"}\n"
                  "timeouts: {upstream_connect: 2s, upstream_response: 30s}\n";
  y += "docker: {enabled: true, endpoint: \"" + engine().host + "\", empty_route_grace: " + grace +
       ", reconnect_max: 1s";
  if (!docker_extra.empty()) y += ", " + docker_extra;
  y += "}\n";
  return y;
}

std::unique_ptr<it::Berth> start_berth(const std::string& docker_extra, const std::string& grace) {
  auto b = std::make_unique<it::Berth>(berth_yaml(docker_extra, grace));
  INFO(b->error());
  REQUIRE(b->ok());
  // In sync with the engine before the test starts.
  bool synced = it::wait_until([&] { return b->log().find("event=docker_synced") != std::string::npos; }, 20s);
  INFO(b->log());
  REQUIRE(synced);
  return b;
}

nlohmann::json routes(uint16_t admin_port) {
  it::Response r = it::http_get(admin_port, "/api/routes", "127.0.0.1");
  if (r.status != 200) return nlohmann::json();
  return nlohmann::json::parse(r.body, nullptr, false);
}

std::vector<std::string> endpoints_for(const nlohmann::json& t, const std::string& host, const std::string& path) {
  std::vector<std::string> out;
  if (!t.is_object() || !t.contains("routes")) return out;
  for (const auto& r : t["routes"]) {
    if (r.value("host", "") != host || r.value("path_prefix", "") != path) continue;
    for (const auto& s : t["services"]) {
      if (s["name"] != r["service"]) continue;
      for (const auto& e : s["endpoints"]) out.push_back(e["address"].get<std::string>());
      break;
    }
  }
  return out;
}

bool has_route(const nlohmann::json& t, const std::string& host, const std::string& path) {
  if (!t.is_object() || !t.contains("routes")) return false;
  for (const auto& r : t["routes"])
    if (r.value("host", "") == host && r.value("path_prefix", "") == path) return true;
  return false;
}

nlohmann::json endpoint_of(const nlohmann::json& t, const std::string& host, const std::string& address,
                           const std::string& path) {
  if (!t.is_object() || !t.contains("routes") || !t.contains("services")) return nullptr;
  for (const auto& r : t["routes"]) {
    if (r.value("host", "") != host || r.value("path_prefix", "") != path) continue;
    for (const auto& s : t["services"]) {
      if (s["name"] != r["service"]) continue;
      for (const auto& e : s["endpoints"])
        if (e.value("address", "") == address) return e;
    }
  }
  return nullptr;
}

nlohmann::json stats(uint16_t admin_port) {
  it::Response r = it::http_get(admin_port, "/api/stats", "127.0.0.1");
  if (r.status != 200) return nlohmann::json();
  return nlohmann::json::parse(r.body, nullptr, false);
}

bool wait_routes(uint16_t admin_port, const std::function<bool(const nlohmann::json&)>& pred,
                 std::chrono::milliseconds timeout, nlohmann::json* last) {
  nlohmann::json t;
  bool ok = it::wait_until(
      [&] {
        t = routes(admin_port);
        return pred(t);
      },
      timeout, 20ms);
  if (last) *last = t;
  // /api/routes is the control side's table; the workers take it a little later, each on its
  // own loop. A test asserts what a request gets next, so every worker serves it first.
  const uint64_t generation = t.is_object() ? t.value("generation", uint64_t{0}) : 0;
  return ok && it::wait_until([&] { return it::applied_generation(admin_port) >= generation; }, 5s, 10ms);
}

uint16_t fresh_port() {
  static std::set<uint16_t> used;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    uint16_t port = it::unused_port();
    if (port != 0 && used.insert(port).second) return port;
  }
  return 0;
}

it::Response get(uint16_t port, const std::string& host, const std::string& path) {
  return it::http_get(port, path, host);
}

}  // namespace dk
