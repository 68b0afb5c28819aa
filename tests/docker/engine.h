// The real-engine test environment: one private dockerd (scripts/dockerd-local.sh) for the
// whole run, a tiny imported busybox image, helpers to run `docker`, to start labelled
// host-network test containers on 127.0.0.1 ports, and to read Berth's admin API.
// If the engine cannot start, the tests FAIL (they never skip).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"

namespace dk {

using namespace std::chrono_literals;

struct Engine {
  std::string dir;   // data/exec roots, socket, pid, log
  std::string host;  // unix://DIR/docker.sock
  std::string image = "bb:local";
  std::string log() const;
};

// Starts the engine on first use (REQUIRE-fails with the reason when it cannot).
Engine& engine();
// kill -9 the engine (its containers keep running) / start it again with the same dirs.
bool kill_engine();
bool restart_engine(std::string* error);

struct CmdResult {
  int status = -1;  // exit code; -1 = could not run / timed out
  std::string out;  // stdout
  std::string err;  // stderr
  bool ok() const { return status == 0; }
  std::string text() const { return out + err; }
};
// Runs `docker args...` against the private engine.
CmdResult docker(const std::vector<std::string>& args, std::chrono::seconds timeout = 60s);
// Runs `docker -H docker_host args...` against another engine (e.g. one per network namespace);
// never starts the private engine.
CmdResult docker_at(const std::string& docker_host, const std::vector<std::string>& args,
                    std::chrono::seconds timeout = 60s);
// Runs any command to completion (stdout and stderr captured), e.g. a second engine's script.
CmdResult run_command(const std::vector<std::string>& argv, std::chrono::seconds timeout = 120s);
// scripts/dockerd-local.sh of this source tree.
const std::string& dockerd_script();
// Runs `docker-compose args...` (the Debian docker-compose package) against the private engine.
CmdResult docker_compose(const std::vector<std::string>& args, std::chrono::seconds timeout = 180s);
// Several `docker` commands at once, at most `parallel` running.
std::vector<CmdResult> docker_parallel(const std::vector<std::vector<std::string>>& commands, size_t parallel);

// A host-network test container serving /www (index.html = body) on 127.0.0.1:port.
struct WebOptions {
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<std::string> env;
  bool healthcheck = false;     // wget of / every second
  int drain_seconds = -1;       // >= 0: on SIGTERM keep serving this long, then exit 0 (no --init)
  std::string restart;          // --restart policy
  std::string extra_script;     // shell run before the server starts
  // run_web returns once the app accepts connections on its port (docker's `start` comes
  // before the app listens, and Berth routes at `start`). false: return at once.
  bool wait_listening = true;
};
std::vector<std::string> web_run_args(const std::string& name, uint16_t port, const std::string& body,
                                      const WebOptions& options);
// The same for any engine and address: `image` as imported there, the server listening on
// listen_ip:port (e.g. "0.0.0.0" for a host-network container in its own network namespace).
std::vector<std::string> web_run_args_at(const std::string& image, const std::string& listen_ip,
                                         const std::string& name, uint16_t port, const std::string& body,
                                         const WebOptions& options);
// docker run -d ...; returns the container id ("" on failure, with *error).
std::string run_web(const std::string& name, uint16_t port, const std::string& body, const WebOptions& options,
                    std::string* error = nullptr);
void remove_containers(const std::vector<std::string>& names_or_ids);

// Until a TCP connect to 127.0.0.1:port succeeds (false after timeout).
bool wait_listening(uint16_t port, std::chrono::milliseconds timeout = 10s);

// "127.0.0.1:PORT": the address of a host-network test container.
inline std::string addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Removes the named containers when a test ends, whatever happened.
struct Cleanup {
  std::vector<std::string> names;
  ~Cleanup() { remove_containers(names); }
};

// Berth with Docker discovery pointed at the private engine. docker_extra: more keys of the
// docker section in flow style ("compat: {traefik: true}").
std::string berth_yaml(const std::string& docker_extra = "", const std::string& grace = "2s");
std::unique_ptr<it::Berth> start_berth(const std::string& docker_extra = "", const std::string& grace = "2s");

nlohmann::json routes(uint16_t admin_port);
// The endpoints (addresses) of the services behind routes for `host`, "" when no route.
std::vector<std::string> endpoints_for(const nlohmann::json& routes, const std::string& host,
                                       const std::string& path = "/");
bool has_route(const nlohmann::json& routes, const std::string& host, const std::string& path = "/");
// The endpoint object (address, weight, source and, with an active check, health, ejected,
// in_flight) of `address` behind the route for host+path; null when it is not there.
nlohmann::json endpoint_of(const nlohmann::json& routes, const std::string& host, const std::string& address,
                           const std::string& path = "/");
// GET /api/stats (null when it does not answer 200).
nlohmann::json stats(uint16_t admin_port);
// Polls /api/routes until pred holds (or timeout), then waits until every worker serves that
// table; returns the last table seen.
bool wait_routes(uint16_t admin_port, const std::function<bool(const nlohmann::json&)>& pred,
                 std::chrono::milliseconds timeout, nlohmann::json* last = nullptr);

// A free 127.0.0.1 port never handed out before in this run (it::unused_port can repeat).
uint16_t fresh_port();

it::Response get(uint16_t port, const std::string& host, const std::string& path = "/");

}  // namespace dk
