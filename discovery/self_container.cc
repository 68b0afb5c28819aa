#include "discovery/self_container.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace berth::discovery {

namespace {
bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) && !std::isupper(static_cast<unsigned char>(c)); }

std::string slurp(const char* path) {
  std::ifstream f(path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

std::string container_id_in(std::string_view text) {
  // ".../docker/<64 hex>", ".../docker-<64 hex>.scope", ".../containers/<64 hex>/hostname"
  for (std::string_view marker : {"docker/", "docker-", "containers/"}) {
    size_t pos = 0;
    while ((pos = text.find(marker, pos)) != std::string_view::npos) {
      size_t start = pos + marker.size();
      size_t end = start;
      while (end < text.size() && is_hex(text[end])) ++end;
      if (end - start == 64) return std::string(text.substr(start, 64));
      pos = start;
    }
  }
  return {};
}

std::string guess_own_container_id() {
  // Set by whoever starts the container when /proc does not tell (e.g. a private cgroup
  // namespace on cgroup v2 together with host networking, where $HOSTNAME is the host's).
  if (const char* set = std::getenv("BERTH_CONTAINER_ID"); set && *set) return set;
  std::string id = container_id_in(slurp("/proc/self/cgroup"));
  if (id.empty()) {
    // Only the mount of /etc/hostname: a host's own mount table can name other containers.
    std::istringstream mounts(slurp("/proc/self/mountinfo"));
    std::string line;
    while (id.empty() && std::getline(mounts, line))
      if (line.find(" /etc/hostname ") != std::string::npos) id = container_id_in(line);
  }
  if (!id.empty()) return id;
  const char* hostname = std::getenv("HOSTNAME");
  if (hostname && std::string_view(hostname).size() == 12) {
    std::string_view h(hostname);
    bool hex = true;
    for (char c : h) hex = hex && is_hex(c);
    if (hex) return std::string(h);
  }
  return {};
}

}  // namespace berth::discovery
