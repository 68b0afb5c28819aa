// What discovery knows about one container: static facts from an inspect (labels, env, network
// mode, addresses, healthcheck, stop signal) and its run state (from inspect and events). Pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace berth::discovery {

struct ContainerNetwork {
  std::string name;
  std::string ipv4;  // "" when none
  std::string ipv6;
};

struct PortBinding {
  std::string host_ip;  // "" / "0.0.0.0" / "::" = any
  uint16_t host_port = 0;
};

struct ContainerFacts {
  std::string id;    // full 64-hex id
  std::string name;  // without the leading '/'
  std::map<std::string, std::string> labels;
  std::vector<std::string> env;               // "KEY=value"
  std::string network_mode;                   // "host", "default", "bridge", "none", "container:...", a network
  std::vector<ContainerNetwork> networks;     // sorted by name
  std::vector<uint16_t> exposed_ports;        // tcp ports in Config.ExposedPorts, sorted
  std::map<uint16_t, std::vector<PortBinding>> published;  // container tcp port -> host bindings
  bool has_healthcheck = false;
  int stop_signal = 15;
  // Bumped by the source whenever the facts above are replaced (a new inspect); 0 = unknown.
  // The builder re-parses labels only when it changes.
  uint64_t revision = 0;

  // Run state.
  bool running = false;
  bool paused = false;
  std::string health;          // "", "starting", "healthy", "unhealthy"
  int64_t started_at_ns = 0;   // State.StartedAt
  int64_t created_at_ns = 0;   // Created: kept across restarts (who was there first)
  bool draining = false;       // a kill with the stop signal (or 9) was seen for this run
  int64_t draining_since_ms = 0;  // health_clock_ms() when that kill was seen

  // "3f2a1b4c5d6e/name": how rejections and sources name it.
  std::string display() const { return id.substr(0, 12) + "/" + name; }  // as in container_source()
  std::string env_value(std::string_view key) const;  // "" when unset
};

// Same labels, env, name, networks, ports, healthcheck and stop signal: what the builder reads
// apart from the run state.
bool same_static_facts(const ContainerFacts& a, const ContainerFacts& b);

// May this container receive new requests now?
bool is_routable(const ContainerFacts& c);
// Why a running container may not ("" when it is routable or not running): its Docker health,
// paused, or stopping. For the status page.
std::string held_back_reason(const ContainerFacts& c);

// From GET /containers/{id}/json. nullopt (and *error) when the JSON is not an inspect result.
std::optional<ContainerFacts> parse_inspect(const nlohmann::json& j, std::string* error);

// "SIGTERM", "TERM", "15", "sigquit" -> number; nullopt when unknown.
std::optional<int> parse_signal(std::string_view text);

// RFC 3339 with optional fraction ("2026-11-27T16:44:48.192501272Z") -> ns since the epoch;
// 0 for the zero time or garbage.
int64_t parse_docker_time(std::string_view text);

}  // namespace berth::discovery
