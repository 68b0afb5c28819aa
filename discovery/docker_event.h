// One line of the Docker /events stream, decoded. Pure.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace berth::discovery {

struct DockerEvent {
  std::string type;      // "container", "network", ...
  std::string action;    // the part before ':' of Action: "start", "health_status", "exec_start"
  std::string detail;    // after ": " ("healthy" for health_status), else ""
  std::string id;        // Actor.ID
  std::map<std::string, std::string> attributes;  // Actor.Attributes (labels + name/image/...)
  int64_t time_nano = 0; // exact int64 (values exceed 2^53)
  std::string attribute(const std::string& key) const {
    auto it = attributes.find(key);
    return it == attributes.end() ? std::string() : it->second;
  }
  // Identity for de-duplication of replayed events.
  std::string key() const;
};

// nullopt (and *error set) when the line is not a usable event object.
std::optional<DockerEvent> parse_event(std::string_view line, std::string* error);

// "1795798504.051704943" for the `since` parameter.
std::string format_since(int64_t time_nano);

}  // namespace berth::discovery
