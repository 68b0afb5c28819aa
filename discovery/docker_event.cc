#include "discovery/docker_event.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace berth::discovery {

std::string DockerEvent::key() const {
  return std::to_string(time_nano) + "/" + id + "/" + action + (detail.empty() ? "" : ":" + detail);
}

std::optional<DockerEvent> parse_event(std::string_view line, std::string* error) {
  nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    if (error) *error = "not a JSON object";
    return std::nullopt;
  }
  DockerEvent event;
  auto text = [&](const nlohmann::json& obj, const char* key) -> std::string {
    auto it = obj.find(key);
    return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  event.type = text(j, "Type");
  std::string action = text(j, "Action");
  if (action.empty()) action = text(j, "status");
  size_t colon = action.find(':');
  if (colon != std::string::npos) {
    event.detail = action.substr(colon + 1);
    size_t start = event.detail.find_first_not_of(' ');
    event.detail = start == std::string::npos ? std::string() : event.detail.substr(start);
    action.resize(colon);
  }
  event.action = action;
  auto actor = j.find("Actor");
  if (actor != j.end() && actor->is_object()) {
    event.id = text(*actor, "ID");
    auto attrs = actor->find("Attributes");
    if (attrs != actor->end() && attrs->is_object()) {
      for (auto it = attrs->begin(); it != attrs->end(); ++it)
        if (it->is_string()) event.attributes.emplace(it.key(), it->get<std::string>());
    }
  }
  if (event.id.empty()) event.id = text(j, "id");
  auto nano = j.find("timeNano");
  if (nano != j.end() && nano->is_number_integer()) {
    event.time_nano = nano->get<int64_t>();
  } else {
    auto secs = j.find("time");
    if (secs != j.end() && secs->is_number_integer()) event.time_nano = secs->get<int64_t>() * 1'000'000'000;
  }
  if (event.type.empty() || event.action.empty()) {
    if (error) *error = "event without Type or Action";
    return std::nullopt;
  }
  return event;
}

std::string format_since(int64_t time_nano) {
  if (time_nano < 0) time_nano = 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%09lld", static_cast<long long>(time_nano / 1'000'000'000),
                static_cast<long long>(time_nano % 1'000'000'000));
  return buf;
}

}  // namespace berth::discovery
