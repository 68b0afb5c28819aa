// Where the Docker engine listens: "unix:///var/run/docker.sock" or "tcp://host:port".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::discovery {

struct DockerEndpoint {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kTcp: name or numeric address (brackets removed)
  uint16_t port = 0;
  std::string to_string() const;
};

std::optional<DockerEndpoint> parse_docker_endpoint(std::string_view text, std::string* error);

}  // namespace berth::discovery
