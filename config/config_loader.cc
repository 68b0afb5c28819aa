// YAML -> config structs, with validation. Every problem becomes a berth::config::Error with
// a 1-based line and column; nothing (yaml-cpp exceptions included) escapes load_file/load_string.
#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <exception>
#include <limits>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "config/config.h"
#include "config/config_detail.h"
#include "config/tls_files.h"

namespace berth::config {
namespace {

// A Strict-Transport-Security value (RFC 6797 6.1): printable, directives separated by ';', and
// exactly one of them max-age=<seconds> (browsers drop a header without a valid one, so a typo
// would mean no HSTS at all).
bool valid_hsts(std::string_view value) {
  const auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  for (const unsigned char c : value)
    if (c < 0x20 || c >= 0x7f) return false;
  int max_age = 0;
  while (true) {
    const size_t end = value.find(';');
    const std::string_view directive = trim(value.substr(0, end));
    const size_t eq = directive.find('=');
    const std::string_view name = trim(directive.substr(0, eq));
    if (name.size() == 7 && (name[0] | 0x20) == 'm' && (name[1] | 0x20) == 'a' && (name[2] | 0x20) == 'x' &&
        name[3] == '-' && (name[4] | 0x20) == 'a' && (name[5] | 0x20) == 'g' && (name[6] | 0x20) == 'e') {
      if (eq == std::string_view::npos) return false;
      std::string_view seconds = trim(directive.substr(eq + 1));
      if (seconds.size() >= 2 && seconds.front() == '"' && seconds.back() == '"') seconds = seconds.substr(1, seconds.size() - 2);
      if (seconds.empty() || !std::all_of(seconds.begin(), seconds.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return false;
      ++max_age;
    }
    if (end == std::string_view::npos) break;
    value.remove_prefix(end + 1);
  }
  return max_age == 1;
}

std::optional<std::string> read_file(const std::string& path, std::string& problem);  // below

constexpr size_t kMaxFileBytes = 16u << 20;
constexpr int64_t kMaxWorkers = 1024;

// ---------------------------------------------------------------------------------------
// Small helpers

Mark to_mark(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

Mark mark_of(const YAML::Node& node) { return to_mark(node.Mark()); }

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Scalar: return "'" + node.Scalar() + "'";
    default: return "an undefined value";
  }
}

std::string join(const std::vector<std::string_view>& items) {
  std::string out;
  for (std::string_view item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}

// 1048576 -> "1MiB", 16384 -> "16KiB", 1000 -> "1000".
std::string format_size(uint64_t bytes) {
  constexpr std::pair<uint64_t, std::string_view> kUnits[] = {
      {1ull << 30, "GiB"}, {1ull << 20, "MiB"}, {1ull << 10, "KiB"}};
  for (auto [factor, unit] : kUnits) {
    if (bytes != 0 && bytes % factor == 0) return std::to_string(bytes / factor) + std::string(unit);
  }
  return std::to_string(bytes);
}

// A value in the document and how to talk about it.
struct Value {
  YAML::Node node;
  Mark mark;
  std::string path;  // "routes[1].service"
};

// One `key: value` pair of a map.
struct Field {
  std::string key;
  Mark key_mark;
  Value value;
};

// Where an implicit null (`key:` and nothing after it) "is": yaml-cpp marks it at the next
// token, often on a later line, so point at the key instead.
Mark value_mark(const YAML::Node& value, Mark key_mark) {
  Mark mark = mark_of(value);
  if (value.IsNull() && (mark.line != key_mark.line || mark.line == 0)) return key_mark;
  return mark;
}

std::string child_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return parent + "." + std::string(key);
}

std::string item_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

std::vector<Value> items_of(const Value& list) {
  std::vector<Value> items;
  size_t index = 0;
  for (const YAML::Node& item : list.node) {
    Mark mark = mark_of(item);
    if (mark.line == 0) mark = list.mark;
    items.push_back(Value{item, mark, item_path(list.path, index++)});
  }
  return items;
}

// The fixed keys of `timeouts:` and `limits:`.
struct TimeoutSpec {
  std::string_view name;
  Millis Timeouts::*field;
};

constexpr TimeoutSpec kTimeoutSpecs[] = {
    {"request_header", &Timeouts::request_header},
    {"keepalive_idle", &Timeouts::keepalive_idle},
    {"request_body", &Timeouts::request_body},
    {"request_body_idle", &Timeouts::request_body_idle},
    {"upstream_connect", &Timeouts::upstream_connect},
    {"upstream_response", &Timeouts::upstream_response},
    {"upstream_idle", &Timeouts::upstream_idle},
    {"tunnel_idle", &Timeouts::tunnel_idle},
    {"drain", &Timeouts::drain},
};

struct LimitSpec {
  std::string_view name;
  bool size_syntax;  // accepts "64KiB" as well as plain integers
  uint64_t min;
  uint64_t max;
  uint32_t Limits::*field32;
  uint64_t Limits::*field64;
};

constexpr LimitSpec kLimitSpecs[] = {
    {"max_header_bytes", true, 1u << 10, 1u << 20, &Limits::max_header_bytes, nullptr},
    {"max_headers", false, 1, 1000, &Limits::max_headers, nullptr},
    {"max_request_line", true, 256, 1u << 20, &Limits::max_request_line, nullptr},
    {"max_connections_per_worker", false, 1, 1'000'000, &Limits::max_connections_per_worker, nullptr},
    {"max_body_bytes", true, 0, std::numeric_limits<uint64_t>::max(), nullptr, &Limits::max_body_bytes},
    {"upstream_max_idle_per_endpoint", false, 0, 100'000, &Limits::upstream_max_idle_per_endpoint, nullptr},
    {"write_buffer_bytes", true, 16u << 10, 1u << 30, &Limits::write_buffer_bytes, nullptr},
};

template <typename Spec, size_t N>
std::vector<std::string_view> names_of(const Spec (&specs)[N]) {
  std::vector<std::string_view> names;
  for (const Spec& spec : specs) names.push_back(spec.name);
  return names;
}

const std::vector<std::string_view> kTopLevelKeys = {"listeners", "workers",  "admin",
                                                     "timeouts",  "limits",   "routes",
                                                     "services",  "docker",   "access_log",
                                                     "registry",  "trusted_proxies", "acme",
                                                     "sanitize_path", "encoded_characters"};
const std::vector<std::string_view> kAcmeKeys = {"directory", "email",     "storage",
                                                 "ca_bundle", "challenge", "renew_before"};
const std::vector<std::string_view> kRegistryKeys = {"etcd", "role", "host_id", "advertise_address",
                                                     "lease_ttl", "prefix", "tls", "service_policy",
                                                     "empty_route_grace"};
const std::vector<std::string_view> kServicePolicyKeys = {"lb", "health", "outlier", "retry", "circuit_breaker"};
const std::vector<std::string_view> kAccessLogKeys = {"format", "path", "syslog"};
const std::vector<std::string_view> kListenerKeys = {"address", "tls", "proxy_protocol", "proxy_protocol_from"};
const std::vector<std::string_view> kListenerTlsKeys = {"certificates", "min_version", "client_ca", "session_tickets"};
const std::vector<std::string_view> kTlsCertificateKeys = {"cert", "key"};
const std::vector<std::string_view> kAdminKeys = {"address", "enabled"};
const std::vector<std::string_view> kRouteKeys = {"name",    "host",    "path",          "priority",
                                                  "service", "max_body_bytes", "access", "headers",
                                                  "encoded_characters",
                                                  "https_redirect", "hsts", "acme",
                                                  // path rewriting and redirects
                                                  "strip_prefix", "add_prefix", "rewrite", "redirect",
                                                  // matchers and weighted split
                                                  "match", "split",
                                                  // request mirroring
                                                  "mirror"};
const std::vector<std::string_view> kRouteMatchKeys = {"methods", "headers", "query", "path_regex"};
const std::vector<std::string_view> kNameMatchKeys = {"name", "value"};
const std::vector<std::string_view> kSplitKeys = {"service", "weight"};
const std::vector<std::string_view> kMirrorKeys = {"service", "percent", "max_body"};
const std::vector<std::string_view> kAccessKeys = {"methods", "allow", "deny", "basic_auth", "rate_limit", "forward_auth"};
const std::vector<std::string_view> kForwardAuthKeys = {"url", "copy_headers", "timeout"};
const std::vector<std::string_view> kRateLimitKeys = {"per_second", "burst", "key", "table_size", "ipv6_prefix"};
const std::vector<std::string_view> kBasicAuthKeys = {"htpasswd", "realm", "forward_authorization"};
const std::vector<std::string_view> kRewriteKeys = {"regex", "replacement"};
const std::vector<std::string_view> kRedirectKeys = {"to", "code"};
const std::vector<std::string_view> kHeadersKeys = {"request", "response"};
const std::vector<std::string_view> kHeaderRuleKeys = {"set", "add", "remove"};
const std::vector<std::string_view> kServiceKeys = {"endpoints", "lb",    "health",
                                                    "outlier",   "retry", "circuit_breaker", "tls"};
const std::vector<std::string_view> kUpstreamTlsKeys = {"enabled", "ca", "server_name", "cert", "key", "verify"};
const std::vector<std::string_view> kLbKeys = {"policy", "hash_on", "cookie", "slow_start"};
const std::vector<std::string_view> kHealthKeys = {"path",              "interval",
                                                   "timeout",           "healthy_threshold",
                                                   "unhealthy_threshold", "status", "port"};

// The keys of a policy section made only of PolicySettings (outlier, retry, circuit_breaker).
std::vector<std::string_view> setting_names(std::string_view section) {
  std::vector<std::string_view> names;
  for (const PolicySetting& s : policy_settings())
    if (s.section == section) names.push_back(s.name);
  return names;
}

const std::vector<std::string_view> kEndpointKeys = {"address", "weight"};
const std::vector<std::string_view> kDockerKeys = {
    "enabled",     "endpoint",          "tls",    "exposed_by_default", "host_address", "network",
    "prefer_ipv6", "use_published_ports", "compat", "empty_route_grace",  "reconnect_max", "stop_signal_timeout",
    "allowed_hosts", "max_priority", "allow_any_host", "access_files_dir", "forward_auth_addresses"};
const std::vector<std::string_view> kDockerTlsKeys = {"ca", "cert", "key"};
const std::vector<std::string_view> kDockerCompatKeys = {"nginx_proxy", "traefik"};

// What the loader remembers about a route beyond the Route struct, for cross-checks.
struct RouteNotes {
  size_t index = 0;          // position in the `routes:` list
  bool clean = true;         // no errors in its own fields
  bool explicit_name = false;
  Mark name_mark;
  Mark service_mark;
  std::vector<Mark> host_marks;  // parallel to Route::hosts
  Mark acme_mark;                // where `acme: true` was given
  Mark strip_mark;               // where strip_prefix was given (rewriting: cross-checks)
  Mark rewrite_mark;             // the first of strip_prefix / add_prefix / rewrite
  Mark redirect_mark;
  std::vector<Mark> split_marks;  // parallel to Route::split (the service names)
  Mark mirror_mark;               // routes[].mirror.service
  Mark path_mark;                 // routes[].path, when given
};

// ---------------------------------------------------------------------------------------

class Loader {
 public:
  explicit Loader(std::string source) : source_(std::move(source)) { config_.source = source_; }

  LoadResult load(std::string_view yaml);

 private:
  void fail(Mark at, std::string message) {
    errors_.push_back(Error{source_, at.line, at.column, std::move(message)});
  }
  LoadResult finish();

  // Generic readers. Each reports its own error and returns nullopt / false on failure.
  std::vector<Field> entries_of(const Value& map);
  std::vector<Field> fields_of(const Value& map, const std::vector<std::string_view>& allowed);
  bool expect_map(const Value& value, std::string_view what);
  bool expect_list(const Value& value, std::string_view what);
  std::optional<std::string> read_string(const Value& value);
  // Each string item of the list `value`, handed to take(item, text); a value that is not a
  // list fails with `example` ("a list of ..."), an item that is not a string as read_string.
  template <typename Take>
  void read_string_list(const Value& value, std::string_view example, Take&& take) {
    if (!value.node.IsSequence()) {
      fail(value.mark, value.path + ": expected a list of " + std::string(example) + ", got " + describe(value.node));
      return;
    }
    for (const Value& item : items_of(value))
      if (auto text = read_string(item)) take(item, *text);
  }
  std::optional<int64_t> read_integer(const Value& value, int64_t min, int64_t max);
  std::optional<bool> read_bool(const Value& value);
  std::optional<Millis> read_duration(const Value& value, bool allow_zero = false);
  std::optional<uint64_t> read_size(const Value& value, uint64_t min, uint64_t max);
  std::optional<SocketAddress> read_address(const Value& value, bool allow_port_zero);

  // Sections.
  void read_document(const YAML::Node& root);
  void read_listeners(const Value& value);
  void read_listener(const Value& item);
  void read_listener_tls(const Value& value, ListenerTls& tls);
  // A file named by the config: resolved against the config file's directory when relative.
  std::string resolve_path(const std::string& path) const;
  std::optional<std::string> read_named_file(const Value& at, const std::string& path);
  void read_workers(const Value& value);
  void read_admin(const Value& value);
  void read_timeouts(const Value& value);
  void read_limits(const Value& value);
  void read_limit(const LimitSpec& spec, const Value& value);
  void read_routes(const Value& value);
  void read_route(const Value& item, size_t index);
  void read_route_field(const Field& field, Route& route, RouteNotes& notes);
  void read_route_hosts(const Value& value, Route& route, RouteNotes& notes);
  void read_route_access(const Value& value, RouteAccess& access);
  void read_basic_auth(const Value& value, BasicAuth& auth);
  void read_rate_limit(const Value& value, RateLimit& limit);
  void read_forward_auth(const Value& value, ForwardAuth& auth);
  // empty_means_any: the key's absence lets every address in, so an empty list (a template that
  // rendered none) is refused rather than taken as the same.
  void read_cidrs(const Value& value, std::vector<Cidr>& out, bool empty_means_any = false);
  void read_route_headers(const Value& value, Route& route);
  void read_route_rewrite(const Field& field, Route& route, RouteNotes& notes);
  void read_path_regex(const Value& value, PathRewrite& rewrite);
  void read_redirect(const Value& value, Redirect& redirect);
  // routes[].match and routes[].split (config/route_match.h).
  void read_route_match(const Value& value, RouteMatch& match);
  void read_name_matches(const Value& value, bool header, std::vector<NameMatch>& out);
  void read_route_split(const Value& value, Route& route, RouteNotes& notes);
  void read_route_mirror(const Value& value, Route& route, RouteNotes& notes);
  void read_header_rules(const Value& value, HeaderRules& rules);
  std::optional<std::string> read_header_name(const Value& value);
  void read_services(const Value& value);
  void read_service(const Field& field);
  void read_upstream_tls(const Value& value, UpstreamTls& tls);
  void read_endpoints(const Value& value, Service& service);
  void read_service_policy(const Field& field, ServicePolicy& policy);
  void read_lb(const Value& value, ServicePolicy& policy);
  void read_health(const Value& value, HealthCheck& health);
  void read_setting_section(const Value& value, std::string_view section, ServicePolicy& policy);
  void read_setting(const PolicySetting& setting, const Value& value, ServicePolicy& policy);
  std::optional<Endpoint> read_endpoint(const Value& item);
  void read_docker(const Value& value);
  void read_docker_field(const Field& field);
  void read_docker_tls(const Value& value);
  void read_docker_compat(const Value& value);
  void read_access_log(const Value& value);
  void read_registry(const Value& value);
  void read_registry_field(const Field& field, bool* role_given);
  void read_acme(const Value& value);
  void read_encoded_characters(const Value& value, EncodedCharacters& out);

  // Checks across sections, once everything is read.
  void check_listeners_required();
  void check_duplicate_listeners();
  void check_admin_address();
  void check_request_line_fits();
  void check_route_services();
  void check_duplicate_routes();
  void check_reachable_prefixes();
  void check_route_names();
  void check_acme();

  std::string source_;
  Config config_;
  std::vector<Error> errors_;
  std::vector<RouteNotes> route_notes_;  // parallel to config_.routes
  bool saw_listeners_ = false;
  std::optional<std::string> system_ca_problem_;  // check_system_ca_store(), read once per load
  std::optional<Mark> admin_address_mark_;
  std::unordered_map<std::string, Mark> limit_marks_;  // limits given in the file
  std::unordered_map<std::string, Mark> service_marks_;
};

// ---- generic readers ----

std::vector<Field> Loader::entries_of(const Value& map) {
  std::vector<Field> fields;
  std::unordered_map<std::string, Mark> seen;
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    // Copies: the iterator hands out a temporary pair of node handles.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    Mark key_mark = mark_of(key);
    if (key_mark.line == 0) key_mark = map.mark;
    if (!key.IsScalar()) {
      fail(key_mark, (map.path.empty() ? std::string("top level") : map.path) +
                         ": keys must be plain strings, got " + describe(key));
      continue;
    }
    const std::string& name = key.Scalar();
    if (auto [first, inserted] = seen.emplace(name, key_mark); !inserted) {
      fail(key_mark, "duplicate key '" + name + "' in " +
                         (map.path.empty() ? std::string("the top-level map") : map.path) +
                         " (first at line " + std::to_string(first->second.line) + ")");
      continue;
    }
    fields.push_back(Field{name, key_mark, Value{value, value_mark(value, key_mark), child_path(map.path, name)}});
  }
  return fields;
}

std::vector<Field> Loader::fields_of(const Value& map, const std::vector<std::string_view>& allowed) {
  std::vector<Field> known;
  for (Field& field : entries_of(map)) {
    if (std::find(allowed.begin(), allowed.end(), field.key) != allowed.end()) {
      known.push_back(std::move(field));
      continue;
    }
    std::string where = map.path.empty() ? "at the top level" : "in " + map.path;
    std::string hint = field.key == "<<" ? "; YAML merge keys are not supported" : "";
    fail(field.key_mark, "unknown key '" + field.key + "' " + where + " (expected one of: " +
                             join(allowed) + hint + ")");
  }
  return known;
}

bool Loader::expect_map(const Value& value, std::string_view what) {
  if (value.node.IsMap()) return true;
  fail(value.mark, value.path + ": expected " + std::string(what) + ", got " + describe(value.node));
  return false;
}

bool Loader::expect_list(const Value& value, std::string_view what) {
  if (value.node.IsSequence()) return true;
  fail(value.mark, value.path + ": expected " + std::string(what) + ", got " + describe(value.node));
  return false;
}

std::optional<std::string> Loader::read_string(const Value& value) {
  if (value.node.IsScalar()) return value.node.Scalar();
  fail(value.mark, value.path + ": expected a string, got " + describe(value.node));
  return std::nullopt;
}

std::optional<int64_t> Loader::read_integer(const Value& value, int64_t min, int64_t max) {
  const std::string text = value.node.IsScalar() ? value.node.Scalar() : std::string();
  int64_t number = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  bool whole = ec == std::errc() && end == text.data() + text.size() && !text.empty();
  if (!value.node.IsScalar() || (!whole && ec != std::errc::result_out_of_range)) {
    fail(value.mark, value.path + ": expected an integer, got " + describe(value.node));
    return std::nullopt;
  }
  if (!whole || number < min || number > max) {
    fail(value.mark, value.path + ": " + text + " is out of range (" + std::to_string(min) + ".." +
                         std::to_string(max) + ")");
    return std::nullopt;
  }
  return number;
}

std::optional<bool> Loader::read_bool(const Value& value) {
  if (value.node.IsScalar())
    if (auto flag = parse_bool(value.node.Scalar())) return flag;
  fail(value.mark, value.path + ": expected true or false, got " + describe(value.node));
  return std::nullopt;
}

std::optional<Millis> Loader::read_duration(const Value& value, bool allow_zero) {
  std::optional<Millis> duration;
  if (value.node.IsScalar()) duration = parse_duration(value.node.Scalar());
  if (!duration) {
    fail(value.mark, value.path + ": expected a duration such as 500ms, 10s, 5m, 1h or a whole "
                                  "number of seconds (at most 87600h), got " + describe(value.node));
    return std::nullopt;
  }
  if (duration->count() == 0 && !allow_zero) {
    fail(value.mark, value.path + ": must be greater than 0");
    return std::nullopt;
  }
  return duration;
}

std::optional<uint64_t> Loader::read_size(const Value& value, uint64_t min, uint64_t max) {
  std::optional<uint64_t> size;
  if (value.node.IsScalar()) size = parse_size(value.node.Scalar());
  if (!size) {
    fail(value.mark, value.path + ": expected a size such as 65536, 64KiB or 1MiB, got " +
                         describe(value.node));
    return std::nullopt;
  }
  if (*size < min || *size > max) {
    std::string range = max == std::numeric_limits<uint64_t>::max()
                            ? "at least " + format_size(min)
                            : "between " + format_size(min) + " and " + format_size(max);
    fail(value.mark, value.path + ": must be " + range + ", got " + value.node.Scalar());
    return std::nullopt;
  }
  return size;
}

std::optional<SocketAddress> Loader::read_address(const Value& value, bool allow_port_zero) {
  if (!value.node.IsScalar()) {
    fail(value.mark, value.path + ": expected an address \"ip:port\", got " + describe(value.node));
    return std::nullopt;
  }
  const std::string& text = value.node.Scalar();
  if (auto address = parse_socket_address(text, allow_port_zero)) return address;
  fail(value.mark, value.path + ": invalid address '" + text + "': " +
                       detail::address_problem(text, allow_port_zero));
  return std::nullopt;
}

// ---- the document ----

void Loader::read_document(const YAML::Node& root) {
  Value document{root, mark_of(root), ""};
  if (root.IsNull()) {
    fail({}, "the file contains no settings (expected a map with at least 'listeners')");
    return;
  }
  if (!root.IsMap()) {
    fail(document.mark, "expected a map of settings (listeners, routes, services, ...) at the top "
                        "level, got " + describe(root));
    return;
  }
  for (const Field& field : fields_of(document, kTopLevelKeys)) {
    const Value& value = field.value;
    if (field.key == "listeners") read_listeners(value);
    else if (field.key == "workers") read_workers(value);
    else if (field.key == "access_log") read_access_log(value);  // empty: on, with defaults
    else if (value.node.IsNull()) continue;  // an empty section means "all defaults"
    else if (field.key == "admin") read_admin(value);
    else if (field.key == "timeouts") read_timeouts(value);
    else if (field.key == "limits") read_limits(value);
    else if (field.key == "routes") read_routes(value);
    else if (field.key == "services") read_services(value);
    else if (field.key == "docker") read_docker(value);
    else if (field.key == "registry") read_registry(value);
    else if (field.key == "trusted_proxies") read_cidrs(value, config_.trusted_proxies);
    else if (field.key == "acme") read_acme(value);
    else if (field.key == "sanitize_path") {
      if (auto flag = read_bool(value)) config_.sanitize_path = *flag;
    } else if (field.key == "encoded_characters") {
      read_encoded_characters(value, config_.encoded_characters);
    }
  }
  check_listeners_required();
  check_duplicate_listeners();
  check_admin_address();
  check_request_line_fits();
  check_route_services();
  check_duplicate_routes();
  check_reachable_prefixes();
  check_route_names();
  check_acme();
}

// ---- listeners, workers, admin ----

void Loader::read_listeners(const Value& value) {
  saw_listeners_ = true;
  if (value.node.IsNull() || (value.node.IsSequence() && value.node.size() == 0)) {
    fail(value.mark, "listeners: at least one listener is required, e.g. listeners: [\"0.0.0.0:8080\"]");
    return;
  }
  if (!expect_list(value, "a list of addresses such as \"0.0.0.0:8080\"")) return;
  for (const Value& item : items_of(value)) read_listener(item);
}

void Loader::read_listener(const Value& item) {
  Value address_value = item;
  std::optional<ListenerTls> tls;
  bool proxy_protocol = false;
  std::vector<Cidr> proxy_protocol_from;
  std::optional<Value> from_value;  // where proxy_protocol_from was given
  if (item.node.IsMap()) {
    std::vector<Field> fields = fields_of(item, kListenerKeys);
    auto address = std::find_if(fields.begin(), fields.end(), [](const Field& f) { return f.key == "address"; });
    if (address == fields.end()) {
      fail(item.mark, item.path + ": missing required key 'address'");
      return;
    }
    address_value = address->value;
    for (const Field& field : fields) {
      if (field.key == "proxy_protocol") {
        if (auto flag = read_bool(field.value)) proxy_protocol = *flag;
        continue;
      }
      if (field.key == "proxy_protocol_from") {
        read_cidrs(field.value, proxy_protocol_from, /*empty_means_any=*/true);
        from_value = field.value;
        continue;
      }
      if (field.key != "tls") continue;
      tls.emplace();
      tls->mark = field.value.mark;
      read_listener_tls(field.value, *tls);
    }
  } else if (!item.node.IsScalar()) {
    fail(item.mark, item.path + ": expected an address \"ip:port\" or a map with 'address', got " +
                        describe(item.node));
    return;
  }
  if (from_value && !proxy_protocol)
    fail(from_value->mark, from_value->path + ": needs proxy_protocol: true on the same listener");
  if (auto address = read_address(address_value, /*allow_port_zero=*/true)) {
    config_.listeners.push_back(Listener{*address, item.mark, std::move(tls), proxy_protocol, std::move(proxy_protocol_from)});
  }
}

std::string Loader::resolve_path(const std::string& path) const {
  if (path.empty() || path[0] == '/' || source_.find('/') == std::string::npos) return path;
  return source_.substr(0, source_.rfind('/') + 1) + path;
}

std::optional<std::string> Loader::read_named_file(const Value& at, const std::string& path) {
  std::string problem;
  std::optional<std::string> text = read_file(path, problem);
  if (!text) fail(at.mark, at.path + ": cannot read '" + path + "': " + problem);
  return text;
}

void Loader::read_listener_tls(const Value& value, ListenerTls& tls) {
  if (!expect_map(value, "a map with certificates (a list of {cert, key}) and optionally min_version and client_ca"))
    return;
  bool saw_certificates = false;
  for (const Field& field : fields_of(value, kListenerTlsKeys)) {
    if (field.key == "certificates") {
      saw_certificates = true;
      if (!expect_list(field.value, "a list of {cert: FILE, key: FILE}")) continue;
      for (const Value& item : items_of(field.value)) {
        if (!expect_map(item, "a map {cert: FILE, key: FILE}")) continue;
        TlsCertificate pair;
        pair.mark = item.mark;
        std::optional<Value> cert_at, key_at;
        for (const Field& f : fields_of(item, kTlsCertificateKeys)) {
          auto text = read_string(f.value);
          if (!text) continue;
          if (text->empty()) {
            fail(f.value.mark, f.value.path + ": must name a file");
            continue;
          }
          if (f.key == "cert") {
            pair.cert = resolve_path(*text);
            cert_at = f.value;
          } else {
            pair.key = resolve_path(*text);
            key_at = f.value;
          }
        }
        if (!cert_at || !key_at) {
          if (!cert_at) fail(item.mark, item.path + ": missing required key 'cert' (the certificate file)");
          if (!key_at) fail(item.mark, item.path + ": missing required key 'key' (the private key file)");
          continue;
        }
        auto cert_pem = read_named_file(*cert_at, pair.cert);
        auto key_pem = read_named_file(*key_at, pair.key);
        if (!cert_pem || !key_pem) continue;
        if (std::string problem = check_tls_pair(*cert_pem, *key_pem); !problem.empty()) {
          fail(item.mark, item.path + ": '" + pair.cert + "' and '" + pair.key + "': " + problem);
          continue;
        }
        tls.certificates.push_back(std::move(pair));
      }
      if (field.value.node.IsSequence() && field.value.node.size() == 0)
        fail(field.value.mark, field.value.path + ": at least one {cert, key} is required");
    } else if (field.key == "min_version") {
      auto version = read_string(field.value);
      if (!version) continue;
      if (*version != "1.2" && *version != "1.3") {
        fail(field.value.mark, field.value.path + ": must be \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are never offered), got '" +
                                   *version + "'");
        continue;
      }
      tls.min_version = *version;
    } else if (field.key == "client_ca") {
      auto path = read_string(field.value);
      if (!path || path->empty()) continue;
      tls.client_ca = resolve_path(*path);
      auto pem = read_named_file(field.value, tls.client_ca);
      if (!pem) continue;
      if (std::string problem = check_ca_bundle(*pem); !problem.empty())
        fail(field.value.mark, field.value.path + ": '" + tls.client_ca + "': " + problem);
    } else if (field.key == "session_tickets") {
      if (auto flag = read_bool(field.value)) tls.session_tickets = *flag;
    }
  }
  if (!saw_certificates) fail(value.mark, value.path + ": missing required key 'certificates' (a list of {cert, key})");
}

void Loader::read_workers(const Value& value) {
  if (auto workers = read_integer(value, 0, kMaxWorkers)) {
    config_.workers = static_cast<unsigned>(*workers);
  }
}

void Loader::read_admin(const Value& value) {
  if (!expect_map(value, "a map with 'address' and/or 'enabled'")) return;
  config_.admin.mark = value.mark;
  for (const Field& field : fields_of(value, kAdminKeys)) {
    if (field.key == "address") {
      if (auto address = read_address(field.value, /*allow_port_zero=*/true)) {
        config_.admin.address = *address;
        admin_address_mark_ = field.value.mark;
      }
    } else if (auto enabled = read_bool(field.value)) {
      config_.admin.enabled = *enabled;
    }
  }
}

// ---- timeouts and limits ----

void Loader::read_timeouts(const Value& value) {
  if (!expect_map(value, "a map of durations")) return;
  static const std::vector<std::string_view> kNames = names_of(kTimeoutSpecs);
  for (const Field& field : fields_of(value, kNames)) {
    auto spec = std::find_if(std::begin(kTimeoutSpecs), std::end(kTimeoutSpecs),
                             [&](const TimeoutSpec& s) { return s.name == field.key; });
    if (auto duration = read_duration(field.value)) config_.timeouts.*(spec->field) = *duration;
  }
}

void Loader::read_limits(const Value& value) {
  if (!expect_map(value, "a map of limits")) return;
  static const std::vector<std::string_view> kNames = names_of(kLimitSpecs);
  for (const Field& field : fields_of(value, kNames)) {
    auto spec = std::find_if(std::begin(kLimitSpecs), std::end(kLimitSpecs),
                             [&](const LimitSpec& s) { return s.name == field.key; });
    read_limit(*spec, field.value);
  }
}

void Loader::read_limit(const LimitSpec& spec, const Value& value) {
  std::optional<uint64_t> number;
  if (spec.size_syntax) {
    number = read_size(value, spec.min, spec.max);
  } else if (auto integer = read_integer(value, static_cast<int64_t>(spec.min),
                                         static_cast<int64_t>(spec.max))) {
    number = static_cast<uint64_t>(*integer);
  }
  if (!number) return;
  if (spec.field32) config_.limits.*(spec.field32) = static_cast<uint32_t>(*number);
  else config_.limits.*(spec.field64) = *number;
  limit_marks_[std::string(spec.name)] = value.mark;
}

// ---- routes ----

void Loader::read_routes(const Value& value) {
  if (!expect_list(value, "a list of routes")) return;
  size_t index = 0;
  for (const Value& item : items_of(value)) read_route(item, index++);
}

void Loader::read_route(const Value& item, size_t index) {
  if (!expect_map(item, "a route map with at least 'service'")) return;
  Route route;
  route.name = "route-" + std::to_string(index);
  route.mark = item.mark;
  RouteNotes notes;
  notes.index = index;
  size_t errors_before = errors_.size();
  bool has_service = false;
  bool has_split = false;
  for (const Field& field : fields_of(item, kRouteKeys)) {
    has_service = has_service || field.key == "service";
    has_split = has_split || field.key == "split";
    read_route_field(field, route, notes);
  }
  // A redirect is answered by Berth: such a route has no service, and nothing to rewrite.
  if (route.redirect.enabled()) {
    if (has_service) fail(notes.service_mark, item.path + ".service: a route with 'redirect' has no service");
    if (has_split) fail(item.mark, item.path + ": a route with 'redirect' has no split");
    if (route.rewrite.enabled())
      fail(notes.rewrite_mark, item.path + ": a route with 'redirect' cannot also rewrite the path "
                                           "(strip_prefix, add_prefix, rewrite)");
    if (route.mirror.enabled())
      fail(notes.mirror_mark, item.path + ".mirror: a route with 'redirect' sends nothing to mirror");
  } else if (!has_service && !has_split && notes.redirect_mark.line == 0) {
    fail(item.mark, item.path + ": missing required key 'service' (or 'split', or 'redirect')");
  }
  if (has_service && has_split)
    fail(item.mark, item.path + ": 'service' and 'split' exclude each other (a split names its services)");
  if (route.rewrite.strip == PathRewrite::Strip::kRoutePrefix && route.path_prefix == "/")
    fail(notes.strip_mark, item.path + ".strip_prefix: true strips the route's path, and this route has none "
                                       "(give 'path', or the prefix to strip)");
  notes.clean = errors_.size() == errors_before;
  config_.routes.push_back(std::move(route));
  route_notes_.push_back(std::move(notes));
}

void Loader::read_route_field(const Field& field, Route& route, RouteNotes& notes) {
  const Value& value = field.value;
  if (field.key == "name") {
    auto name = read_string(value);
    if (name && name->empty()) fail(value.mark, value.path + ": must not be empty");
    if (!name || name->empty()) return;
    route.name = *name;
    notes.explicit_name = true;
    notes.name_mark = value.mark;
  } else if (field.key == "host") {
    read_route_hosts(value, route, notes);
  } else if (field.key == "path") {
    auto path = read_string(value);
    if (!path) return;
    std::string problem = path_prefix_problem(*path);
    if (problem.empty() && path->find(';') != std::string::npos)
      problem = "must not contain ';' (routes match the path without its parameters)";
    if (!problem.empty()) {
      fail(value.mark, value.path + ": invalid path prefix '" + *path + "': " + problem);
      return;
    }
    route.path_prefix = *path;
    notes.path_mark = value.mark;
  } else if (field.key == "priority") {
    auto priority = read_integer(value, std::numeric_limits<int32_t>::min(),
                                 std::numeric_limits<int32_t>::max());
    if (priority) route.priority = static_cast<int32_t>(*priority);
  } else if (field.key == "service") {
    if (auto service = read_string(value)) {
      route.service = *service;
      notes.service_mark = value.mark;
    }
  } else if (field.key == "max_body_bytes") {
    route.max_body_bytes = read_size(value, 0, std::numeric_limits<uint64_t>::max());
  } else if (field.key == "access") {
    read_route_access(value, route.access);
  } else if (field.key == "headers") {
    read_route_headers(value, route);
  } else if (field.key == "encoded_characters") {
    read_encoded_characters(value, route.encoded_characters);
  } else if (field.key == "https_redirect") {
    if (auto flag = read_bool(value)) route.https_redirect = *flag;
  } else if (field.key == "acme") {
    if (auto flag = read_bool(value)) route.acme = *flag;
    notes.acme_mark = value.mark;
  } else if (field.key == "strip_prefix" || field.key == "add_prefix" || field.key == "rewrite" ||
             field.key == "redirect") {
    read_route_rewrite(field, route, notes);
  } else if (field.key == "match") {
    read_route_match(value, route.match);
  } else if (field.key == "split") {
    read_route_split(value, route, notes);
  } else if (field.key == "mirror") {
    read_route_mirror(value, route, notes);
  } else if (field.key == "hsts") {
    auto hsts = read_string(value);
    if (!hsts) return;
    if (!valid_hsts(*hsts)) {
      fail(value.mark, value.path + ": must be a Strict-Transport-Security value with one max-age in seconds, such as "
                                    "\"max-age=31536000; includeSubDomains\"");
      return;
    }
    route.hsts = *hsts;
  }
}

// ---- routes[].match and routes[].split ----

void Loader::read_route_match(const Value& value, RouteMatch& match) {
  if (!expect_map(value, "a map with methods, headers, query and/or path_regex")) return;
  for (const Field& field : fields_of(value, kRouteMatchKeys)) {
    const Value& v = field.value;
    if (field.key == "methods") {
      if (!expect_list(v, "a list of HTTP methods, e.g. [GET, HEAD]")) continue;
      if (items_of(v).empty()) {  // left out, it means every method: not what an empty list says
        fail(v.mark, v.path + ": must not be empty (leave the key out to match every method)");
        continue;
      }
      for (const Value& item : items_of(v)) {
        auto text = read_string(item);
        if (!text) continue;
        auto method = normalize_method(*text);
        if (!method) {
          fail(item.mark, item.path + ": '" + *text + "' is not an HTTP method");
          continue;
        }
        if (std::find(match.methods.begin(), match.methods.end(), *method) == match.methods.end())
          match.methods.push_back(*method);
      }
    } else if (field.key == "headers" || field.key == "query") {
      read_name_matches(v, field.key == "headers", field.key == "headers" ? match.headers : match.query);
    } else if (field.key == "path_regex") {
      auto pattern = read_string(v);
      if (!pattern) continue;
      if (pattern->empty()) {
        fail(v.mark, v.path + ": must not be empty");
        continue;
      }
      std::string problem;
      match.path_regex_compiled = compile_path_regex(*pattern, problem);
      if (!match.path_regex_compiled) {
        fail(v.mark, v.path + ": " + problem);
        continue;
      }
      match.path_regex = *pattern;
    }
  }
}

void Loader::read_name_matches(const Value& value, bool header, std::vector<NameMatch>& out) {
  const char* example = header ? "a list of {name, value} maps, e.g. [{name: X-Env, value: canary}, {name: X-Debug}]"
                               : "a list of {name, value} maps, e.g. [{name: beta, value: \"1\"}, {name: preview}]";
  if (!expect_list(value, example)) return;
  for (const Value& item : items_of(value)) {
    if (!expect_map(item, "a map with 'name' and optionally 'value' (no value: present)")) continue;
    NameMatch entry;
    bool named = false;
    for (const Field& field : fields_of(item, kNameMatchKeys)) {
      auto text = read_string(field.value);
      if (!text) continue;
      if (field.key == "name") {
        std::string problem = header ? header_match_name_problem(*text) : query_match_problem(*text, true);
        if (!problem.empty()) {
          fail(field.value.mark, field.value.path + ": " + problem);
          continue;
        }
        entry.name = *text;
        named = true;
      } else {
        std::string problem = header ? header_value_problem(*text) : query_match_problem(*text, false);
        if (!problem.empty()) {
          fail(field.value.mark, field.value.path + ": " + problem);
          continue;
        }
        entry.value = *text;
      }
    }
    if (!named) {
      if (item.node["name"].IsDefined()) continue;  // reported above
      fail(item.mark, item.path + ": missing required key 'name'");
      continue;
    }
    out.push_back(std::move(entry));
  }
}

void Loader::read_route_split(const Value& value, Route& route, RouteNotes& notes) {
  if (!expect_list(value, "a list of {service, weight} maps, e.g. [{service: web-v1, weight: 90}, "
                          "{service: web-v2, weight: 10}]"))
    return;
  if (value.node.size() == 0) {
    fail(value.mark, value.path + ": must name at least one service");
    return;
  }
  for (const Value& item : items_of(value)) {
    if (!expect_map(item, "a map with 'service' and 'weight'")) continue;
    SplitTarget target;
    Mark service_mark = item.mark;
    bool has_service = false, has_weight = false, ok = true;
    for (const Field& field : fields_of(item, kSplitKeys)) {
      if (field.key == "service") {
        auto name = read_string(field.value);
        has_service = true;
        if (!name) { ok = false; continue; }
        target.service = *name;
        service_mark = field.value.mark;
      } else {
        auto weight = read_integer(field.value, 1, 1'000'000);
        has_weight = true;
        if (!weight) { ok = false; continue; }
        target.weight = static_cast<uint32_t>(*weight);
      }
    }
    if (!has_service) fail(item.mark, item.path + ": missing required key 'service'");
    if (!has_weight) fail(item.mark, item.path + ": missing required key 'weight' (1..1000000)");
    if (!ok || !has_service || !has_weight) continue;
    for (size_t i = 0; i < route.split.size(); ++i) {
      if (route.split[i].service != target.service) continue;
      fail(service_mark, item.path + ".service: '" + target.service + "' is already in this split (line " +
                             std::to_string(notes.split_marks[i].line) + ")");
      ok = false;
    }
    if (!ok) continue;
    route.split.push_back(std::move(target));
    notes.split_marks.push_back(service_mark);
  }
}

// routes[].mirror: {service: NAME, percent: P, max_body: SIZE}. The service is checked once
// every service is known (check_route_services).
void Loader::read_route_mirror(const Value& value, Route& route, RouteNotes& notes) {
  if (!expect_map(value, "a map with 'service', and optionally 'percent' (0 < P <= 100) and 'max_body'")) return;
  RouteMirror mirror;
  bool has_service = false, ok = true;
  for (const Field& field : fields_of(value, kMirrorKeys)) {
    const Value& v = field.value;
    if (field.key == "service") {
      auto name = read_string(v);
      has_service = true;
      if (!name || name->empty()) {
        if (name) fail(v.mark, v.path + ": must name a service");
        ok = false;
        continue;
      }
      mirror.service = *name;
      notes.mirror_mark = v.mark;
    } else if (field.key == "percent") {
      auto text = read_string(v);
      std::optional<uint32_t> bp = text ? parse_mirror_percent(*text) : std::nullopt;
      if (!bp) {
        if (text) fail(v.mark, v.path + ": '" + *text + "' is not a percentage above 0 and at most 100 (e.g. 10 or 12.5)");
        ok = false;
        continue;
      }
      mirror.percent_bp = *bp;
    } else if (field.key == "max_body") {
      auto size = read_size(v, 0, 64ull * 1024 * 1024);
      if (!size) {
        ok = false;
        continue;
      }
      mirror.max_body = *size;
    }
  }
  if (!has_service) fail(value.mark, value.path + ": missing required key 'service'");
  if (ok && has_service) route.mirror = std::move(mirror);
}

void Loader::read_route_access(const Value& value, RouteAccess& access) {
  if (!expect_map(value, "a map with methods, allow and/or deny")) return;
  for (const Field& field : fields_of(value, kAccessKeys)) {
    if (field.key == "methods") {
      if (!expect_list(field.value, "a list of HTTP methods, e.g. [GET, POST]")) continue;
      if (items_of(field.value).empty()) {  // as allow: [], which a template rendering nothing writes
        fail(field.value.mark, field.value.path + ": must not be empty (leave the key out to allow every method)");
        continue;
      }
      for (const Value& item : items_of(field.value)) {
        auto method = read_string(item);
        if (!method) continue;
        const bool token = !method->empty() && std::all_of(method->begin(), method->end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
        });
        if (!token) {
          fail(item.mark, item.path + ": '" + *method + "' is not an HTTP method");
          continue;
        }
        std::string upper = *method;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (std::find(access.methods.begin(), access.methods.end(), upper) == access.methods.end())
          access.methods.push_back(upper);
      }
    } else if (field.key == "allow") {
      read_cidrs(field.value, access.allow, /*empty_means_any=*/true);
    } else if (field.key == "deny") {
      read_cidrs(field.value, access.deny);
    } else if (field.key == "basic_auth") {
      read_basic_auth(field.value, access.basic_auth);
    } else if (field.key == "rate_limit") {
      read_rate_limit(field.value, access.rate_limit);
    } else if (field.key == "forward_auth") {
      read_forward_auth(field.value, access.forward_auth);
    }
  }
}

void Loader::read_forward_auth(const Value& value, ForwardAuth& auth) {
  if (!expect_map(value, "a map with url, and optionally copy_headers and timeout")) return;
  bool url_given = false;
  for (const Field& field : fields_of(value, kForwardAuthKeys)) {
    if (field.key == "url") {
      auto url = read_string(field.value);
      url_given = true;
      if (!url) continue;
      if (std::string problem = parse_forward_auth_url(*url, auth); !problem.empty()) {
        fail(field.value.mark, field.value.path + ": " + problem);
        continue;
      }
      auth.url = *url;
    } else if (field.key == "copy_headers") {
      if (!expect_list(field.value, "a list of header names, e.g. [X-User]")) continue;
      for (const Value& item : items_of(field.value))
        if (auto name = read_header_name(item)) auth.copy_headers.push_back(*name);
    } else if (field.key == "timeout") {
      if (auto d = read_duration(field.value)) auth.timeout = *d;
    }
  }
  if (!url_given) fail(value.mark, value.path + ": 'url' (the authentication service) is required");
}

void Loader::read_rate_limit(const Value& value, RateLimit& limit) {
  if (!expect_map(value, "a map with per_second, and optionally burst, key, table_size and ipv6_prefix")) return;
  bool burst_given = false, per_second_given = false;
  for (const Field& field : fields_of(value, kRateLimitKeys)) {
    if (field.key == "per_second") {
      per_second_given = true;  // a bad value is reported at the value, not as missing
      if (auto n = read_integer(field.value, 1, RateLimit::kMaxPerSecond)) limit.per_second = static_cast<uint32_t>(*n);
    } else if (field.key == "burst") {
      if (auto n = read_integer(field.value, 1, RateLimit::kMaxBurst)) {
        limit.burst = static_cast<uint32_t>(*n);
        burst_given = true;
      }
    } else if (field.key == "table_size") {
      if (auto n = read_integer(field.value, RateLimit::kMinTableSize, RateLimit::kMaxTableSize))
        limit.table_size = RateLimit::table_size_for(static_cast<uint32_t>(*n));
    } else if (field.key == "ipv6_prefix") {
      if (auto n = read_integer(field.value, 1, 128)) limit.ipv6_prefix = static_cast<uint32_t>(*n);
    } else if (field.key == "key") {
      auto key = read_string(field.value);
      if (!key) continue;
      if (*key == "client_ip") {
        limit.header.clear();
      } else if (key->rfind("header:", 0) == 0 && key->size() > 7 &&
                 std::all_of(key->begin() + 7, key->end(), [](char c) {
                   return std::isalnum(static_cast<unsigned char>(c)) ||
                          std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
                 })) {
        limit.header = key->substr(7);
      } else {
        fail(field.value.mark, field.value.path + ": expected client_ip or header:NAME, got '" + *key + "'");
      }
    }
  }
  if (limit.per_second == 0) {
    if (!per_second_given) fail(value.mark, value.path + ": 'per_second' is required");
    return;
  }
  if (!burst_given) limit.burst = limit.per_second;
}

void Loader::read_basic_auth(const Value& value, BasicAuth& auth) {
  if (!expect_map(value, "a map with htpasswd (a file) and optionally realm and forward_authorization")) return;
  Mark file_mark = value.mark;
  bool file_given = false;
  for (const Field& field : fields_of(value, kBasicAuthKeys)) {
    if (field.key == "htpasswd") {
      file_given = true;  // a bad value is reported at the value, not as missing
      if (auto path = read_string(field.value)) {
        auth.htpasswd = *path;
        file_mark = field.value.mark;
      }
    } else if (field.key == "realm") {
      auto realm = read_string(field.value);
      if (!realm) continue;
      if (std::string problem = realm_problem(*realm); !problem.empty()) {
        fail(field.value.mark, field.value.path + ": " + problem);
        continue;
      }
      auth.realm = *realm;
    } else if (field.key == "forward_authorization") {
      if (auto flag = read_bool(field.value)) auth.forward_authorization = *flag;
    }
  }
  if (auth.htpasswd.empty()) {
    if (!file_given) fail(value.mark, value.path + ": 'htpasswd' (the password file) is required");
    return;
  }
  // A relative path is relative to the configuration file.
  std::string path = auth.htpasswd;
  if (path[0] != '/' && source_.find('/') != std::string::npos) path = source_.substr(0, source_.rfind('/') + 1) + path;
  std::string problem;
  std::optional<std::string> text = read_file(path, problem);
  if (!text) {
    fail(file_mark, value.path + ".htpasswd: cannot read '" + path + "': " + problem);
    return;
  }
  std::vector<Error> problems;
  auth.users = parse_htpasswd(*text, path, problems);
  for (Error& e : problems) errors_.push_back(std::move(e));
  if (problems.empty() && auth.users.empty())
    fail(file_mark, value.path + ".htpasswd: '" + path + "' lists no users");
}

void Loader::read_cidrs(const Value& value, std::vector<Cidr>& out, bool empty_means_any) {
  if (!expect_list(value, "a list of addresses or ranges, e.g. [\"10.0.0.0/8\", \"::1\"]")) return;
  if (empty_means_any && items_of(value).empty()) {
    fail(value.mark, value.path + ": an empty list would let every address in; list at least one address or range, "
                                  "or remove the key");
    return;
  }
  for (const Value& item : items_of(value)) {
    auto text = read_string(item);
    if (!text) continue;
    auto cidr = parse_cidr(*text);
    if (!cidr) {
      fail(item.mark, item.path + ": invalid address range '" + *text +
                          "' (expected a numeric IPv4 or IPv6 address, optionally with /prefix bits: 0-32 or "
                          "0-128; an IPv4-mapped range ::ffff:a.b.c.d needs /96 or more)");
      continue;
    }
    out.push_back(std::move(*cidr));
  }
}

void Loader::read_route_headers(const Value& value, Route& route) {
  if (!expect_map(value, "a map with request and/or response rules")) return;
  for (const Field& field : fields_of(value, kHeadersKeys))
    read_header_rules(field.value, field.key == "request" ? route.request_headers : route.response_headers);
}

// ---- routes: path rewriting and redirects ----

void Loader::read_route_rewrite(const Field& field, Route& route, RouteNotes& notes) {
  const Value& value = field.value;
  if (field.key == "redirect") {
    notes.redirect_mark = value.mark;
    read_redirect(value, route.redirect);
    return;
  }
  if (notes.rewrite_mark.line == 0) notes.rewrite_mark = value.mark;
  if (field.key == "strip_prefix") {
    notes.strip_mark = value.mark;
    if (!value.node.IsScalar()) {
      fail(value.mark, value.path + ": expected true, false or a path prefix such as \"/api\", got " +
                           describe(value.node));
      return;
    }
    const std::string text = value.node.Scalar();
    if (auto flag = parse_bool(text)) {
      route.rewrite.strip = *flag ? PathRewrite::Strip::kRoutePrefix : PathRewrite::Strip::kNone;
      return;
    }
    if (std::string problem = rewrite_prefix_problem(text); !problem.empty()) {
      fail(value.mark, value.path + ": expected true, false or a path prefix: '" + text + "' " + problem);
      return;
    }
    route.rewrite.strip = PathRewrite::Strip::kGiven;
    route.rewrite.strip_prefix = text;
  } else if (field.key == "add_prefix") {
    auto text = read_string(value);
    if (!text) return;
    if (std::string problem = rewrite_prefix_problem(*text); !problem.empty()) {
      fail(value.mark, value.path + ": invalid prefix '" + *text + "': " + problem);
      return;
    }
    route.rewrite.add_prefix = *text;
  } else {
    read_path_regex(value, route.rewrite);
  }
}

void Loader::read_path_regex(const Value& value, PathRewrite& rewrite) {
  if (!expect_map(value, "a map with regex and replacement")) return;
  std::optional<std::string> regex, replacement;
  Mark regex_mark = value.mark, replacement_mark = value.mark;
  for (const Field& field : fields_of(value, kRewriteKeys)) {
    if (field.key == "regex") {
      regex = read_string(field.value);
      regex_mark = field.value.mark;
    } else {
      replacement = read_string(field.value);
      replacement_mark = field.value.mark;
    }
  }
  if (!regex || !replacement) {
    if (!value.node["regex"] || !value.node["replacement"])
      fail(value.mark, value.path + ": needs both 'regex' and 'replacement'");
    return;
  }
  if (std::string problem = compile_path_regex(*regex, *replacement, rewrite); !problem.empty()) {
    const bool in_pattern = problem.starts_with("invalid regex") || problem.starts_with("regex");
    fail(in_pattern ? regex_mark : replacement_mark,
         value.path + (in_pattern ? ".regex: " : ".replacement: ") + problem);
  }
}

void Loader::read_redirect(const Value& value, Redirect& redirect) {
  if (!expect_map(value, "a map with 'to' (and optionally 'code')")) return;
  std::optional<std::string> to;
  for (const Field& field : fields_of(value, kRedirectKeys)) {
    if (field.key == "to") {
      to = read_string(field.value);
      if (!to) continue;
      if (std::string problem = redirect_target_problem(*to); !problem.empty()) {
        fail(field.value.mark, field.value.path + ": '" + *to + "' " + problem);
        to.reset();
      }
    } else if (auto code = read_integer(field.value, 100, 999)) {
      if (std::string problem = redirect_code_problem(*code); !problem.empty())
        fail(field.value.mark, field.value.path + ": " + std::to_string(*code) + " " + problem);
      else
        redirect.code = static_cast<uint16_t>(*code);
    }
  }
  if (to) redirect.to = *to;
  else if (!value.node["to"]) fail(value.mark, value.path + ": missing required key 'to'");
}

std::optional<std::string> Loader::read_header_name(const Value& value) {
  auto name = read_string(value);
  if (!name) return std::nullopt;
  if (std::string problem = header_name_problem(*name); !problem.empty()) {
    fail(value.mark, value.path + ": " + problem);
    return std::nullopt;
  }
  return name;
}

void Loader::read_header_rules(const Value& value, HeaderRules& rules) {
  if (!expect_map(value, "a map with set, add and/or remove")) return;
  for (const Field& field : fields_of(value, kHeaderRuleKeys)) {
    if (field.key == "remove") {
      if (!expect_list(field.value, "a list of header names")) continue;
      for (const Value& item : items_of(field.value))
        if (auto name = read_header_name(item)) rules.remove.push_back(*name);
      continue;
    }
    if (!expect_map(field.value, "a map of header name -> value")) continue;
    auto& list = field.key == "set" ? rules.set : rules.add;
    for (const Field& entry : entries_of(field.value)) {
      if (std::string problem = header_name_problem(entry.key); !problem.empty()) {
        fail(entry.key_mark, field.value.path + ": " + problem);
        continue;
      }
      auto text = read_string(entry.value);
      if (!text) continue;
      if (std::string problem = header_value_problem(*text); !problem.empty()) {
        fail(entry.value.mark, entry.value.path + ": " + problem);
        continue;
      }
      list.emplace_back(entry.key, *text);
    }
  }
}

void Loader::read_route_hosts(const Value& value, Route& route, RouteNotes& notes) {
  std::vector<Value> hosts;
  if (value.node.IsScalar()) {
    hosts.push_back(value);
  } else if (value.node.IsSequence() && value.node.size() > 0) {
    hosts = items_of(value);
  } else {
    fail(value.mark, value.path + ": expected a host name or a non-empty list of host names, got " +
                         describe(value.node) + " (omit 'host' to match any host)");
    return;
  }
  for (const Value& host : hosts) {
    auto text = read_string(host);
    if (!text) continue;
    auto pattern = normalize_host_pattern(*text);
    if (!pattern) {
      fail(host.mark, host.path + ": invalid host pattern '" + *text + "': " +
                          detail::host_pattern_problem(*text));
      continue;
    }
    auto earlier = std::find(route.hosts.begin(), route.hosts.end(), *pattern);
    if (earlier != route.hosts.end()) {
      fail(host.mark, host.path + ": host '" + *pattern + "' is listed twice in this route");
      continue;
    }
    route.hosts.push_back(*pattern);
    notes.host_marks.push_back(host.mark);
  }
}

// ---- services ----

void Loader::read_services(const Value& value) {
  if (!expect_map(value, "a map of service name -> {endpoints: [...]}")) return;
  for (const Field& field : entries_of(value)) read_service(field);
}

void Loader::read_service(const Field& field) {
  if (!valid_service_name(field.key)) {
    fail(field.key_mark, "services: invalid service name '" + field.key +
                             "' (letters, digits, '-', '_' and '.' only)");
    return;
  }
  Service service;
  service.name = field.key;
  service.mark = field.key_mark;
  service_marks_[field.key] = field.key_mark;
  const Value& value = field.value;
  if (expect_map(value, "a map with 'endpoints'")) {
    bool has_endpoints = false;
    for (const Field& f : fields_of(value, kServiceKeys)) {
      if (f.key == "endpoints") {
        has_endpoints = true;
        read_endpoints(f.value, service);
      } else if (f.key == "tls") {
        read_upstream_tls(f.value, service.policy.tls);
      } else {
        read_service_policy(f, service.policy);
      }
    }
    if (service.policy.tls.enabled && service.policy.health.enabled)
      fail(field.key_mark, value.path + ": active health checks ('health') do not speak TLS yet; a service with "
                                        "'tls' relies on passive health ('outlier')");
    if (!has_endpoints) {
      fail(field.key_mark, value.path + ": missing required key 'endpoints' "
                                        "(use 'endpoints: []' for a service with no endpoints yet)");
    }
  }
  config_.services.push_back(std::move(service));
}

void Loader::read_upstream_tls(const Value& value, UpstreamTls& tls) {
  if (!expect_map(value, "a map {enabled, ca, server_name, cert, key, verify}")) return;
  tls.enabled = true;  // a tls section means TLS unless it says enabled: false
  std::optional<Value> cert_at, key_at;
  for (const Field& f : fields_of(value, kUpstreamTlsKeys)) {
    if (f.key == "enabled" || f.key == "verify") {
      auto flag = read_bool(f.value);
      if (!flag) continue;
      (f.key == "enabled" ? tls.enabled : tls.verify) = *flag;
      continue;
    }
    auto text = read_string(f.value);
    if (!text || text->empty()) continue;  // "": as if not given (the default)
    if (f.key == "server_name") {
      tls.server_name = server_name_text(*text);
      if (std::string problem = server_name_problem(*text); !problem.empty())
        fail(f.value.mark, f.value.path + ": '" + *text + "' " + problem);
      continue;
    }
    const std::string path = resolve_path(*text);
    auto pem = read_named_file(f.value, path);
    if (f.key == "ca") {
      tls.ca = path;
      if (pem)
        if (std::string problem = check_ca_bundle(*pem); !problem.empty())
          fail(f.value.mark, f.value.path + ": '" + path + "': " + problem);
    } else if (f.key == "cert") {
      tls.cert = path;
      if (pem) cert_at = f.value;
    } else {
      tls.key = path;
      if (pem) key_at = f.value;
    }
  }
  if (tls.enabled && tls.verify && tls.ca.empty()) {
    if (!system_ca_problem_) system_ca_problem_ = check_system_ca_store();
    if (!system_ca_problem_->empty()) fail(value.mark, value.path + ": no 'ca', and " + *system_ca_problem_);
  }
  if (tls.cert.empty() != tls.key.empty()) {
    fail(value.mark, value.path + ": 'cert' and 'key' (the client certificate) must be given together");
  } else if (cert_at && key_at) {
    std::string problem;
    auto cert_pem = read_file(tls.cert, problem);
    auto key_pem = read_file(tls.key, problem);
    if (cert_pem && key_pem) problem = check_tls_pair(*cert_pem, *key_pem);
    if (!problem.empty()) fail(cert_at->mark, value.path + ": '" + tls.cert + "' and '" + tls.key + "': " + problem);
  }
}

void Loader::read_endpoints(const Value& value, Service& service) {
  if (!expect_list(value, "a list of endpoints (\"ip:port\" or {address, weight})")) return;
  for (const Value& item : items_of(value)) {
    auto endpoint = read_endpoint(item);
    if (!endpoint) continue;
    auto same = std::find_if(service.endpoints.begin(), service.endpoints.end(), [&](const Endpoint& e) {
      return e.address.to_string() == endpoint->address.to_string();
    });
    if (same != service.endpoints.end()) {
      fail(item.mark, item.path + ": duplicate endpoint " + endpoint->address.to_string() +
                          " (already at line " + std::to_string(same->mark.line) + ")");
      continue;
    }
    service.endpoints.push_back(std::move(*endpoint));
  }
}

std::optional<Endpoint> Loader::read_endpoint(const Value& item) {
  Endpoint endpoint;
  endpoint.mark = item.mark;
  if (item.node.IsScalar()) {
    auto address = read_address(item, /*allow_port_zero=*/false);
    if (!address) return std::nullopt;
    endpoint.address = *address;
    return endpoint;
  }
  if (!item.node.IsMap()) {
    fail(item.mark, item.path + ": expected an address \"ip:port\" or a map with 'address' and "
                                "'weight', got " + describe(item.node));
    return std::nullopt;
  }
  bool ok = true;
  bool has_address = false;
  for (const Field& field : fields_of(item, kEndpointKeys)) {
    if (field.key == "address") {
      has_address = true;
      auto address = read_address(field.value, /*allow_port_zero=*/false);
      if (address) endpoint.address = *address;
      ok = ok && address.has_value();
    } else {
      auto weight = read_integer(field.value, 1, 1000);
      if (weight) endpoint.weight = static_cast<uint32_t>(*weight);
      ok = ok && weight.has_value();
    }
  }
  if (!has_address) fail(item.mark, item.path + ": missing required key 'address'");
  if (!ok || !has_address) return std::nullopt;
  return endpoint;
}

// ---- service policies: lb, health, outlier, retry, circuit_breaker ----

void Loader::read_service_policy(const Field& field, ServicePolicy& policy) {
  if (field.value.node.IsNull()) {
    if (field.key == "health") policy.health.enabled = true;  // `health:` alone: all defaults
    return;
  }
  if (field.key == "lb") read_lb(field.value, policy);
  else if (field.key == "health") read_health(field.value, policy.health);
  else read_setting_section(field.value, field.key, policy);  // outlier, retry, circuit_breaker
}

void Loader::read_lb(const Value& value, ServicePolicy& policy) {
  if (!expect_map(value, "a map with 'policy' (and 'hash_on' / 'cookie' / 'slow_start')")) return;
  LoadBalancing& lb = policy.lb;
  for (const Field& f : fields_of(value, kLbKeys)) {
    if (const PolicySetting* setting = find_policy_setting("lb", f.key)) {
      read_setting(*setting, f.value, policy);
      continue;
    }
    auto text = read_string(f.value);
    if (!text) continue;
    if (f.key == "policy") {
      auto policy = parse_lb_policy(*text);
      if (!policy) {
        fail(f.value.mark, f.value.path + ": unknown policy '" + *text +
                               "' (expected round_robin, least_request, hash or sticky)");
        continue;
      }
      lb.policy = *policy;
    } else if (f.key == "hash_on") {
      if (!parse_hash_on(*text, lb))
        fail(f.value.mark, f.value.path + ": expected client_ip, header:NAME or cookie:NAME, got '" + *text + "'");
    } else if (!valid_cookie_name(*text)) {
      fail(f.value.mark, f.value.path + ": '" + *text + "' is not a valid cookie name");
    } else {
      lb.cookie = *text;
    }
  }
}

void Loader::read_health(const Value& value, HealthCheck& health) {
  if (!expect_map(value, "a map of health-check settings (path, interval, timeout, ...)")) return;
  health.enabled = true;
  for (const Field& f : fields_of(value, kHealthKeys)) {
    if (f.key == "path") {
      auto text = read_string(f.value);
      if (!text) continue;
      std::string problem = path_prefix_problem(text->substr(0, text->find('?')));
      if (!problem.empty()) fail(f.value.mark, f.value.path + ": " + problem);
      else health.path = *text;
    } else if (f.key == "interval") {
      if (auto d = read_duration(f.value)) health.interval = *d;
    } else if (f.key == "timeout") {
      if (auto d = read_duration(f.value)) health.timeout = *d;
    } else if (f.key == "healthy_threshold") {
      if (auto n = read_integer(f.value, 1, 100)) health.healthy_threshold = static_cast<uint32_t>(*n);
    } else if (f.key == "unhealthy_threshold") {
      if (auto n = read_integer(f.value, 1, 100)) health.unhealthy_threshold = static_cast<uint32_t>(*n);
    } else if (f.key == "status") {
      auto text = read_string(f.value);
      if (text && !parse_status_range(*text, health))
        fail(f.value.mark, f.value.path + ": expected a status or a range such as \"200-399\", got '" + *text + "'");
    } else if (f.key == "port") {
      if (auto n = read_integer(f.value, 1, 65535)) health.port = static_cast<uint16_t>(*n);
    }
  }
}

void Loader::read_setting_section(const Value& value, std::string_view section, ServicePolicy& policy) {
  const std::string what = section == "outlier" ? "outlier-detection settings"
                           : section == "retry"  ? "retry settings"
                                                 : "circuit-breaker limits";
  if (!expect_map(value, "a map of " + what)) return;
  for (const Field& f : fields_of(value, setting_names(section)))
    read_setting(*find_policy_setting(section, f.key), f.value, policy);
}

// The value's kind and range come from the shared PolicySetting; the messages are the loader's.
void Loader::read_setting(const PolicySetting& setting, const Value& value, ServicePolicy& policy) {
  using Kind = PolicySetting::Kind;
  if (setting.kind == Kind::kInteger) {
    if (auto n = read_integer(value, setting.min, setting.max)) setting.apply(policy, *n);
  } else if (setting.kind == Kind::kBool) {
    if (auto b = read_bool(value)) setting.apply(policy, *b ? 1 : 0);
  } else if (auto d = read_duration(value, setting.min == 0)) {
    if (d->count() > setting.max)
      fail(value.mark, value.path + ": must be " + policy_setting_expectation(setting) + ", got " + value.node.Scalar());
    else
      setting.apply(policy, d->count());
  }
}

// ---- access log ----

void Loader::read_access_log(const Value& value) {
  AccessLog& log = config_.access_log;
  log.enabled = true;
  log.mark = value.mark;
  bool path_given = false;
  if (!value.node.IsNull()) {
    if (!expect_map(value, "a map with 'format', 'path' and/or 'syslog'")) return;
    for (const Field& field : fields_of(value, kAccessLogKeys)) {
      auto text = read_string(field.value);
      if (!text) continue;
      if (field.key == "format") {
        if (*text == "json") log.format = AccessLog::Format::kJson;
        else if (*text == "combined") log.format = AccessLog::Format::kCombined;
        else fail(field.value.mark, field.value.path + ": expected json or combined, got '" + *text + "'");
      } else if (field.key == "path") {
        path_given = true;
        if (text->find('\0') != std::string::npos) {
          fail(field.value.mark, field.value.path + ": a file path must not contain NUL");
          continue;
        }
        log.path = *text;
      } else {
        std::string problem = parse_syslog_target(*text, log);
        if (!problem.empty()) fail(field.value.mark, field.value.path + ": " + problem);
      }
    }
  }
  // Neither given: JSON lines on stdout. Both explicitly empty: nowhere to write.
  if (!path_given && log.syslog.empty()) log.path = "-";
  if (path_given && log.path.empty() && log.syslog.empty() && log.syslog_kind == AccessLog::Syslog::kNone)
    fail(value.mark, "access_log: 'path' and 'syslog' are both empty; set one (\"-\" is stdout) or remove access_log");
}

// ---- docker ----

void Loader::read_docker(const Value& value) {
  if (!expect_map(value, "a map of Docker discovery settings")) return;
  config_.docker.mark = value.mark;
  for (const Field& field : fields_of(value, kDockerKeys)) read_docker_field(field);
  const Docker& docker = config_.docker;
  const bool tls = !docker.tls.ca.empty() || !docker.tls.cert.empty() || !docker.tls.key.empty();
  if (tls && docker.endpoint.rfind("tcp://", 0) != 0) {
    fail(value.mark, "docker.tls: TLS needs a tcp:// endpoint (the endpoint is '" + docker.endpoint + "')");
  }
  if (docker.tls.cert.empty() != docker.tls.key.empty()) {
    fail(value.mark, "docker.tls: 'cert' and 'key' must be given together");
  }
}

void Loader::read_docker_field(const Field& field) {
  Docker& docker = config_.docker;
  const Value& value = field.value;
  auto read_flag = [&](bool& target) {
    if (auto flag = read_bool(value)) target = *flag;
  };
  if (field.key == "enabled") {
    read_flag(docker.enabled);
  } else if (field.key == "exposed_by_default") {
    read_flag(docker.exposed_by_default);
  } else if (field.key == "prefer_ipv6") {
    read_flag(docker.prefer_ipv6);
  } else if (field.key == "use_published_ports") {
    read_flag(docker.use_published_ports);
  } else if (field.key == "endpoint") {
    auto text = read_string(value);
    if (!text) return;
    bool unix_path = text->rfind("unix:///", 0) == 0 && text->size() > 8;
    bool tcp = false;
    if (text->rfind("tcp://", 0) == 0) {
      std::string_view rest = std::string_view(*text).substr(6);
      size_t colon = rest.rfind(':');
      int64_t port = 0;
      if (colon != std::string_view::npos && colon > 0) {
        std::string_view digits = rest.substr(colon + 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        tcp = ec == std::errc() && end == digits.data() + digits.size() && port > 0 && port < 65536;
      }
    }
    if (!unix_path && !tcp) {
      fail(value.mark, value.path + ": expected \"unix:///path/to/docker.sock\" or \"tcp://host:port\", got '" +
                           *text + "'");
      return;
    }
    docker.endpoint = *text;
  } else if (field.key == "tls") {
    if (!value.node.IsNull()) read_docker_tls(value);
  } else if (field.key == "host_address") {
    auto text = read_string(value);
    if (!text) return;
    std::string probe = text->find(':') != std::string::npos ? "[" + *text + "]:1" : *text + ":1";
    auto address = parse_socket_address(probe, false);
    if (!address || *text == "localhost") {
      fail(value.mark, value.path + ": expected a numeric IP address such as 127.0.0.1 or ::1, got '" +
                           *text + "'");
      return;
    }
    docker.host_address = address->host;
  } else if (field.key == "network") {
    if (auto text = read_string(value)) docker.network = *text;
  } else if (field.key == "compat") {
    if (!value.node.IsNull()) read_docker_compat(value);
  } else if (field.key == "empty_route_grace") {
    if (auto duration = read_duration(value, true)) docker.empty_route_grace = *duration;
  } else if (field.key == "reconnect_max") {
    if (auto duration = read_duration(value)) docker.reconnect_max = *duration;
  } else if (field.key == "stop_signal_timeout") {
    if (auto duration = read_duration(value)) docker.stop_signal_timeout = *duration;
  } else if (field.key == "allow_any_host") {
    read_flag(docker.allow_any_host);
  } else if (field.key == "access_files_dir") {
    auto dir = read_string(value);
    if (!dir) return;
    if (!dir->empty() && ((*dir)[0] != '/' || dir->find("/../") != std::string::npos || dir->ends_with("/..") ||
                          dir->find("/./") != std::string::npos || dir->ends_with("/."))) {
      fail(value.mark, value.path + ": expected an absolute directory path without '.' or '..' parts, got '" + *dir + "'");
      return;
    }
    while (dir->size() > 1 && dir->back() == '/') dir->pop_back();
    docker.access_files_dir = *dir;
  } else if (field.key == "forward_auth_addresses") {
    read_string_list(value, "addresses such as [\"127.0.0.1:9100\"]", [&](const Value& item, const std::string& text) {
      ForwardAuth probe;
      if (text.find('/') != std::string::npos || !parse_forward_auth_url("http://" + text + "/", probe).empty()) {
        fail(item.mark, item.path + ": expected a numeric address (or localhost) and a port such as 127.0.0.1:9100, got '" +
                            text + "'");
        return;
      }
      docker.forward_auth_addresses.push_back(probe.address.to_string());
    });
  } else if (field.key == "max_priority") {
    if (auto n = read_integer(value, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()))
      docker.max_priority = static_cast<int32_t>(*n);
  } else if (field.key == "allowed_hosts") {
    read_string_list(value, "host patterns such as [\"*.apps.example.com\"]", [&](const Value& item, const std::string& text) {
      auto pattern = normalize_host_pattern(text);
      if (!pattern) {
        fail(item.mark, item.path + ": invalid host pattern '" + text + "': " + detail::host_pattern_problem(text));
        return;
      }
      docker.allowed_hosts.push_back(*pattern);
    });
  }
}

void Loader::read_docker_tls(const Value& value) {
  if (!expect_map(value, "a map with 'ca', 'cert' and/or 'key' (PEM file paths)")) return;
  for (const Field& field : fields_of(value, kDockerTlsKeys)) {
    auto path = read_string(field.value);
    if (!path) continue;
    if (path->empty()) {
      fail(field.value.mark, field.value.path + ": must not be empty");
      continue;
    }
    if (field.key == "ca") config_.docker.tls.ca = *path;
    else if (field.key == "cert") config_.docker.tls.cert = *path;
    else config_.docker.tls.key = *path;
  }
}

void Loader::read_docker_compat(const Value& value) {
  if (!expect_map(value, "a map with 'nginx_proxy' and/or 'traefik'")) return;
  for (const Field& field : fields_of(value, kDockerCompatKeys)) {
    auto flag = read_bool(field.value);
    if (!flag) continue;
    if (field.key == "nginx_proxy") config_.docker.compat.nginx_proxy = *flag;
    else config_.docker.compat.traefik = *flag;
  }
}

// ---- registry ----

void Loader::read_registry(const Value& value) {
  if (!expect_map(value, "a map of registry settings (etcd, role, host_id, advertise_address, lease_ttl, prefix)"))
    return;
  Registry& registry = config_.registry;
  registry.enabled = true;
  registry.mark = value.mark;
  bool role_given = false;
  bool etcd_given = false;
  bool advertise_given = false;
  for (const Field& field : fields_of(value, kRegistryKeys)) {
    if (field.key == "etcd") etcd_given = true;
    if (field.key == "role") role_given = true;  // a bad value is reported as such, not as missing
    if (field.key == "advertise_address" && field.value.node.IsScalar() && !field.value.node.Scalar().empty())
      advertise_given = true;
    read_registry_field(field, &role_given);
  }
  if (!etcd_given) fail(value.mark, "registry: missing required key 'etcd' (a list of member URLs such as "
                                    "[\"http://10.0.0.5:2379\"])");
  if (!role_given) fail(value.mark, "registry: missing required key 'role' (sidecar or front)");
  if (role_given && registry.role == Registry::Role::kSidecar && !advertise_given)
    fail(value.mark, "registry: 'advertise_address' is required for a sidecar (the address other hosts "
                     "reach this host's instances on)");
  if (registry.host_id.empty()) {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) == 0) registry.host_id = name;
    if (registry.host_id.empty()) fail(value.mark, "registry: 'host_id' is not set and the hostname is unknown");
  }
  bool https = false;
  for (const std::string& url : registry.etcd) https = https || url.rfind("https://", 0) == 0;
  const bool tls = !registry.tls.ca.empty() || !registry.tls.cert.empty() || !registry.tls.key.empty();
  if (tls && !https) fail(value.mark, "registry.tls: TLS needs https:// etcd members");
  if (registry.tls.cert.empty() != registry.tls.key.empty())
    fail(value.mark, "registry.tls: 'cert' and 'key' must be given together");
}

void Loader::read_registry_field(const Field& field, bool* role_given) {
  Registry& registry = config_.registry;
  const Value& value = field.value;
  if (field.key == "etcd") {
    if (!value.node.IsSequence() || value.node.size() == 0) {
      fail(value.mark, value.path + ": expected a non-empty list of member URLs such as "
                                    "[\"http://10.0.0.5:2379\"], got " + describe(value.node));
      return;
    }
    for (const Value& item : items_of(value)) {
      auto text = read_string(item);
      if (!text) continue;
      std::string_view rest;
      if (text->rfind("http://", 0) == 0) rest = std::string_view(*text).substr(7);
      else if (text->rfind("https://", 0) == 0) rest = std::string_view(*text).substr(8);
      if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
      size_t colon = rest.rfind(':');
      int64_t port = 0;
      bool ok = colon != std::string_view::npos && colon > 0 && rest.find('/') == std::string_view::npos;
      if (ok) {
        std::string_view digits = rest.substr(colon + 1);
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        ok = ec == std::errc() && end == digits.data() + digits.size() && port > 0 && port < 65536;
      }
      if (!ok) {
        fail(item.mark, item.path + ": expected a member URL \"http://host:port\" or \"https://host:port\", got '" +
                            *text + "'");
        continue;
      }
      registry.etcd.push_back(*text);
    }
  } else if (field.key == "role") {
    auto text = read_string(value);
    if (!text) return;
    if (*text == "sidecar") registry.role = Registry::Role::kSidecar;
    else if (*text == "front") registry.role = Registry::Role::kFront;
    else {
      fail(value.mark, value.path + ": expected sidecar or front, got '" + *text + "'");
      return;
    }
    *role_given = true;
  } else if (field.key == "host_id") {
    auto text = read_string(value);
    if (!text) return;
    bool ok = true;
    for (unsigned char c : *text) ok = ok && c > 0x20 && c < 0x7f && c != '/';
    if (!ok || text->size() > 253) {
      fail(value.mark, value.path + ": must be printable ASCII without spaces or '/' (at most 253 characters), got '" +
                           *text + "'");
      return;
    }
    registry.host_id = *text;  // "" = the hostname
  } else if (field.key == "advertise_address") {
    auto text = read_string(value);
    if (!text || text->empty()) return;
    std::string probe = text->find(':') != std::string::npos ? "[" + *text + "]:1" : *text + ":1";
    auto address = parse_socket_address(probe, false);
    if (!address || *text == "localhost") {
      fail(value.mark, value.path + ": expected a numeric IP address such as 10.0.0.5 or fd00::5, got '" + *text + "'");
      return;
    }
    registry.advertise_address = address->host;
  } else if (field.key == "lease_ttl") {
    auto ttl = read_duration(value);
    if (!ttl) return;
    if (ttl->count() % 1000 != 0 || *ttl < Millis(2'000) || *ttl > Millis(3'600'000)) {
      fail(value.mark, value.path + ": must be whole seconds from 2s (etcd's minimum) to 1h, got " +
                           value.node.Scalar());
      return;
    }
    registry.lease_ttl = *ttl;
  } else if (field.key == "empty_route_grace") {
    if (auto duration = read_duration(value, true)) registry.empty_route_grace = *duration;
  } else if (field.key == "prefix") {
    auto text = read_string(value);
    if (!text) return;
    bool ok = text->size() > 1 && text->front() == '/' && text->back() != '/';
    for (unsigned char c : *text) ok = ok && c > 0x20 && c < 0x7f;
    if (!ok) {
      fail(value.mark, value.path + ": expected a key prefix such as /berth/v1 (starts with '/', no trailing '/', "
                                    "printable ASCII), got '" + *text + "'");
      return;
    }
    registry.prefix = *text;
  } else if (field.key == "tls") {
    if (value.node.IsNull()) return;
    if (!expect_map(value, "a map with 'ca', 'cert' and/or 'key' (PEM file paths)")) return;
    for (const Field& f : fields_of(value, kDockerTlsKeys)) {
      auto path = read_string(f.value);
      if (!path) continue;
      if (path->empty()) {
        fail(f.value.mark, f.value.path + ": must not be empty");
        continue;
      }
      if (f.key == "ca") registry.tls.ca = *path;
      else if (f.key == "cert") registry.tls.cert = *path;
      else registry.tls.key = *path;
    }
  } else if (field.key == "service_policy") {
    if (value.node.IsNull()) return;
    if (!expect_map(value, "a map of service policy sections (lb, health, outlier, retry, circuit_breaker)")) return;
    for (const Field& f : fields_of(value, kServicePolicyKeys)) read_service_policy(f, registry.service_policy);
  }
}

// ---- cross-checks ----

void Loader::check_listeners_required() {
  if (saw_listeners_) return;
  fail({}, "missing required key 'listeners' (at least one listener, e.g. listeners: [\"0.0.0.0:8080\"])");
}

void Loader::check_duplicate_listeners() {
  const auto& listeners = config_.listeners;
  for (size_t i = 0; i < listeners.size(); ++i) {
    if (listeners[i].address.port == 0) continue;  // each ":0" gets its own ephemeral port
    for (size_t j = 0; j < i; ++j) {
      if (listeners[j].address.to_string() != listeners[i].address.to_string()) continue;
      fail(listeners[i].mark, "listeners: duplicate listener " + listeners[i].address.to_string() +
                                  " (already at line " + std::to_string(listeners[j].mark.line) + ")");
      break;
    }
  }
}

void Loader::check_admin_address() {
  const Admin& admin = config_.admin;
  if (!admin.enabled || admin.address.port == 0) return;
  // A wildcard takes the port on every address of its family ("::" on IPv4 too, dual-stack):
  // binding a specific address of it as well fails at start, so it is refused here.
  auto covers = [](const SocketAddress& wild, const SocketAddress& other) {
    return (wild.host == "0.0.0.0" && !other.ipv6) || wild.host == "::";
  };
  for (const Listener& listener : config_.listeners) {
    const SocketAddress& l = listener.address;
    if (l.port != admin.address.port) continue;
    if (l.to_string() == admin.address.to_string()) {
      fail(admin_address_mark_.value_or(admin.mark),
           "admin.address: " + admin.address.to_string() + " is also a listener (line " +
               std::to_string(listener.mark.line) + "); the admin server needs its own address");
      return;
    }
    if (covers(l, admin.address) || covers(admin.address, l)) {
      fail(admin_address_mark_.value_or(admin.mark),
           "admin.address: " + admin.address.to_string() + " overlaps the listener " + l.to_string() + " (line " +
               std::to_string(listener.mark.line) + ") on the same port; the admin server needs its own port");
      return;
    }
  }
}

void Loader::check_request_line_fits() {
  const Limits& limits = config_.limits;
  if (limits.max_request_line <= limits.max_header_bytes) return;
  auto line_mark = limit_marks_.find("max_request_line");
  Mark at = line_mark != limit_marks_.end() ? line_mark->second : limit_marks_["max_header_bytes"];
  fail(at, "limits.max_request_line: " + std::to_string(limits.max_request_line) +
               " is larger than limits.max_header_bytes (" + std::to_string(limits.max_header_bytes) +
               "); the request line counts toward the header bytes");
}

void Loader::check_route_services() {
  std::vector<std::string_view> defined;
  for (const Service& service : config_.services) defined.push_back(service.name);
  std::string known = defined.empty() ? "no services are defined" : "defined services: " + join(defined);
  for (size_t i = 0; i < config_.routes.size(); ++i) {
    const Route& route = config_.routes[i];
    const RouteNotes& notes = route_notes_[i];
    for (size_t t = 0; t < route.split.size(); ++t) {
      if (service_marks_.count(route.split[t].service)) continue;
      fail(notes.split_marks[t], "routes[" + std::to_string(notes.index) + "].split[" + std::to_string(t) +
                                     "].service: no service named '" + route.split[t].service + "' (" + known + ")");
    }
    if (route.mirror.enabled() && !service_marks_.count(route.mirror.service))
      fail(notes.mirror_mark, "routes[" + std::to_string(notes.index) + "].mirror.service: no service named '" +
                                  route.mirror.service + "' (" + known + ")");
    if (route.service.empty() || service_marks_.count(route.service)) continue;
    fail(notes.service_mark, "routes[" + std::to_string(notes.index) + "].service: no service named '" +
                                 route.service + "' (" + known + ")");
  }
}

// With sanitize_path (known once the whole file is read), a prefix no sanitized request path
// can start with makes a route that is never chosen: its requests go to another route.
void Loader::check_reachable_prefixes() {
  if (!config_.sanitize_path) return;
  for (size_t i = 0; i < config_.routes.size(); ++i) {
    const RouteNotes& notes = route_notes_[i];
    if (!notes.clean) continue;
    const std::string& path = config_.routes[i].path_prefix;
    if (std::string problem = unreachable_prefix_problem(path); !problem.empty())
      fail(notes.path_mark, "routes[" + std::to_string(notes.index) + "].path: invalid path prefix '" + path + "': " +
                                problem);
  }
}

void Loader::check_duplicate_routes() {
  struct FirstUse {
    size_t index;
    int line;
  };
  std::unordered_map<std::string, FirstUse> seen;  // host + '\n' + path -> first route
  for (size_t i = 0; i < config_.routes.size(); ++i) {
    const Route& route = config_.routes[i];
    const RouteNotes& notes = route_notes_[i];
    if (!notes.clean) continue;  // its own errors are reported already
    std::vector<std::string> hosts = route.hosts.empty() ? std::vector<std::string>{""} : route.hosts;
    for (size_t h = 0; h < hosts.size(); ++h) {
      // Routes that differ in their matchers (routes[].match) are not duplicates.
      auto [first, inserted] = seen.emplace(hosts[h] + "\n" + route.path_prefix + "\n" + route.match.key(),
                                            FirstUse{notes.index, route.mark.line});
      if (inserted) continue;
      std::string what = hosts[h].empty() ? "any host" : "host '" + hosts[h] + "'";
      if (!route.match.empty()) what += " and the same matchers";
      Mark at = route.hosts.empty() ? route.mark : notes.host_marks[h];
      fail(at, "routes[" + std::to_string(notes.index) + "]: duplicate of routes[" +
                   std::to_string(first->second.index) + "] (line " +
                   std::to_string(first->second.line) + "): both match " + what +
                   " with path prefix '" + route.path_prefix + "'");
    }
  }
}

void Loader::check_route_names() {
  std::unordered_map<std::string, size_t> first_by_name;  // name -> position in routes
  for (size_t i = 0; i < config_.routes.size(); ++i) {
    if (!route_notes_[i].explicit_name) continue;
    auto [first, inserted] = first_by_name.emplace(config_.routes[i].name, i);
    if (inserted) continue;
    const RouteNotes& earlier = route_notes_[first->second];
    fail(route_notes_[i].name_mark,
         "routes[" + std::to_string(route_notes_[i].index) + "].name: duplicate route name '" +
             config_.routes[i].name + "' (also routes[" + std::to_string(earlier.index) + "] at line " +
             std::to_string(earlier.name_mark.line) + ")");
  }
  // A route without a name is called route-<its index>: a name given to another route must not
  // be that, or their metrics and /api/routes entries would merge.
  for (size_t i = 0; i < config_.routes.size(); ++i) {
    if (route_notes_[i].explicit_name) continue;
    auto taken = first_by_name.find(config_.routes[i].name);
    if (taken == first_by_name.end()) continue;
    const RouteNotes& named = route_notes_[taken->second];
    fail(named.name_mark, "routes[" + std::to_string(named.index) + "].name: '" + config_.routes[i].name +
                              "' is the name routes[" + std::to_string(route_notes_[i].index) + "] (line " +
                              std::to_string(config_.routes[i].mark.line) + ") gets for having none");
  }
}

// ---- acme ----

void Loader::read_encoded_characters(const Value& value, EncodedCharacters& out) {
  if (!expect_map(value, "a map of allow_encoded_* flags (allow_encoded_slash: true, ...)")) return;
  for (const Field& field : fields_of(value, encoded_character_keys())) {
    const std::optional<bool> flag = read_bool(field.value);
    const std::optional<EncodedCharacter> c = encoded_character_named(field.key);
    if (flag && c) out.set(*c, *flag);
  }
}

void Loader::read_acme(const Value& value) {
  if (!expect_map(value, "a map of ACME settings (directory, email, storage, ca_bundle, challenge, renew_before)"))
    return;
  Acme& acme = config_.acme;
  acme.enabled = true;
  acme.mark = value.mark;
  bool directory_given = false;
  bool storage_given = false;
  for (const Field& field : fields_of(value, kAcmeKeys)) {
    const Value& v = field.value;
    if (field.key == "renew_before") {
      if (auto d = read_duration(v)) acme.renew_before = *d;
      continue;
    }
    auto text = read_string(v);
    if (!text) continue;
    if (field.key == "directory") {
      directory_given = true;
      if (text->rfind("https://", 0) != 0 || text->size() <= 8) {
        fail(v.mark, v.path + ": expected the ACME directory URL (https://...), got '" + *text + "'");
        continue;
      }
      acme.directory = *text;
    } else if (field.key == "email") {
      if (!text->empty() && (text->find('@') == std::string::npos || text->find_first_of(" \t\r\n<>") != std::string::npos)) {
        fail(v.mark, v.path + ": expected an e-mail address such as ops@example.com, got '" + *text + "'");
        continue;
      }
      acme.email = *text;
    } else if (field.key == "storage") {
      storage_given = true;
      if (text->empty()) {
        fail(v.mark, v.path + ": must name a directory (it is created with mode 0700)");
        continue;
      }
      acme.storage = resolve_path(*text);
    } else if (field.key == "ca_bundle") {
      if (text->empty()) continue;
      acme.ca_bundle = resolve_path(*text);
      read_named_file(v, acme.ca_bundle);
    } else if (field.key == "challenge") {
      if (*text == "http-01") acme.challenge = Acme::Challenge::kHttp01;
      else if (*text == "tls-alpn-01") acme.challenge = Acme::Challenge::kTlsAlpn01;
      else fail(v.mark, v.path + ": must be http-01 or tls-alpn-01, got '" + *text + "'");
    }
  }
  if (!directory_given) fail(value.mark, value.path + ": missing required key 'directory' (the ACME directory URL)");
  if (!storage_given) fail(value.mark, value.path + ": missing required key 'storage' (a directory for keys and certificates)");
}

// Routes asking for a certificate need the acme: section, host names the challenge can prove,
// and a TLS listener to serve the certificate on.
void Loader::check_acme() {
  bool tls_listener = false;
  for (const Listener& l : config_.listeners) tls_listener = tls_listener || l.tls.has_value();
  bool any_route = false;
  for (size_t i = 0; i < config_.routes.size(); ++i) {
    const Route& route = config_.routes[i];
    if (!route.acme) continue;
    any_route = true;
    const RouteNotes& notes = route_notes_[i];
    const std::string where = "routes[" + std::to_string(notes.index) + "].acme";
    if (!config_.acme.enabled) {
      fail(notes.acme_mark, where + ": needs the top-level 'acme:' section (directory, storage, ...)");
      continue;
    }
    if (route.hosts.empty()) fail(notes.acme_mark, where + ": the route needs 'host' names to get a certificate for");
    for (size_t h = 0; h < route.hosts.size(); ++h) {
      if (route.hosts[h].rfind("*.", 0) != 0) continue;
      const Mark at = h < notes.host_marks.size() ? notes.host_marks[h] : notes.acme_mark;
      fail(at, "routes[" + std::to_string(notes.index) + "].host: wildcard '" + route.hosts[h] + "' cannot get a certificate over " +
                   acme_challenge_name(config_.acme.challenge) + " (only dns-01 proves wildcards)");
    }
  }
  if (config_.acme.enabled && !tls_listener)
    fail(config_.acme.mark, std::string("acme: needs a listener with 'tls:' to serve the certificates on") +
                                (any_route ? " (routes ask for acme: true)" : ""));
}

// ---- entry points ----

LoadResult Loader::load(std::string_view yaml) {
  try {
    std::vector<YAML::Node> documents = YAML::LoadAll(std::string(yaml));
    if (documents.size() > 1) {
      fail(mark_of(documents[1]), "only one YAML document is allowed; remove the second one (and its '---')");
    }
    read_document(documents.empty() ? YAML::Node() : documents.front());
  } catch (const YAML::Exception& e) {
    fail(to_mark(e.mark), e.msg.empty() ? std::string("invalid YAML") : "invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    fail({}, std::string("internal error while reading the configuration: ") + e.what());
  } catch (...) {
    fail({}, "internal error while reading the configuration");
  }
  return finish();
}

// Errors in file order (those without a place last); the config only when there are none.
LoadResult Loader::finish() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const Error& a, const Error& b) {
    auto key = [](const Error& e) {
      return std::pair(e.line == 0 ? std::numeric_limits<int>::max() : e.line, e.column);
    };
    return key(a) < key(b);
  });
  LoadResult result;
  result.errors = std::move(errors_);
  if (result.errors.empty()) result.config = std::move(config_);
  return result;
}

// The whole file, or the reason it could not be read.
std::optional<std::string> read_file(const std::string& path, std::string& problem) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    problem = std::generic_category().message(errno);
    return std::nullopt;
  }
  std::string contents;
  char buffer[16384];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) problem = std::generic_category().message(errno);
    if (n <= 0) break;
    contents.append(buffer, static_cast<size_t>(n));
    if (contents.size() > kMaxFileBytes) {
      problem = "file is larger than " + format_size(kMaxFileBytes);
      break;
    }
  }
  ::close(fd);
  if (!problem.empty()) return std::nullopt;
  return contents;
}

}  // namespace

LoadResult load_string(std::string_view yaml, const std::string& source_name) {
  try {
    return Loader(source_name).load(yaml);
  } catch (...) {  // only allocation failures can get here
    LoadResult result;
    result.errors.push_back(Error{source_name, 0, 0, "out of memory while reading the configuration"});
    return result;
  }
}

LoadResult load_file(const std::string& path) {
  try {
    std::string problem;
    std::optional<std::string> contents = read_file(path, problem);
    if (!contents) {
      LoadResult result;
      result.errors.push_back(Error{path, 0, 0, "cannot read file: " + problem});
      return result;
    }
    return load_string(*contents, path);
  } catch (...) {
    return LoadResult{std::nullopt, {Error{path, 0, 0, "out of memory while reading the configuration"}}};
  }
}

}  // namespace berth::config
