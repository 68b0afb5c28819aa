// The source text every instance and discovered route carries, and what Berth reads from it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace berth {

// Where an instance or a discovered route came from, as its source text says: "config" (the
// config file), "container:<short id>/<name>" (a local container's labels), or
// "registry:<host id>/<container id>/<n>" (another host's key in the registry).
enum class SourceOrigin : uint8_t { kConfig, kContainer, kRegistry };
inline constexpr std::string_view kContainerSourcePrefix = "container:";

inline SourceOrigin source_origin(std::string_view source) noexcept {
  if (source.starts_with(kContainerSourcePrefix)) return SourceOrigin::kContainer;
  return source.starts_with("registry:") ? SourceOrigin::kRegistry : SourceOrigin::kConfig;
}

// The source text of a local container's instances and routes.
inline std::string container_source(std::string_view short_id, std::string_view name) {
  std::string out(kContainerSourcePrefix);
  out.append(short_id).append("/").append(name);
  return out;
}

// A container source's "<short id>/<name>"; empty for any other source.
inline std::string_view container_source_tail(std::string_view source) noexcept {
  return source.starts_with(kContainerSourcePrefix) ? source.substr(kContainerSourcePrefix.size()) : std::string_view();
}

// The container name in a container source ("container:<short id>/<name>" → "<name>"); empty for
// instances that do not come from a local container.
inline std::string_view endpoint_container_name(std::string_view source) noexcept {
  const std::string_view tail = container_source_tail(source);
  const size_t slash = tail.find('/');
  return slash == std::string_view::npos ? tail : tail.substr(slash + 1);
}

// What /api/routes names as a discovered route's origin: its container ("<short id>/<name>") for
// a route from a container's labels, the source text otherwise.
inline std::string_view route_source_label(std::string_view source) noexcept {
  return source_origin(source) == SourceOrigin::kContainer ? container_source_tail(source) : source;
}

}  // namespace berth
