// Parsing of the per-service policy values (load balancing, health checks, outlier detection,
// retries, circuit breaking) shared by the config loader and the Docker label parser. Pure,
// never throws.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

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

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> parse_integer(std::string_view text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

// 3600000 -> "1h", 1500 -> "1500ms": the largest unit that divides exactly.
std::string format_millis(int64_t ms) {
  constexpr std::pair<int64_t, std::string_view> kUnits[] = {{3'600'000, "h"}, {60'000, "m"}, {1'000, "s"}};
  for (auto [factor, unit] : kUnits)
    if (ms != 0 && ms % factor == 0) return std::to_string(ms / factor) + std::string(unit);
  return std::to_string(ms) + "ms";
}

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();

using Kind = PolicySetting::Kind;

uint32_t u32(int64_t v) { return static_cast<uint32_t>(v); }

const std::vector<PolicySetting> kPolicySettings = {
    {"lb", "slow_start", "berth.lb.slow_start", Kind::kDuration, 0, 3'600'000,
     [](ServicePolicy& p, int64_t v) { p.lb.slow_start = Millis(v); }},
    {"outlier", "consecutive_failures", "berth.outlier.consecutive_failures", Kind::kInteger, 0, 1000,
     [](ServicePolicy& p, int64_t v) { p.outlier.consecutive_failures = u32(v); }},
    {"outlier", "base_ejection", "berth.outlier.base_ejection", Kind::kDuration, 1, kNoMax,
     [](ServicePolicy& p, int64_t v) { p.outlier.base_ejection = Millis(v); }},
    {"outlier", "max_ejection_percent", "berth.outlier.max_ejection_percent", Kind::kInteger, 0, 100,
     [](ServicePolicy& p, int64_t v) { p.outlier.max_ejection_percent = u32(v); }},
    {"outlier", "panic_threshold_percent", "berth.outlier.panic_threshold_percent", Kind::kInteger, 0, 100,
     [](ServicePolicy& p, int64_t v) { p.outlier.panic_threshold_percent = u32(v); }},
    {"retry", "attempts", "berth.retry.attempts", Kind::kInteger, 1, RetryPolicy::kMaxAttempts,
     [](ServicePolicy& p, int64_t v) { p.retry.attempts = u32(v); }},
    {"retry", "non_idempotent", "berth.retry.non_idempotent", Kind::kBool, 0, 1,
     [](ServicePolicy& p, int64_t v) { p.retry.non_idempotent = v != 0; }},
    {"retry", "on_response_timeout", "berth.retry.on_response_timeout", Kind::kBool, 0, 1,
     [](ServicePolicy& p, int64_t v) { p.retry.on_response_timeout = v != 0; }},
    {"retry", "budget_percent", "berth.retry.budget_percent", Kind::kInteger, 0, 100,
     [](ServicePolicy& p, int64_t v) { p.retry.budget_percent = u32(v); }},
    {"retry", "min_retries", "berth.retry.min_retries", Kind::kInteger, 0, 100'000,
     [](ServicePolicy& p, int64_t v) { p.retry.min_retries = u32(v); }},
    {"retry", "replay_body_bytes", "berth.retry.replay_body_bytes", Kind::kInteger, 0, 1 << 20,
     [](ServicePolicy& p, int64_t v) { p.retry.replay_body_bytes = static_cast<uint64_t>(v); }},
    {"circuit_breaker", "max_requests", "berth.circuit.max_requests", Kind::kInteger, 0, 10'000'000,
     [](ServicePolicy& p, int64_t v) { p.circuit.max_requests = u32(v); }},
    {"circuit_breaker", "max_pending", "berth.circuit.max_pending", Kind::kInteger, 0, 10'000'000,
     [](ServicePolicy& p, int64_t v) { p.circuit.max_pending = u32(v); }},
    {"circuit_breaker", "service_max_requests", "berth.circuit.service_max_requests", Kind::kInteger, 0,
     10'000'000, [](ServicePolicy& p, int64_t v) { p.circuit.service_max_requests = u32(v); }},
    {"circuit_breaker", "service_max_pending", "berth.circuit.service_max_pending", Kind::kInteger, 0,
     10'000'000, [](ServicePolicy& p, int64_t v) { p.circuit.service_max_pending = u32(v); }},
};

}  // namespace

std::optional<LoadBalancing::Policy> parse_lb_policy(std::string_view text) {
  if (text == "round_robin") return LoadBalancing::Policy::kRoundRobin;
  if (text == "least_request") return LoadBalancing::Policy::kLeastRequest;
  if (text == "hash") return LoadBalancing::Policy::kHash;
  if (text == "sticky") return LoadBalancing::Policy::kSticky;
  return std::nullopt;
}

std::string default_sticky_cookie(std::string_view service) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (unsigned char c : service) h = (h ^ c) * 0x100000001b3ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string name = "berth_sticky_";
  for (int shift = 60; shift >= 32; shift -= 4) name.push_back(kHex[(h >> shift) & 0xf]);
  return name;
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

std::optional<bool> parse_bool(std::string_view text) {
  std::string v(text);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (v == "true" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "no" || v == "off") return false;
  return std::nullopt;
}

const std::vector<PolicySetting>& policy_settings() { return kPolicySettings; }

const PolicySetting* find_policy_setting(std::string_view section, std::string_view name) {
  for (const PolicySetting& s : kPolicySettings)
    if (s.section == section && s.name == name) return &s;
  return nullptr;
}

const PolicySetting* find_policy_setting_by_label(std::string_view label) {
  for (const PolicySetting& s : kPolicySettings)
    if (s.label == label) return &s;
  return nullptr;
}

bool apply_policy_setting(const PolicySetting& setting, std::string_view text, ServicePolicy& policy) {
  text = trim(text);
  std::optional<int64_t> value;
  switch (setting.kind) {
    case Kind::kInteger: value = parse_integer(text); break;
    case Kind::kBool:
      if (auto b = parse_bool(text)) value = *b ? 1 : 0;
      break;
    case Kind::kDuration:
      if (auto d = parse_duration(text)) value = d->count();
      break;
  }
  if (!value || *value < setting.min || *value > setting.max) return false;
  setting.apply(policy, *value);
  return true;
}

std::string policy_setting_expectation(const PolicySetting& setting) {
  switch (setting.kind) {
    case Kind::kInteger:
      return "an integer from " + std::to_string(setting.min) + " to " + std::to_string(setting.max);
    case Kind::kBool: return "true or false";
    case Kind::kDuration: break;
  }
  std::string range = setting.max == kNoMax ? (setting.min > 0 ? "greater than 0" : "")
                                            : "from " + (setting.min ? format_millis(setting.min) : std::string("0")) +
                                                  " to " + format_millis(setting.max);
  return "a duration" + (range.empty() ? std::string() : " " + range) + " such as 500ms or 30s";
}

}  // namespace berth::config
