// Request matchers besides host and path (routes[].match, berth.match.* labels) and weighted
// splits between services (routes[].split). Plain data shared by the config file and the
// container labels; the route table evaluates the matchers (proxy/model).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace berth::config {

// A header or query parameter that must be present (no value) or have exactly `value`.
struct NameMatch {
  std::string name;                  // header: compared case-insensitively; query: raw bytes
  std::optional<std::string> value;  // nullopt: present with any value (an empty one too)
  bool operator==(const NameMatch&) const = default;
};

// Every matcher given must hold for a route to match (and, within each list, every entry).
struct RouteMatch {
  std::vector<std::string> methods;  // upper-case; the request method must be one (empty: any)
  std::vector<NameMatch> headers;    // values exact, names case-insensitive
  std::vector<NameMatch> query;      // split on '&' then the first '='; no percent-decoding; a
                                     // repeated parameter matches if any occurrence does
  std::string path_regex;            // RE2 syntax, as written ("" = none)
  // path_regex compiled once (never null when path_regex is set): must match the whole raw
  // path, the query excluded (RE2::FullMatch), in time linear in the path's length.
  std::shared_ptr<const re2::RE2> path_regex_compiled;

  bool empty() const noexcept {
    return methods.empty() && headers.empty() && query.empty() && path_regex.empty();
  }
  // A canonical text of the matchers: two routes with the same key match the same requests.
  std::string key() const;
  bool operator==(const RouteMatch& o) const {
    return methods == o.methods && headers == o.headers && query == o.query && path_regex == o.path_regex;
  }
};

// Compiles `pattern` for RouteMatch::path_regex_compiled; null with `problem` set when it is
// not valid RE2 (or is too large).
std::shared_ptr<const re2::RE2> compile_path_regex(const std::string& pattern, std::string& problem);

// An HTTP method token (letters, digits, '-', '_') upper-cased; nullopt when not one.
std::optional<std::string> normalize_method(std::string_view text);

// Empty when `name` can be matched as a request header name (an HTTP token), else why not.
std::string header_match_name_problem(std::string_view name);
// Empty when `text` can be matched as a query parameter name (is_name: non-empty) or value as
// it appears in the raw query, else why not: no '&', '#', spaces or control characters, and
// no '=' in a name.
std::string query_match_problem(std::string_view text, bool is_name);

// routes[].split: one entry per service, chosen by smooth weighted round-robin.
struct SplitTarget {
  std::string service;
  uint32_t weight = 1;  // 1..1000000
  bool operator==(const SplitTarget&) const = default;
};

}  // namespace berth::config
