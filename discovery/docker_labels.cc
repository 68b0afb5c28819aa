#include "discovery/docker_labels.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <map>

#include "config/config.h"
#include "config/tls_files.h"
#include "proxy/base/ascii.h"

namespace berth::discovery {

namespace {

constexpr std::string_view kPrefix = "berth.";
constexpr std::string_view kRoutesPrefix = "berth.routes.";
constexpr std::string_view kTraefikRouters = "traefik.http.routers.";
constexpr std::string_view kTraefikServices = "traefik.http.services.";
constexpr std::string_view kTraefikMiddlewares = "traefik.http.middlewares.";

// A rejection being built: which label, and why.
struct Problem {
  std::string label;
  std::string reason;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string quoted(std::string_view label, std::string_view value) {
  return std::string(label) + "=\"" + std::string(value) + "\"";
}

bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

using config::valid_service_name;

bool valid_route_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

std::optional<Problem> parse_bool(std::string_view label, std::string_view value, bool& out) {
  const std::string v = ascii_lowered(trim(value));
  if (v == "true" || v == "1" || v == "yes" || v == "on") out = true;
  else if (v == "false" || v == "0" || v == "no" || v == "off") out = false;
  else return Problem{std::string(label), quoted(label, value) + " is not true or false"};
  return std::nullopt;
}

template <typename Int>
std::optional<Int> parse_int(std::string_view text, int64_t min, int64_t max) {
  text = trim(text);
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty() || value < min || value > max)
    return std::nullopt;
  return static_cast<Int>(value);
}

std::optional<Problem> parse_port(std::string_view label, std::string_view value, uint16_t& out) {
  auto port = parse_int<uint16_t>(value, 1, 65535);
  if (!port) return Problem{std::string(label), quoted(label, value) + " is not a port number (1-65535)"};
  out = *port;
  return std::nullopt;
}

// A label's list (host names, methods) holds at most this many items. Lists are kept in label
// order without repeats; the bound keeps that check, and the routes made from the list, small
// (a container listing 100,000 hosts held the control loop for seconds).
constexpr size_t kMaxLabelListItems = 1000;

// Appends `item` unless the list holds it already; false when the list is full.
bool add_distinct(std::vector<std::string>& list, std::string item) {
  if (std::find(list.begin(), list.end(), item) != list.end()) return true;
  if (list.size() >= kMaxLabelListItems) return false;
  list.push_back(std::move(item));
  return true;
}

std::string too_many_items(std::string_view what) {
  return "lists more than " + std::to_string(kMaxLabelListItems) + " " + std::string(what);
}

std::optional<Problem> parse_hosts(std::string_view label, std::string_view value,
                                   std::vector<std::string>& out) {
  std::string_view rest = value;
  while (true) {
    size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    if (item.empty()) return Problem{std::string(label), quoted(label, value) + " has an empty host name"};
    auto pattern = config::normalize_host_pattern(item);
    if (!pattern) {
      return Problem{std::string(label), quoted(label, value) + ": '" + std::string(item) +
                                             "' is not a valid host name or *.wildcard"};
    }
    if (!add_distinct(out, std::move(*pattern)))
      return Problem{std::string(label), std::string(label) + " " + too_many_items("host names")};
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return std::nullopt;
}

std::optional<Problem> parse_path(std::string_view label, std::string_view value, std::string& out) {
  std::string_view path = trim(value);
  // The config file's rule, and ';' on top: a label value is often a path with parameters
  // pasted from elsewhere, and a route path never matches one.
  if (std::string problem = config::path_prefix_problem(path); !problem.empty())
    return Problem{std::string(label), quoted(label, value) + " " + problem};
  if (path.find(';') != std::string_view::npos)
    return Problem{std::string(label), quoted(label, value) + " must not contain ';'"};
  if (std::string problem = config::unreachable_prefix_problem(path); !problem.empty())
    return Problem{std::string(label), quoted(label, value) + " " + problem};
  out = std::string(path);
  return std::nullopt;
}

std::optional<Problem> parse_service(std::string_view label, std::string_view value, std::string& out) {
  std::string_view name = trim(value);
  if (!valid_service_name(name))
    return Problem{std::string(label), quoted(label, value) + " is not a valid service name (letters, digits, '-', '_', '.')"};
  out = std::string(name);
  return std::nullopt;
}

std::optional<Problem> parse_priority(std::string_view label, std::string_view value, int32_t& out) {
  auto priority = parse_int<int32_t>(value, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  if (!priority) return Problem{std::string(label), quoted(label, value) + " is not an integer"};
  out = *priority;
  return std::nullopt;
}

// berth.lb, berth.lb.hash_on, berth.lb.cookie, berth.health.{path,interval,timeout,
// healthy_threshold,unhealthy_threshold,status,port}, and the labels of the shared policy settings
// (berth.lb.slow_start, berth.outlier.*, berth.retry.*, berth.circuit.*; config::policy_settings).
// Any berth.health.* label turns the check on.
std::optional<Problem> parse_policy_label(const std::string& label, std::string_view key, std::string_view raw,
                                          config::ServicePolicy& policy) {
  std::string_view value = trim(raw);
  auto bad = [&](std::string_view expected) {
    return Problem{label, quoted(label, raw) + ": expected " + std::string(expected)};
  };
  if (const config::PolicySetting* setting = config::find_policy_setting_by_label(label)) {
    if (!config::apply_policy_setting(*setting, value, policy)) return bad(config::policy_setting_expectation(*setting));
  } else if (key == "lb") {
    auto p = config::parse_lb_policy(value);
    if (!p) return bad("round_robin, least_request, hash or sticky");
    policy.lb.policy = *p;
  } else if (key == "lb.hash_on") {
    if (!config::parse_hash_on(value, policy.lb)) return bad("client_ip, header:NAME or cookie:NAME");
  } else if (key == "lb.cookie") {
    if (!config::valid_cookie_name(value)) return bad("a cookie name");
    policy.lb.cookie = std::string(value);
  } else if (key.starts_with("health.")) {
    config::HealthCheck& h = policy.health;
    h.enabled = true;
    std::string_view field = key.substr(7);
    if (field == "path") {
      if (value.empty() || value.front() != '/') return bad("a path starting with '/'");
      h.path = std::string(value);
    } else if (field == "interval" || field == "timeout") {
      auto d = config::parse_duration(value);
      if (!d || d->count() == 0) return bad("a duration such as 500ms or 5s");
      (field == "interval" ? h.interval : h.timeout) = *d;
    } else if (field == "healthy_threshold" || field == "unhealthy_threshold") {
      auto n = parse_int<uint32_t>(value, 1, 100);
      if (!n) return bad("a number from 1 to 100");
      (field == "healthy_threshold" ? h.healthy_threshold : h.unhealthy_threshold) = *n;
    } else if (field == "status") {
      if (!config::parse_status_range(value, h)) return bad("a status or a range such as 200-399");
    } else if (field == "port") {
      if (auto p = parse_port(label, value, h.port)) return p;
    } else {
      return Problem{label, "unknown label " + label + " (expected berth.health.path, .interval, .timeout, "
                            ".healthy_threshold, .unhealthy_threshold, .status or .port)"};
    }
  } else if (key.starts_with("lb.")) {
    return Problem{label, "unknown label " + label +
                              " (expected berth.lb, berth.lb.hash_on, berth.lb.cookie or berth.lb.slow_start)"};
  } else {
    // berth.outlier.*, berth.retry.*, berth.circuit.*: list the labels of that group.
    const std::string group = std::string(kPrefix) + std::string(key.substr(0, key.find('.') + 1));
    std::string known;
    for (const config::PolicySetting& s : config::policy_settings())
      if (s.label.starts_with(group)) known += (known.empty() ? std::string(s.label) : ", ." + std::string(s.name));
    return Problem{label, "unknown label " + label + " (expected " + known + ")"};
  }
  return std::nullopt;
}

// ---- berth.access.* ----

// Comma-separated items, trimmed; empty ones are an error (nullopt).
std::optional<std::vector<std::string_view>> split_items(std::string_view value) {
  std::vector<std::string_view> items;
  std::string_view rest = value;
  while (true) {
    const size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    if (item.empty()) return std::nullopt;
    items.push_back(item);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return items;
}

// "first key=value key=value": the first word and the options after it (separated by spaces).
struct Words {
  std::string_view first;
  std::vector<std::pair<std::string_view, std::string_view>> options;
  std::string_view bad;  // an option without '=' (then the rest is not read)
};

Words split_words(std::string_view value) {
  Words out;
  std::string_view rest = trim(value);
  bool first = true;
  while (!rest.empty()) {
    const size_t space = rest.find_first_of(" \t");
    const std::string_view word = rest.substr(0, space);
    rest = space == std::string_view::npos ? std::string_view() : trim(rest.substr(space));
    if (first) {
      out.first = word;
      first = false;
      continue;
    }
    const size_t eq = word.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      out.bad = word;
      return out;
    }
    out.options.emplace_back(word.substr(0, eq), word.substr(eq + 1));
  }
  return out;
}

// Whether `path` lies under `dir` (both absolute, lexically: no '.', '..' or empty parts). Empty
// when it does, else why not.
std::string access_file_problem(std::string_view path, const std::string& dir) {
  if (dir.empty()) return "labels may not name files: docker.access_files_dir is not set";
  if (path.empty() || path.front() != '/') return "'" + std::string(path) + "' is not an absolute path";
  std::string_view rest = path.substr(1);
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (part.empty() || part == "." || part == "..")
      return "'" + std::string(path) + "' has an empty, '.' or '..' part";
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  const std::string prefix = dir == "/" ? dir : dir + "/";
  if (!path.starts_with(prefix))
    return "'" + std::string(path) + "' is not under docker.access_files_dir (" + dir + ")";
  return {};
}

bool valid_method(std::string_view m) {
  return !m.empty() && std::all_of(m.begin(), m.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

bool valid_token(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

std::string burst_range() { return "burst must be 1 to " + std::to_string(config::RateLimit::kMaxBurst); }

// berth.access.{allow,deny,methods,rate_limit,basic_auth,forward_auth}: the config keys of
// routes[].access, in one line each (README "Access control labels").
std::optional<Problem> parse_access_label(const std::string& label, std::string_view key, std::string_view raw,
                                          const LabelOptions& options, config::RouteAccess& access) {
  const std::string_view value = trim(raw);
  auto bad = [&](const std::string& why) { return Problem{label, quoted(label, raw) + ": " + why}; };
  // rate_limit, basic_auth and forward_auth: a first word, then NAME=VALUE options.
  const Words words = split_words(value);
  const bool worded = key == "rate_limit" || key == "basic_auth" || key == "forward_auth";
  if (worded && !words.bad.empty()) return bad("'" + std::string(words.bad) + "' is not an option NAME=VALUE");
  if (key == "allow" || key == "deny") {
    auto items = split_items(value);
    if (!items) return bad("expected address ranges separated by commas, e.g. 10.0.0.0/8, 2001:db8::/32");
    std::vector<config::Cidr>& out = key == "allow" ? access.allow : access.deny;
    for (std::string_view item : *items) {
      auto cidr = config::parse_cidr(item);
      if (!cidr) return bad("'" + std::string(item) + "' is not a numeric IPv4 or IPv6 address with optional /bits");
      out.push_back(std::move(*cidr));
    }
  } else if (key == "methods") {
    auto items = split_items(value);
    if (!items) return bad("expected HTTP methods separated by commas, e.g. GET, POST");
    for (std::string_view item : *items) {
      if (!valid_method(item)) return bad("'" + std::string(item) + "' is not an HTTP method");
      std::string upper(item);
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      if (!add_distinct(access.methods, std::move(upper))) return Problem{label, label + " " + too_many_items("methods")};
    }
  } else if (key == "rate_limit") {
    config::RateLimit& limit = access.rate_limit;
    const std::string_view rate = words.first;
    if (!rate.ends_with("/s")) return bad("expected RATE/s first, e.g. 20/s burst=40 key=client_ip");
    auto per_second = parse_int<uint32_t>(rate.substr(0, rate.size() - 2), 1, config::RateLimit::kMaxPerSecond);
    if (!per_second) return bad("the rate must be 1/s to " + std::to_string(config::RateLimit::kMaxPerSecond) + "/s");
    limit.per_second = *per_second;
    limit.burst = *per_second;
    for (const auto& [name, v] : words.options) {
      if (name == "burst") {
        auto burst = parse_int<uint32_t>(v, 1, config::RateLimit::kMaxBurst);
        if (!burst) return bad(burst_range());
        limit.burst = *burst;
      } else if (name == "key") {
        if (v == "client_ip") limit.header.clear();
        else if (v.starts_with("header:") && valid_token(v.substr(7))) limit.header = std::string(v.substr(7));
        else return bad("key must be client_ip or header:NAME");
      } else if (name == "table_size") {
        auto n = parse_int<uint32_t>(v, config::RateLimit::kMinTableSize, config::RateLimit::kMaxTableSize);
        if (!n) return bad("table_size must be " + std::to_string(config::RateLimit::kMinTableSize) + " to " +
                           std::to_string(config::RateLimit::kMaxTableSize));
        limit.table_size = config::RateLimit::table_size_for(*n);
      } else if (name == "ipv6_prefix") {
        auto n = parse_int<uint32_t>(v, 1, 128);
        if (!n) return bad("ipv6_prefix must be 1 to 128");
        limit.ipv6_prefix = *n;
      } else {
        return bad("unknown option '" + std::string(name) + "' (expected burst, key, table_size or ipv6_prefix)");
      }
    }
  } else if (key == "basic_auth") {
    config::BasicAuth& auth = access.basic_auth;
    if (words.first.empty()) return bad("expected an htpasswd file path first, e.g. /etc/berth/access/admin.htpasswd realm=admin");
    if (std::string why = access_file_problem(words.first, options.access_files_dir); !why.empty()) return bad(why);
    auth.htpasswd = std::string(words.first);
    for (const auto& [name, v] : words.options) {
      if (name == "realm") {
        if (std::string why = config::realm_problem(v); !why.empty()) return bad(why);
        auth.realm = std::string(v);
      } else if (name == "forward_authorization") {
        if (auto p = parse_bool(label, v, auth.forward_authorization)) return p;
      } else {
        return bad("unknown option '" + std::string(name) + "' (expected realm or forward_authorization)");
      }
    }
  } else if (key == "forward_auth") {
    config::ForwardAuth& auth = access.forward_auth;
    const std::string url(words.first);
    if (url.empty()) return bad("expected the service's URL first, e.g. http://127.0.0.1:9100/check copy_headers=X-User");
    if (std::string why = config::parse_forward_auth_url(url, auth); !why.empty()) return bad(why);
    auth.url = url;
    for (const auto& [name, v] : words.options) {
      if (name == "copy_headers") {
        auto items = split_items(v);
        if (!items) return bad("copy_headers must be header names separated by commas");
        for (std::string_view item : *items) {
          if (std::string why = config::header_name_problem(item); !why.empty()) return bad(why);
          auth.copy_headers.emplace_back(item);
        }
      } else if (name == "timeout") {
        auto d = config::parse_duration(v);
        if (!d || d->count() == 0) return bad("timeout must be a duration such as 500ms or 5s");
        auth.timeout = *d;
      } else {
        return bad("unknown option '" + std::string(name) + "' (expected copy_headers or timeout)");
      }
    }
  } else {
    return Problem{label, "unknown label " + label +
                              " (expected berth.access.allow, .deny, .methods, .rate_limit, .basic_auth or .forward_auth)"};
  }
  return std::nullopt;
}

// The port a route uses when it names none itself.
std::optional<Problem> default_port(const ContainerFacts& c, uint16_t labelled, uint16_t& out,
                                    std::string_view port_label) {
  if (labelled) {
    out = labelled;
    return std::nullopt;
  }
  if (c.exposed_ports.size() == 1 && c.network_mode != "host") {
    out = c.exposed_ports.front();
    return std::nullopt;
  }
  std::string why;
  if (c.network_mode == "host") why = "host-network containers expose no ports to Docker";
  else if (c.exposed_ports.empty()) why = "the container exposes no port";
  else why = "the container exposes " + std::to_string(c.exposed_ports.size()) + " ports";
  return Problem{std::string(port_label), std::string(port_label) + " is required: " + why};
}

// ---- berth.match.* and berth.path_regex: the config's routes[].match ----
// berth.match.methods=GET,HEAD ; berth.match.header.<Name>=<value> (empty: present) ;
// berth.match.query.<name>=<value> (empty: present) ; berth.path_regex=<RE2 pattern>.
std::optional<Problem> parse_match_label(const std::string& label, std::string_view key, std::string_view value,
                                         config::RouteMatch& match) {
  if (key == "path_regex") {
    std::string pattern(value);
    if (pattern.empty()) return Problem{label, quoted(label, value) + " is empty"};
    std::string problem;
    match.path_regex_compiled = config::compile_path_regex(pattern, problem);
    if (!match.path_regex_compiled) return Problem{label, quoted(label, value) + ": " + problem};
    match.path_regex = pattern;
    return std::nullopt;
  }
  if (key == "match.methods") {
    std::string_view rest = value;
    while (true) {
      size_t comma = rest.find(',');
      std::string_view item = trim(rest.substr(0, comma));
      auto method = config::normalize_method(item);
      if (!method) return Problem{label, quoted(label, value) + ": '" + std::string(item) + "' is not an HTTP method"};
      if (!add_distinct(match.methods, std::move(*method)))
        return Problem{label, label + " " + too_many_items("methods")};
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    return std::nullopt;
  }
  const bool header = key.starts_with("match.header.");
  if (header || key.starts_with("match.query.")) {
    std::string name(key.substr(header ? 13 : 12));
    std::string problem = header ? config::header_match_name_problem(name) : config::query_match_problem(name, true);
    if (problem.empty() && !value.empty())
      problem = header ? config::header_value_problem(value) : config::query_match_problem(value, false);
    if (!problem.empty()) return Problem{label, "label " + label + ": " + problem};
    config::NameMatch entry{std::move(name), std::nullopt};
    if (!value.empty()) entry.value = std::string(value);
    (header ? match.headers : match.query).push_back(std::move(entry));
    return std::nullopt;
  }
  return Problem{label, "unknown label " + label +
                            " (expected berth.match.methods, berth.match.header.NAME, berth.match.query.NAME or "
                            "berth.path_regex)"};
}

// A named route's matchers: the container's, with the route's own added (headers, query) or
// in place of the container's (methods, path_regex).
config::RouteMatch with_route_matchers(config::RouteMatch match, const config::RouteMatch& own) {
  if (!own.methods.empty()) match.methods = own.methods;
  match.headers.insert(match.headers.end(), own.headers.begin(), own.headers.end());
  match.query.insert(match.query.end(), own.query.begin(), own.query.end());
  if (!own.path_regex.empty()) {
    match.path_regex = own.path_regex;
    match.path_regex_compiled = own.path_regex_compiled;
  }
  return match;
}

// Not routed, and why (a front door routing a published container gives the reason).
ContainerSpec ignored(std::string why) {
  ContainerSpec spec;
  spec.reason = std::move(why);
  return spec;
}

ContainerSpec reject(const Problem& p, std::string origin) {
  ContainerSpec spec;
  spec.kind = ContainerSpec::Kind::kRejected;
  spec.origin = std::move(origin);
  spec.label = p.label;
  spec.reason = p.reason;
  return spec;
}

// ---- berth.* labels ----

struct BerthLabels {
  std::optional<bool> enable;
  std::vector<std::string> hosts;
  bool has_host = false, has_path = false;
  std::string path = "/";
  uint16_t port = 0;
  std::string service;
  uint32_t weight = 1;
  int32_t priority = 0;
  bool https_redirect = false;  // berth.tls.redirect
  bool acme = false;            // berth.tls.acme
  std::string network;
  config::ServicePolicy policy;
  config::RouteAccess access;
  config::PathRewrite rewrite;  // berth.strip_prefix, berth.add_prefix
  config::Redirect redirect;    // berth.redirect.to, berth.redirect.code
  std::string redirect_code_label;
  config::RouteMatch match;  // berth.match.*, berth.path_regex
  config::RouteMirror mirror;  // berth.mirror.service, .percent, .max_body
  std::string mirror_label;    // the first berth.mirror.* label (checked: it needs .service)
  config::EncodedCharacters encoded_characters;  // berth.encoded_characters.allow_encoded_*
  struct Named {
    std::vector<std::string> hosts;
    bool has_host = false, has_path = false;
    std::string path = "/";
    uint16_t port = 0;
    std::string service;
    std::optional<int32_t> priority;  // unset: berth.priority (an explicit 0 stays 0)
    config::RouteMatch match;  // berth.routes.NAME.match.*, .path_regex
    config::RouteMirror mirror;  // berth.routes.NAME.mirror.*: replaces berth.mirror.* for this route
    std::string mirror_label;
  };
  std::map<std::string, Named> routes;
  bool any = false;
};

// berth.strip_prefix=true|/prefix, berth.add_prefix=/v1, berth.redirect.to=URL,
// berth.redirect.code=301 (config/rewrite.h checks the values as it does for the file).
std::optional<Problem> parse_rewrite_label(const std::string& label, std::string_view key, std::string_view value,
                                           BerthLabels& out) {
  const std::string_view v = trim(value);
  if (key == "strip_prefix") {
    bool flag = false;
    if (!v.empty() && v.front() != '/') {
      if (auto p = parse_bool(label, v, flag))
        return Problem{label, quoted(label, value) + " is not true, false or a path prefix such as /api"};
      out.rewrite.strip = flag ? config::PathRewrite::Strip::kRoutePrefix : config::PathRewrite::Strip::kNone;
      return std::nullopt;
    }
    if (std::string why = config::rewrite_prefix_problem(v); !why.empty())
      return Problem{label, quoted(label, value) + ": " + why};
    out.rewrite.strip = config::PathRewrite::Strip::kGiven;
    out.rewrite.strip_prefix = std::string(v);
  } else if (key == "add_prefix") {
    if (std::string why = config::rewrite_prefix_problem(v); !why.empty())
      return Problem{label, quoted(label, value) + ": " + why};
    out.rewrite.add_prefix = std::string(v);
  } else if (key == "redirect.to") {
    if (std::string why = config::redirect_target_problem(v); !why.empty())
      return Problem{label, quoted(label, value) + ": " + why};
    out.redirect.to = std::string(v);
  } else if (key == "redirect.code") {
    auto code = parse_int<uint16_t>(v, 100, 999);
    if (!code || !config::redirect_code_problem(*code).empty())
      return Problem{label, quoted(label, value) + " is not 301, 302, 303, 307 or 308"};
    out.redirect.code = *code;
    out.redirect_code_label = label;
  } else {
    return Problem{label, "unknown label " + label + " (expected berth.redirect.to or berth.redirect.code)"};
  }
  return std::nullopt;
}

// berth.mirror.service=NAME, .percent=P (0 < P <= 100), .max_body=SIZE; `key` without "mirror.".
std::optional<Problem> parse_mirror_label(const std::string& label, std::string_view key, std::string_view value,
                                          config::RouteMirror& mirror, std::string& first_label) {
  if (first_label.empty()) first_label = label;
  const std::string_view v = trim(value);
  if (key == "service") return parse_service(label, value, mirror.service);
  if (key == "percent") {
    auto bp = config::parse_mirror_percent(v);
    if (!bp) return Problem{label, quoted(label, value) + " is not a percentage above 0 and at most 100 (e.g. 10 or 12.5)"};
    mirror.percent_bp = *bp;
  } else if (key == "max_body") {
    auto size = config::parse_size(v);
    if (!size || *size > 64ull * 1024 * 1024)
      return Problem{label, quoted(label, value) + " is not a size up to 64MiB (e.g. 65536 or 64KiB)"};
    mirror.max_body = *size;
  } else {
    return Problem{label, "unknown label " + label + " (expected .mirror.service, .mirror.percent or .mirror.max_body)"};
  }
  return std::nullopt;
}

std::optional<Problem> read_berth_labels(const ContainerFacts& c, const LabelOptions& options, BerthLabels& out) {
  for (const auto& [label, value] : c.labels) {
    if (label.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    out.any = true;
    std::string_view key = std::string_view(label).substr(kPrefix.size());
    std::optional<Problem> problem;
    if (key == "enable") {
      bool flag = false;
      problem = parse_bool(label, value, flag);
      out.enable = flag;
    } else if (key == "host") {
      out.has_host = true;
      problem = parse_hosts(label, value, out.hosts);
    } else if (key == "path") {
      out.has_path = true;
      problem = parse_path(label, value, out.path);
    } else if (key == "port") {
      problem = parse_port(label, value, out.port);
    } else if (key == "service") {
      problem = parse_service(label, value, out.service);
    } else if (key == "weight") {
      auto weight = parse_int<uint32_t>(value, 1, 1000);
      if (!weight) problem = Problem{label, quoted(label, value) + " is not a weight (1-1000)"};
      else out.weight = *weight;
    } else if (key == "priority") {
      problem = parse_priority(label, value, out.priority);
    } else if (key == "tls.redirect") {
      problem = parse_bool(label, value, out.https_redirect);
    } else if (key == "upstream.tls") {
      problem = parse_bool(label, value, out.policy.tls.enabled);
    } else if (key == "upstream.tls.server_name") {
      if (value.empty()) continue;  // "": not given (the default), as in the config file
      // Spaces around a name are cut; spaces alone are refused, as in the config file.
      std::string_view name = trim(value);
      if (std::string why = config::server_name_problem(name); !why.empty())
        problem = Problem{label, quoted(label, value) + " " + why};
      out.policy.tls.server_name = config::server_name_text(name);
    } else if (key == "tls.acme") {
      problem = parse_bool(label, value, out.acme);
    } else if (key == "network") {
      std::string_view network = trim(value);
      if (network.empty()) problem = Problem{label, quoted(label, value) + " names no network"};
      out.network = std::string(network);
    } else if (key == "lb" || key.starts_with("lb.") || key.starts_with("health.") || key.starts_with("outlier.") ||
               key.starts_with("retry.") || key.starts_with("circuit.")) {
      problem = parse_policy_label(label, key, value, out.policy);
    } else if (key.starts_with("access.")) {
      problem = parse_access_label(label, key.substr(7), value, options, out.access);
    } else if (key == "strip_prefix" || key == "add_prefix" || key.starts_with("redirect.")) {
      problem = parse_rewrite_label(label, key, value, out);
    } else if (key.starts_with("match.") || key == "path_regex") {
      problem = parse_match_label(label, key, value, out.match);
    } else if (key.starts_with("mirror.")) {
      problem = parse_mirror_label(label, key.substr(7), value, out.mirror, out.mirror_label);
    } else if (key.starts_with("encoded_characters.")) {
      const std::optional<config::EncodedCharacter> c = config::encoded_character_named(key.substr(19));
      bool allow = false;
      if (!c) {
        std::string expected;
        for (std::string_view known : config::encoded_character_keys())
          expected += (expected.empty() ? "" : ", ") + std::string(known);
        problem = Problem{label, "unknown label " + label + " (expected berth.encoded_characters. and one of: " +
                                     expected + ")"};
      } else if (!(problem = parse_bool(label, value, allow))) {
        out.encoded_characters.set(*c, allow);
      }
    } else if (label.compare(0, kRoutesPrefix.size(), kRoutesPrefix) == 0) {
      std::string_view rest = std::string_view(label).substr(kRoutesPrefix.size());
      size_t dot = rest.find('.');  // NAME has no dots; the field may (match.header.X-Env)
      std::string_view name = dot == std::string_view::npos ? std::string_view() : rest.substr(0, dot);
      std::string_view field = dot == std::string_view::npos ? rest : rest.substr(dot + 1);
      if (!valid_route_name(name)) {
        problem = Problem{label, "label " + label + ": expected berth.routes.NAME.host|path|port|service|priority "
                                 "with NAME made of letters, digits, '-' and '_'"};
      } else {
        BerthLabels::Named& named = out.routes[std::string(name)];
        if (field == "host") {
          named.has_host = true;
          problem = parse_hosts(label, value, named.hosts);
        } else if (field == "path") {
          named.has_path = true;
          problem = parse_path(label, value, named.path);
        } else if (field == "port") {
          problem = parse_port(label, value, named.port);
        } else if (field == "service") {
          problem = parse_service(label, value, named.service);
        } else if (field == "priority") {
          int32_t priority = 0;
          problem = parse_priority(label, value, priority);
          if (!problem) named.priority = priority;
        } else if (field.starts_with("match.") || field == "path_regex") {
          problem = parse_match_label(label, field, value, named.match);
        } else if (field.starts_with("mirror.")) {
          problem = parse_mirror_label(label, field.substr(7), value, named.mirror, named.mirror_label);
        } else {
          problem = Problem{label, "unknown label " + label + " (expected berth.routes." + std::string(name) +
                                   ".host, .path, .port, .service, .priority, .match.*, .path_regex or .mirror.*)"};
        }
      }
    } else {
      problem = Problem{label, "unknown label " + label +
                               " (known: berth.enable, .host, .path, .port, .service, .weight, .priority, "
                               ".network, .tls.redirect, .tls.acme, .upstream.tls, .upstream.tls.server_name, .lb, "
                               ".lb.hash_on, .lb.cookie, .lb.slow_start, .health.*, .outlier.*, .retry.*, .circuit.*, "
                               ".access.*, .strip_prefix, .add_prefix, .redirect.to, .redirect.code, .match.methods, "
                               ".match.header.NAME, .match.query.NAME, .path_regex, .mirror.*, .routes.NAME.*)"};
    }
    if (problem) return problem;
  }
  if (!out.mirror_label.empty() && !out.mirror.enabled())
    return Problem{out.mirror_label, out.mirror_label + " needs berth.mirror.service"};
  for (const auto& [name, named] : out.routes)
    if (!named.mirror_label.empty() && !named.mirror.enabled())
      return Problem{named.mirror_label, named.mirror_label + " needs " + std::string(kRoutesPrefix) + name +
                                             ".mirror.service"};
  if (!out.redirect_code_label.empty() && !out.redirect.enabled())
    return Problem{out.redirect_code_label, out.redirect_code_label + " needs berth.redirect.to"};
  if (out.redirect.enabled() && out.rewrite.enabled())
    return Problem{"berth.redirect.to", "berth.redirect.to: a redirect cannot also rewrite the path "
                                        "(berth.strip_prefix, berth.add_prefix)"};
  return std::nullopt;
}

// ---- Traefik compatibility ----

// Host(`a`, `b`) && PathPrefix(`/p`) -> hosts + path. Empty reason on success.
std::string parse_traefik_rule(std::string_view rule, std::vector<std::string>& hosts, std::string& path,
                               bool& has_path) {
  std::string_view rest = trim(rule);
  if (rest.empty()) return "the rule is empty";
  if (rest.find("||") != std::string_view::npos || rest.find('!') != std::string_view::npos)
    return "unsupported rule term: only Host(`...`) and PathPrefix(`...`) joined by && are supported";
  while (true) {
    size_t amp = rest.find("&&");
    std::string_view term = trim(rest.substr(0, amp));
    size_t open = term.find('(');
    if (open == std::string_view::npos || term.back() != ')')
      return "unsupported rule term '" + std::string(term) + "' (supported: Host(`...`), PathPrefix(`...`) joined by &&)";
    std::string_view fn = trim(term.substr(0, open));
    std::string_view args = term.substr(open + 1, term.size() - open - 2);
    std::vector<std::string> values;
    while (true) {
      size_t comma = args.find(',');
      std::string_view arg = trim(args.substr(0, comma));
      if (arg.size() < 2 || (arg.front() != '`' && arg.front() != '"') || arg.back() != arg.front() ||
          arg.substr(1, arg.size() - 2).find(arg.front()) != std::string_view::npos)
        return "rule argument " + std::string(arg) + " is not quoted with backticks";
      values.emplace_back(arg.substr(1, arg.size() - 2));
      if (comma == std::string_view::npos) break;
      args.remove_prefix(comma + 1);
    }
    if (fn == "Host") {
      for (const std::string& host : values) {
        auto pattern = config::normalize_host_pattern(host);
        if (!pattern) return "'" + host + "' is not a valid host name";
        if (!add_distinct(hosts, std::move(*pattern))) return "the rule " + too_many_items("host names");
      }
    } else if (fn == "PathPrefix") {
      if (values.size() != 1 || has_path) return "only one PathPrefix per rule is supported";
      if (values[0].empty() || values[0].front() != '/') return "PathPrefix must start with '/'";
      if (values[0].find_first_of(";?#") != std::string::npos)
        return "PathPrefix must not contain ';', '?' or '#' (routes match the path alone, without parameters)";
      if (std::string problem = config::unreachable_prefix_problem(values[0]); !problem.empty())
        return "PathPrefix " + problem;
      path = values[0];
      has_path = true;
    } else {
      return "unsupported rule function " + std::string(fn) + " (supported: Host, PathPrefix)";
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 2);
  }
  return {};
}

bool has_traefik_routers(const ContainerFacts& c) {
  for (const auto& [label, value] : c.labels)
    if (label.compare(0, kTraefikRouters.size(), kTraefikRouters) == 0) return true;
  return false;
}

using TraefikMiddlewares = std::map<std::string, std::map<std::string, std::pair<std::string, std::string>>>;

// The part of a headers middleware's option after `prefix`, in the label's own spelling (the
// option was lower-cased to be matched; a header name keeps its case on the way to the instance).
std::string header_name_in(const std::string& mw_label, const std::string& option, std::string_view prefix) {
  return mw_label.substr(mw_label.size() - (option.size() - prefix.size()));
}

// The policy middlewares of one router (ipallowlist, basicauth, ratelimit, headers), as Berth's
// access and header rules. nullopt: mapped into `access` / `request` / `response`.
std::optional<Problem> apply_traefik_policy(const std::string& option, const std::string& mw_label,
                                            const std::string& raw, const LabelOptions& options,
                                            config::RouteAccess& access, config::HeaderRules& request,
                                            config::HeaderRules& response, bool& used) {
  const std::string_view value = trim(raw);
  constexpr std::string_view kRequestHeaders = "headers.customrequestheaders.";
  constexpr std::string_view kResponseHeaders = "headers.customresponseheaders.";
  if (option == "ipallowlist.sourcerange" || option == "ipwhitelist.sourcerange") {
    used = true;
    return parse_access_label(mw_label, "allow", value, options, access);
  }
  if (option == "basicauth.usersfile") {
    used = true;
    return parse_access_label(mw_label, "basic_auth", value, options, access);
  }
  if (option == "basicauth.users") {
    // user:hash pairs separated by commas; the same hashes an htpasswd file may hold.
    used = true;
    std::string text(value);
    std::replace(text.begin(), text.end(), ',', '\n');
    std::vector<config::Error> errors;
    access.basic_auth.users = config::parse_htpasswd(text, mw_label, errors);
    if (!errors.empty()) return Problem{mw_label, quoted(mw_label, raw) + ": " + errors.front().message};
    if (access.basic_auth.users.empty()) return Problem{mw_label, quoted(mw_label, raw) + ": lists no users"};
    access.basic_auth.htpasswd = mw_label;  // where the users come from (no file)
    return std::nullopt;
  }
  if (option == "basicauth.realm") {
    used = true;
    if (std::string why = config::realm_problem(value); !why.empty())
      return Problem{mw_label, quoted(mw_label, raw) + ": " + why};
    access.basic_auth.realm = std::string(value);
    return std::nullopt;
  }
  if (option == "ratelimit.average") {
    used = true;
    auto n = parse_int<uint32_t>(value, 0, config::RateLimit::kMaxPerSecond);
    if (!n)
      return Problem{mw_label, quoted(mw_label, raw) + ": expected requests per second, 0 to " +
                                   std::to_string(config::RateLimit::kMaxPerSecond)};
    access.rate_limit.per_second = *n;  // 0: no limit, as there
    if (access.rate_limit.burst == 0) access.rate_limit.burst = 1;  // burst's default there
    return std::nullopt;
  }
  if (option == "ratelimit.burst") {
    used = true;
    auto n = parse_int<uint32_t>(value, 1, config::RateLimit::kMaxBurst);
    if (!n) return Problem{mw_label, quoted(mw_label, raw) + ": " + burst_range()};
    access.rate_limit.burst = *n;
    return std::nullopt;
  }
  if (option == "ratelimit.period") {
    used = true;
    if (value != "1s" && value != "1") return Problem{mw_label, quoted(mw_label, raw) + ": Berth's rate limits are per second (period 1s)"};
    return std::nullopt;
  }
  for (auto [prefix, rules] : {std::pair{kRequestHeaders, &request}, std::pair{kResponseHeaders, &response}}) {
    if (!option.starts_with(prefix)) continue;
    used = true;
    std::string name = header_name_in(mw_label, option, prefix);
    // The config file's check: a token, and none of the fields that carry framing or that
    // Berth sets itself (a label setting Transfer-Encoding or X-Forwarded-For would smuggle).
    if (std::string why = config::header_name_problem(name); !why.empty()) return Problem{mw_label, mw_label + ": " + why};
    const bool printable = std::all_of(value.begin(), value.end(), [](unsigned char c) { return c >= 0x20 && c != 0x7f; });
    if (!printable) return Problem{mw_label, quoted(mw_label, raw) + ": a header value must not hold control characters"};
    if (value.empty()) rules->remove.push_back(name);  // an empty value removes the header there
    else rules->set.emplace_back(name, std::string(value));
    return std::nullopt;
  }
  return std::nullopt;
}

// The middlewares a router names (traefik.http.routers.R.middlewares=a,b@docker) that Berth
// maps: stripprefix.prefixes (one prefix), addprefix.prefix, redirectscheme.scheme=https
// (Berth's https_redirect, with redirectscheme.permanent's codes), ipallowlist (ipwhitelist) sourcerange, basicauth users /
// usersfile / realm, ratelimit average / burst (per second), and headers
// customrequestheaders / customresponseheaders. Path rewriting and access rules are one per
// container in Berth, so every router that names such middlewares must name the same; other
// middleware types are ignored.
std::optional<Problem> apply_traefik_middlewares(const std::string& label, std::string_view names,
                                                 const TraefikMiddlewares& defined, const LabelOptions& options,
                                                 RouteSpec& route, ContainerSpec& spec, std::string& policy_of) {
  if (label.empty()) return std::nullopt;
  config::PathRewrite rewrite;
  config::RouteAccess access;
  config::HeaderRules request, response;
  config::EncodedCharacters encoded;  // encodedcharacters.allowencoded*
  std::string policy;  // the policy middlewares' labels and values, to compare routers
  while (!names.empty()) {
    const size_t comma = names.find(',');
    std::string_view name = trim(names.substr(0, comma));
    names = comma == std::string_view::npos ? std::string_view() : names.substr(comma + 1);
    if (size_t at = name.find('@'); at != std::string_view::npos) name = name.substr(0, at);
    if (name.empty()) continue;
    auto found = defined.find(std::string(name));
    if (found == defined.end()) continue;  // defined elsewhere (a file provider): not Berth's to know
    for (const auto& [option, labelled] : found->second) {
      const auto& [mw_label, raw] = labelled;
      const std::string_view value = trim(raw);
      if (option == "stripprefix.prefixes") {
        if (value.find(',') != std::string_view::npos)
          return Problem{mw_label, quoted(mw_label, raw) + ": Berth strips one prefix per container"};
        if (std::string why = config::rewrite_prefix_problem(value); !why.empty())
          return Problem{mw_label, quoted(mw_label, raw) + ": " + why};
        rewrite.strip = config::PathRewrite::Strip::kGiven;
        rewrite.strip_prefix = std::string(value);
      } else if (option == "addprefix.prefix") {
        if (std::string why = config::rewrite_prefix_problem(value); !why.empty())
          return Problem{mw_label, quoted(mw_label, raw) + ": " + why};
        rewrite.add_prefix = std::string(value);
      } else if (option == "redirectscheme.scheme") {
        if (value != "https")
          return Problem{mw_label, quoted(mw_label, raw) + ": only redirects to https are supported"};
        route.https_redirect = true;
        // As there: 302 (permanent=true: 301) for GET and HEAD, the method-keeping 307 (308)
        // for other methods.
        bool permanent = false;
        if (auto given = found->second.find("redirectscheme.permanent"); given != found->second.end())
          if (auto p = parse_bool(given->second.first, trim(given->second.second), permanent)) return p;
        route.https_redirect_code = permanent ? 301 : 302;
      } else if (option == "redirectscheme.permanent") {
        // read with redirectscheme.scheme
      } else if (option.starts_with("encodedcharacters.")) {
        // allowEncodedSlash, ...: Berth's allow_encoded_* keys without the underscores.
        if (auto c = config::encoded_character_named_without_underscores(std::string_view(option).substr(18))) {
          bool allow = false;
          if (auto p = parse_bool(mw_label, value, allow)) return p;
          encoded.set(*c, allow);
          policy += mw_label + "=" + raw + "\n";
        }
      } else {
        bool used = false;
        if (auto p = apply_traefik_policy(option, mw_label, raw, options, access, request, response, used)) return p;
        if (used) policy += mw_label + "=" + raw + "\n";
      }
    }
  }
  if (!policy.empty()) {
    if (!policy_of.empty() && policy_of != policy)
      return Problem{label, label + ": its routers name different ipallowlist/basicauth/ratelimit/headers/"
                                "encodedcharacters middlewares; Berth applies one set of access and header rules "
                                "to every route of a container"};
    if (policy_of.empty()) {
      if (!spec.access.empty() && !access.empty())
        return Problem{label, label + ": access rules come from both berth.access.* labels and Traefik middlewares; "
                                  "use one of the two"};
      if (!access.empty()) spec.access = std::move(access);
      if (encoded.given) {
        if (spec.encoded_characters.given)
          return Problem{label, label + ": encoded characters come from both berth.encoded_characters.* labels and a "
                                    "Traefik encodedcharacters middleware; use one of the two"};
        spec.encoded_characters = encoded;
      }
      spec.request_headers = std::move(request);
      spec.response_headers = std::move(response);
      policy_of = std::move(policy);
    }
  }
  if (!rewrite.enabled()) return std::nullopt;
  if (spec.rewrite.enabled() && !(spec.rewrite == rewrite))
    return Problem{label, label + ": its routers name different stripprefix/addprefix middlewares; Berth "
                              "rewrites paths the same way for every route of a container"};
  spec.rewrite = std::move(rewrite);
  return std::nullopt;
}

ContainerSpec traefik_spec(const ContainerFacts& c, const BerthLabels& berth, const std::string& service,
                           const LabelOptions& options) {
  struct Router {
    std::string rule_label, rule, service;
    int32_t priority = 0;
    std::string middlewares_label, middlewares;
  };
  std::map<std::string, Router> routers;
  std::map<std::string, uint16_t> service_ports;
  // traefik.http.middlewares.NAME.<type>.<option> -> value, by NAME
  std::map<std::string, std::map<std::string, std::pair<std::string, std::string>>> middlewares;
  for (const auto& [label, value] : c.labels) {
    std::string_view key = label;
    if (key.compare(0, kTraefikRouters.size(), kTraefikRouters) == 0) {
      std::string_view rest = key.substr(kTraefikRouters.size());
      size_t dot = rest.find('.');
      if (dot == std::string_view::npos) continue;
      Router& router = routers[std::string(rest.substr(0, dot))];
      std::string_view field = rest.substr(dot + 1);
      if (field == "rule") {
        router.rule_label = label;
        router.rule = value;
      } else if (field == "service") {
        router.service = std::string(trim(value));
      } else if (field == "priority") {
        if (auto p = parse_priority(label, value, router.priority)) return reject(*p, "traefik");
      } else if (field == "middlewares") {
        router.middlewares_label = label;
        router.middlewares = value;
      }
    } else if (key.compare(0, kTraefikMiddlewares.size(), kTraefikMiddlewares) == 0) {
      std::string_view rest = key.substr(kTraefikMiddlewares.size());
      size_t dot = rest.find('.');
      if (dot == std::string_view::npos) continue;
      std::string option = ascii_lowered(rest.substr(dot + 1));
      middlewares[std::string(rest.substr(0, dot))][option] = {label, value};
    } else if (key.compare(0, kTraefikServices.size(), kTraefikServices) == 0) {
      std::string_view rest = key.substr(kTraefikServices.size());
      size_t dot = rest.find('.');
      if (dot == std::string_view::npos) continue;
      std::string name(rest.substr(0, dot));
      if (rest.substr(dot + 1) == "loadbalancer.server.port") {
        uint16_t port = 0;
        if (auto p = parse_port(label, value, port)) return reject(*p, "traefik");
        service_ports[name] = port;
      }
    }
  }
  ContainerSpec spec;
  spec.kind = ContainerSpec::Kind::kRouted;
  spec.origin = "traefik";
  spec.weight = berth.weight;
  spec.network = berth.network;
  spec.policy = berth.policy;
  spec.access = berth.access;
  spec.encoded_characters = berth.encoded_characters;
  spec.rewrite = berth.rewrite;
  spec.redirect = berth.redirect;
  std::string policy_of;  // the first router's policy middlewares (apply_traefik_middlewares)
  for (const auto& [name, router] : routers) {
    std::string rule_label = std::string(kTraefikRouters) + name + ".rule";
    if (router.rule_label.empty()) return reject({rule_label, "label " + rule_label + " is missing"}, "traefik");
    RouteSpec route;
    route.name = name;
    route.priority = router.priority;
    route.https_redirect = berth.https_redirect;
    route.acme = berth.acme;
    bool has_path = false;
    std::string why = parse_traefik_rule(router.rule, route.hosts, route.path, has_path);
    if (!why.empty()) return reject({rule_label, quoted(rule_label, router.rule) + ": " + why}, "traefik");
    std::string traefik_service = router.service;
    if (traefik_service.empty() && service_ports.size() == 1) traefik_service = service_ports.begin()->first;
    if (size_t at = traefik_service.find('@'); at != std::string::npos) traefik_service.resize(at);
    route.service = traefik_service.empty() ? service : traefik_service;
    if (!valid_service_name(route.service)) {
      return reject({std::string(kTraefikRouters) + name + ".service",
                     "traefik service name '" + route.service + "' is not a valid service name"}, "traefik");
    }
    if (auto p = apply_traefik_middlewares(router.middlewares_label, router.middlewares, middlewares, options,
                                           route, spec, policy_of))
      return reject(*p, "traefik");
    auto port = service_ports.find(traefik_service);
    uint16_t labelled = port != service_ports.end() ? port->second : berth.port;
    std::string port_label = std::string(kTraefikServices) + (traefik_service.empty() ? std::string("S") : traefik_service) +
                             ".loadbalancer.server.port";
    if (auto p = default_port(c, labelled, route.port, port_label)) return reject(*p, "traefik");
    spec.routes.push_back(std::move(route));
  }
  return spec;
}

// ---- nginx-proxy compatibility ----

ContainerSpec nginx_spec(const ContainerFacts& c, const BerthLabels& berth, const std::string& service) {
  ContainerSpec spec;
  spec.kind = ContainerSpec::Kind::kRouted;
  spec.origin = "nginx-proxy";
  spec.weight = berth.weight;
  spec.network = berth.network;
  spec.policy = berth.policy;
  spec.access = berth.access;
  spec.encoded_characters = berth.encoded_characters;
  spec.rewrite = berth.rewrite;
  spec.redirect = berth.redirect;
  RouteSpec route;
  route.service = service;
  route.priority = berth.priority;
  std::string hosts = c.env_value("VIRTUAL_HOST");
  // nginx-proxy also accepts spaces between host names.
  std::replace(hosts.begin(), hosts.end(), ' ', ',');
  std::string compact;
  for (size_t i = 0; i < hosts.size(); ++i)
    if (!(hosts[i] == ',' && (compact.empty() || compact.back() == ','))) compact += hosts[i];
  while (!compact.empty() && compact.back() == ',') compact.pop_back();
  if (auto p = parse_hosts("VIRTUAL_HOST", compact, route.hosts)) return reject(*p, "nginx-proxy");
  route.https_redirect = berth.https_redirect;
  route.acme = berth.acme;
  std::string path = c.env_value("VIRTUAL_PATH");
  if (!path.empty()) {
    if (auto p = parse_path("VIRTUAL_PATH", path, route.path)) return reject(*p, "nginx-proxy");
  }
  uint16_t labelled = berth.port;
  std::string port_text = c.env_value("VIRTUAL_PORT");
  if (!port_text.empty()) {
    if (auto p = parse_port("VIRTUAL_PORT", port_text, labelled)) return reject(*p, "nginx-proxy");
  }
  if (auto p = default_port(c, labelled, route.port, "VIRTUAL_PORT")) return reject(*p, "nginx-proxy");
  spec.routes.push_back(std::move(route));
  return spec;
}

}  // namespace

std::string default_service_name(const ContainerFacts& c) {
  auto project = c.labels.find("com.docker.compose.project");
  auto service = c.labels.find("com.docker.compose.service");
  if (project != c.labels.end() && service != c.labels.end() && !project->second.empty() &&
      !service->second.empty()) {
    std::string name = project->second + "-" + service->second;
    if (valid_service_name(name)) return name;
  }
  std::string name = c.name;
  for (char& ch : name)
    if (!is_name_char(ch)) ch = '_';
  return name.empty() ? c.id.substr(0, 12) : name;
}

namespace {

ContainerSpec routed_spec(const ContainerFacts& c, const LabelOptions& options);

// berth.upstream.tls=true: the instances are verified against the system's CA store under the
// name in berth.upstream.tls.server_name, or else the first exact host of the first route.
ContainerSpec with_upstream_tls(ContainerSpec spec) {
  config::UpstreamTls& tls = spec.policy.tls;
  if (spec.kind != ContainerSpec::Kind::kRouted || !tls.enabled) return spec;
  if (spec.policy.health.enabled)
    return reject({"berth.upstream.tls", "berth.upstream.tls: active health checks (berth.health.*) do not speak "
                                         "TLS yet; passive health (berth.outlier.*) applies"}, spec.origin);
  if (tls.server_name.empty()) {
    for (const RouteSpec& route : spec.routes)
      for (const std::string& host : route.hosts)
        if (tls.server_name.empty() && host.find('*') == std::string::npos) tls.server_name = host;
  }
  if (tls.server_name.empty())
    return reject({"berth.upstream.tls.server_name", "berth.upstream.tls.server_name is required: no route has an "
                                                     "exact host to verify the instances' certificates against"},
                  spec.origin);
  return spec;
}

}  // namespace

ContainerSpec parse_container_labels(const ContainerFacts& c, const LabelOptions& options) {
  return with_upstream_tls(routed_spec(c, options));
}

namespace {

ContainerSpec routed_spec(const ContainerFacts& c, const LabelOptions& options) {
  // Switched off: its other labels are not read, nor listed as refused.
  if (auto off = c.labels.find("berth.enable"); off != c.labels.end()) {
    bool flag = true;
    if (!parse_bool(off->first, off->second, flag) && !flag) return ignored("berth.enable is false");
  }
  BerthLabels berth;
  if (auto problem = read_berth_labels(c, options, berth)) return reject(*problem, "berth");

  const bool traefik_routers = options.traefik && has_traefik_routers(c);
  // traefik.enable as Traefik reads it (Go's strconv.ParseBool, exactly: 1, t, T, true, True,
  // TRUE): any other value opts out, as one Traefik cannot read leaves the container out there.
  auto traefik_enable = c.labels.find("traefik.enable");
  bool traefik_disabled = false;
  if (traefik_enable != c.labels.end()) {
    const std::string& v = traefik_enable->second;
    traefik_disabled = v != "1" && v != "t" && v != "T" && v != "true" && v != "True" && v != "TRUE";
  }
  const bool nginx_host = options.nginx_proxy && !c.env_value("VIRTUAL_HOST").empty();
  const bool berth_routes = berth.has_host || berth.has_path || !berth.routes.empty();

  const bool enabled = (berth.enable && *berth.enable) || options.exposed_by_default ||
                       (traefik_routers && !traefik_disabled) || nginx_host;
  const std::string traefik_off = traefik_routers && traefik_disabled
                                      ? "traefik.enable=\"" + traefik_enable->second +
                                            "\" is not true as Traefik reads it (1, t, T, true, True or TRUE)"
                                      : std::string();
  if (!enabled)
    return ignored(!traefik_off.empty() ? traefik_off
                                        : "no label enables it (berth.enable=true, Traefik routers, VIRTUAL_HOST)");

  const std::string service = berth.service.empty() ? default_service_name(c) : berth.service;

  if (!berth_routes) {
    if (traefik_routers && !traefik_disabled) return traefik_spec(c, berth, service, options);
    if (nginx_host) return nginx_spec(c, berth, service);
    if (berth.any) {
      return reject({"berth.host", "no route declared: set berth.host and/or berth.path "
                                   "(or berth.routes.NAME.host / .path)"}, "berth");
    }
    return ignored(!traefik_off.empty() ? traefik_off : "exposed by default, but no label says how to route it");
  }

  ContainerSpec spec;
  spec.kind = ContainerSpec::Kind::kRouted;
  spec.origin = "berth";
  spec.weight = berth.weight;
  spec.network = berth.network;
  spec.policy = berth.policy;
  spec.access = berth.access;
  spec.encoded_characters = berth.encoded_characters;
  spec.rewrite = berth.rewrite;
  spec.redirect = berth.redirect;
  spec.match = berth.match;
  if (berth.has_host || berth.has_path) {
    RouteSpec route;
    route.hosts = berth.hosts;
    route.path = berth.path;
    route.service = service;
    route.priority = berth.priority;
    route.https_redirect = berth.https_redirect;
    route.acme = berth.acme;
    route.match = berth.match;
    route.mirror = berth.mirror;
    if (auto p = default_port(c, berth.port, route.port, "berth.port")) return reject(*p, "berth");
    spec.routes.push_back(std::move(route));
  }
  for (const auto& [name, named] : berth.routes) {
    std::string base = std::string(kRoutesPrefix) + name;
    if (!named.has_host && !named.has_path) {
      return reject({base + ".host", "route " + base + " has neither " + base + ".host nor " + base + ".path"},
                    "berth");
    }
    RouteSpec route;
    route.name = name;
    route.hosts = named.hosts;
    route.path = named.path;
    route.priority = named.priority.value_or(berth.priority);
    route.https_redirect = berth.https_redirect;
    route.acme = berth.acme;
    route.service = named.service.empty() ? service + "-" + name : named.service;
    route.match = with_route_matchers(berth.match, named.match);
    route.mirror = named.mirror.enabled() ? named.mirror : berth.mirror;
    uint16_t labelled = named.port ? named.port : berth.port;
    if (auto p = default_port(c, labelled, route.port, base + ".port")) return reject(*p, "berth");
    spec.routes.push_back(std::move(route));
  }
  return spec;
}

}  // namespace

}  // namespace berth::discovery
