// Parsing of the per-service policy values (load balancing, health checks) shared by the config
// loader and the Docker label parser. Pure, never throws.
#include <charconv>

#include "config/config.h"

namespace berth::config {

namespace {

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7f) return false;
    if (std::string_view("()<>@,;:\\\"/[]?={}").find(c) != std::string_view::npos) return false;
  }
  return true;
}

std::optional<uint16_t> parse_status(std::string_view text) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.size() != 3 || value < 100 || value > 599)
    return std::nullopt;
  return static_cast<uint16_t>(value);
}

}  // namespace

std::optional<LoadBalancing::Policy> parse_lb_policy(std::string_view text) {
  if (text == "round_robin") return LoadBalancing::Policy::kRoundRobin;
  if (text == "least_request") return LoadBalancing::Policy::kLeastRequest;
  if (text == "hash") return LoadBalancing::Policy::kHash;
  if (text == "sticky") return LoadBalancing::Policy::kSticky;
  return std::nullopt;
}

bool parse_hash_on(std::string_view text, LoadBalancing& lb) {
  if (text == "client_ip") {
    lb.hash_on = LoadBalancing::HashOn::kClientIp;
    lb.hash_name.clear();
    return true;
  }
  for (auto [prefix, kind] : {std::pair{std::string_view("header:"), LoadBalancing::HashOn::kHeader},
                              std::pair{std::string_view("cookie:"), LoadBalancing::HashOn::kCookie}}) {
    if (!text.starts_with(prefix)) continue;
    std::string_view name = text.substr(prefix.size());
    if (!is_token(name)) return false;
    lb.hash_on = kind;
    lb.hash_name = std::string(name);
    return true;
  }
  return false;
}

bool parse_status_range(std::string_view text, HealthCheck& health) {
  size_t dash = text.find('-');
  auto low = parse_status(text.substr(0, dash));
  auto high = dash == std::string_view::npos ? low : parse_status(text.substr(dash + 1));
  if (!low || !high || *low > *high) return false;
  health.status_min = *low;
  health.status_max = *high;
  return true;
}

bool valid_cookie_name(std::string_view name) { return is_token(name); }

}  // namespace berth::config
