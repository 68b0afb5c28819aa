#include "discovery/container_facts.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

namespace berth::discovery {

namespace {

using json = nlohmann::json;

std::string string_at(const json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

const json* object_at(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it != obj.end() && it->is_object() ? &*it : nullptr;
}

bool bool_at(const json& obj, const char* key) {
  if (!obj.is_object()) return false;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() && it->get<bool>();
}

// "8080/tcp" -> 8080; nullopt for udp/sctp or garbage.
std::optional<uint16_t> tcp_port(std::string_view spec) {
  size_t slash = spec.find('/');
  std::string_view proto = slash == std::string_view::npos ? "tcp" : spec.substr(slash + 1);
  std::string_view number = spec.substr(0, slash);
  if (proto != "tcp") return std::nullopt;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size() || value == 0 || value > 65535)
    return std::nullopt;
  return static_cast<uint16_t>(value);
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

std::string ContainerFacts::env_value(std::string_view key) const {
  for (const std::string& entry : env) {
    if (entry.size() > key.size() && entry.compare(0, key.size(), key) == 0 && entry[key.size()] == '=')
      return entry.substr(key.size() + 1);
  }
  return {};
}

bool same_static_facts(const ContainerFacts& a, const ContainerFacts& b) {
  auto same_networks = [](const std::vector<ContainerNetwork>& x, const std::vector<ContainerNetwork>& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), [](const ContainerNetwork& m, const ContainerNetwork& n) {
      return m.name == n.name && m.ipv4 == n.ipv4 && m.ipv6 == n.ipv6;
    });
  };
  auto same_bindings = [](const std::vector<PortBinding>& x, const std::vector<PortBinding>& y) {
    return std::equal(x.begin(), x.end(), y.begin(), y.end(), [](const PortBinding& m, const PortBinding& n) {
      return m.host_ip == n.host_ip && m.host_port == n.host_port;
    });
  };
  if (a.id != b.id || a.name != b.name || a.labels != b.labels || a.env != b.env || a.network_mode != b.network_mode ||
      a.exposed_ports != b.exposed_ports || a.has_healthcheck != b.has_healthcheck || a.stop_signal != b.stop_signal ||
      !same_networks(a.networks, b.networks) || a.published.size() != b.published.size())
    return false;
  for (auto x = a.published.begin(), y = b.published.begin(); x != a.published.end(); ++x, ++y)
    if (x->first != y->first || !same_bindings(x->second, y->second)) return false;
  return true;
}

bool is_routable(const ContainerFacts& c) {
  if (!c.running || c.paused || c.draining) return false;
  return !c.has_healthcheck || c.health == "healthy";
}

std::string held_back_reason(const ContainerFacts& c) {
  if (!c.running || is_routable(c)) return {};
  if (c.draining) return "stopping (its stop signal was sent)";
  if (c.paused) return "paused";
  if (c.health == "unhealthy") return "unhealthy (its healthcheck fails)";
  if (c.health == "starting" || c.health.empty()) return "starting (no passing healthcheck yet)";
  return "health " + c.health;
}

std::optional<int> parse_signal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end == text.data() + text.size()) {
    if (number > 0 && number < 65) return number;
    return std::nullopt;
  }
  std::string name(text);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  static const std::pair<const char*, int> kSignals[] = {
      {"HUP", 1},   {"INT", 2},   {"QUIT", 3},   {"ILL", 4},   {"TRAP", 5},  {"ABRT", 6},
      {"IOT", 6},   {"BUS", 7},   {"FPE", 8},    {"KILL", 9},  {"USR1", 10}, {"SEGV", 11},
      {"USR2", 12}, {"PIPE", 13}, {"ALRM", 14},  {"TERM", 15}, {"STKFLT", 16}, {"CHLD", 17},
      {"CONT", 18}, {"STOP", 19}, {"TSTP", 20},  {"TTIN", 21}, {"TTOU", 22}, {"URG", 23},
      {"XCPU", 24}, {"XFSZ", 25}, {"VTALRM", 26}, {"PROF", 27}, {"WINCH", 28}, {"IO", 29},
      {"POLL", 29}, {"PWR", 30},  {"SYS", 31},
  };
  for (auto [sig_name, sig_number] : kSignals)
    if (name == sig_name) return sig_number;
  if (name.rfind("RTMIN+", 0) == 0 || name.rfind("RTMAX-", 0) == 0) {
    int offset = 0;
    std::string_view rest = std::string_view(name).substr(6);
    auto [e2, ec2] = std::from_chars(rest.data(), rest.data() + rest.size(), offset);
    if (ec2 == std::errc() && e2 == rest.data() + rest.size() && offset >= 0 && offset <= 30)
      return name[5] == '+' ? 34 + offset : 64 - offset;
  }
  return std::nullopt;
}

int64_t parse_docker_time(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.fffffffff](Z|+hh:mm)
  if (text.size() < 20) return 0;
  auto num = [&](size_t pos, size_t len) -> int {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, value);
    return ec == std::errc() && end == text.data() + pos + len ? value : -1;
  };
  int year = num(0, 4), month = num(5, 2), day = num(8, 2);
  int hour = num(11, 2), minute = num(14, 2), second = num(17, 2);
  if (year <= 1 || month < 1 || day < 1 || hour < 0 || minute < 0 || second < 0) return 0;
  int64_t nanos = 0;
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
      if (digits < 9) {
        nanos = nanos * 10 + (text[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    while (digits++ < 9) nanos *= 10;
  }
  int64_t offset_s = 0;
  if (pos < text.size() && (text[pos] == '+' || text[pos] == '-') && pos + 6 <= text.size()) {
    int oh = num(pos + 1, 2), om = num(pos + 4, 2);
    if (oh >= 0 && om >= 0) offset_s = (text[pos] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
  }
  int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * 1'000'000'000 + nanos;
}

std::optional<ContainerFacts> parse_inspect(const json& j, std::string* error) {
  if (!j.is_object() || string_at(j, "Id").empty()) {
    if (error) *error = "inspect result without an Id";
    return std::nullopt;
  }
  ContainerFacts c;
  c.id = string_at(j, "Id");
  c.name = string_at(j, "Name");
  if (!c.name.empty() && c.name.front() == '/') c.name.erase(0, 1);

  const json* config = object_at(j, "Config");
  if (config) {
    if (const json* labels = object_at(*config, "Labels")) {
      for (auto it = labels->begin(); it != labels->end(); ++it)
        if (it->is_string()) c.labels.emplace(it.key(), it->get<std::string>());
    }
    auto env = config->find("Env");
    if (env != config->end() && env->is_array()) {
      for (const json& entry : *env)
        if (entry.is_string()) c.env.push_back(entry.get<std::string>());
    }
    if (const json* exposed = object_at(*config, "ExposedPorts")) {
      for (auto it = exposed->begin(); it != exposed->end(); ++it)
        if (auto port = tcp_port(it.key())) c.exposed_ports.push_back(*port);
    }
    std::sort(c.exposed_ports.begin(), c.exposed_ports.end());
    c.exposed_ports.erase(std::unique(c.exposed_ports.begin(), c.exposed_ports.end()), c.exposed_ports.end());
    std::string stop_signal = string_at(*config, "StopSignal");
    if (auto sig = parse_signal(stop_signal)) c.stop_signal = *sig;
    auto health = config->find("Healthcheck");
    if (health != config->end() && health->is_object()) {
      auto test = health->find("Test");
      if (test != health->end() && test->is_array() && !test->empty()) {
        std::string first = (*test)[0].is_string() ? (*test)[0].get<std::string>() : "";
        c.has_healthcheck = first != "NONE" && !first.empty();
      }
    }
  }
  if (const json* host_config = object_at(j, "HostConfig")) c.network_mode = string_at(*host_config, "NetworkMode");

  if (const json* settings = object_at(j, "NetworkSettings")) {
    if (const json* networks = object_at(*settings, "Networks")) {
      for (auto it = networks->begin(); it != networks->end(); ++it) {
        ContainerNetwork n;
        n.name = it.key();
        n.ipv4 = string_at(*it, "IPAddress");
        n.ipv6 = string_at(*it, "GlobalIPv6Address");
        c.networks.push_back(std::move(n));
      }
    }
    if (const json* ports = object_at(*settings, "Ports")) {
      for (auto it = ports->begin(); it != ports->end(); ++it) {
        auto port = tcp_port(it.key());
        if (!port || !it->is_array()) continue;
        for (const json& binding : *it) {
          std::string host_port = string_at(binding, "HostPort");
          unsigned value = 0;
          auto [end, ec] = std::from_chars(host_port.data(), host_port.data() + host_port.size(), value);
          if (ec != std::errc() || value == 0 || value > 65535) continue;
          c.published[*port].push_back(PortBinding{string_at(binding, "HostIp"), static_cast<uint16_t>(value)});
        }
      }
    }
  }
  std::sort(c.networks.begin(), c.networks.end(),
            [](const ContainerNetwork& a, const ContainerNetwork& b) { return a.name < b.name; });

  c.created_at_ns = parse_docker_time(string_at(j, "Created"));
  if (const json* state = object_at(j, "State")) {
    c.running = bool_at(*state, "Running");
    c.paused = bool_at(*state, "Paused");
    c.started_at_ns = parse_docker_time(string_at(*state, "StartedAt"));
    if (const json* health = object_at(*state, "Health")) c.health = string_at(*health, "Status");
  }
  return c;
}

}  // namespace berth::discovery
