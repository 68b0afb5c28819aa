#include "discovery/docker_endpoint.h"

#include <charconv>

namespace berth::discovery {

std::string DockerEndpoint::to_string() const {
  if (kind == Kind::kUnix) return "unix://" + path;
  if (host.find(':') != std::string::npos) return "tcp://[" + host + "]:" + std::to_string(port);
  return "tcp://" + host + ":" + std::to_string(port);
}

std::optional<DockerEndpoint> parse_docker_endpoint(std::string_view text, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<DockerEndpoint> {
    if (error) *error = "docker endpoint '" + std::string(text) + "': " + why;
    return std::nullopt;
  };
  DockerEndpoint e;
  if (text.rfind("unix://", 0) == 0) {
    e.kind = DockerEndpoint::Kind::kUnix;
    e.path = std::string(text.substr(7));
    if (e.path.empty() || e.path.front() != '/') return fail("expected an absolute path after unix://");
    if (e.path.size() >= 108) return fail("socket path too long (at most 107 bytes)");
    return e;
  }
  if (text.rfind("tcp://", 0) == 0) {
    e.kind = DockerEndpoint::Kind::kTcp;
    std::string_view rest = text.substr(6);
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    size_t colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return fail("expected tcp://host:port");
    std::string_view host = rest.substr(0, colon);
    std::string_view port = rest.substr(colon + 1);
    if (host.front() == '[') {
      if (host.back() != ']') return fail("unbalanced '[' in the host");
      host = host.substr(1, host.size() - 2);
    }
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
      return fail("invalid port");
    if (host.empty()) return fail("empty host");
    e.host = std::string(host);
    e.port = static_cast<uint16_t>(value);
    return e;
  }
  return fail("expected unix:///path or tcp://host:port");
}

}  // namespace berth::discovery
