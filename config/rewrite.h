// Path rewriting and redirects of a route (routes[].strip_prefix / add_prefix / rewrite /
// redirect, and the berth.strip_prefix / add_prefix / redirect.* labels). The settings as plain
// structs, checked and compiled once when the configuration (or a container's labels) is read,
// and the pure functions the data path applies per request. No I/O, no allocation beyond the
// output strings.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace berth::config {

// How the path the instance sees is made from the client's. Applied in this order: strip,
// then add, then the regular expression. Only the path changes; the query string goes on as
// the client sent it.
struct PathRewrite {
  enum class Strip : uint8_t { kNone, kRoutePrefix, kGiven };
  Strip strip = Strip::kNone;
  std::string strip_prefix;          // kGiven: the prefix to strip (starts with '/')
  std::string add_prefix;            // "" = none; else starts with '/'
  std::shared_ptr<const re2::RE2> regex;  // null = none; RE2 syntax, compiled once
  std::string regex_text;            // as written, for messages and comparisons
  std::string replacement;           // \0..\9 name groups of `regex`
  bool enabled() const { return strip != Strip::kNone || !add_prefix.empty() || regex != nullptr; }
  bool operator==(const PathRewrite& o) const {
    return strip == o.strip && strip_prefix == o.strip_prefix && add_prefix == o.add_prefix &&
           regex_text == o.regex_text && replacement == o.replacement;
  }
};

// A redirect answered by Berth itself, before any instance (routes[].redirect).
struct Redirect {
  std::string to;      // Location template: {uri} {path} {query} {host} ("" = no redirect)
  uint16_t code = 302; // 301, 302, 303, 307 or 308
  bool enabled() const { return !to.empty(); }
  bool operator==(const Redirect&) const = default;
};

// Empty when `text` works as a strip_prefix or add_prefix value (starts with '/', visible
// ASCII without '?' or '#'), else why not.
std::string rewrite_prefix_problem(std::string_view text);
// Compiles `pattern` into rewrite.regex and checks `replacement` against it: empty, or the
// problem (a bad pattern, a group the pattern lacks, a replacement that cannot give a path).
std::string compile_path_regex(std::string_view pattern, std::string_view replacement, PathRewrite& rewrite);
// Empty when `to` is a usable redirect template (visible ASCII, placeholders among {uri},
// {path}, {query}, {host}), else why not.
std::string redirect_target_problem(std::string_view to);
// Empty when `code` is a redirect status Berth sends, else why not.
std::string redirect_code_problem(int64_t code);

// The result of rewriting one request path.
enum class RewriteOutcome : uint8_t {
  kUnchanged,  // nothing applied (out untouched): send the client's target
  kRewritten,  // out holds the new target (path, then '?' and the query when there was one)
  kFailed,     // the result is not a path that may be sent (no leading '/', or a byte a
               // request target may not carry): the request gets 500 rewrite-failed
};

// Rewrites the origin-form `target` (path and query) by `rewrite`; route_prefix is the path
// prefix of the route that matched (used by Strip::kRoutePrefix). Strip matches by path segment:
// "/api" strips "/api" and "/api/x" but not "/apix"; a path left empty becomes "/". stripped
// gets the prefix taken off, without a trailing '/' (for X-Forwarded-Prefix; "" when none).
RewriteOutcome rewrite_target(const PathRewrite& rewrite, std::string_view route_prefix, std::string_view target,
                              std::string& out, std::string& stripped);

// The Location of a redirect: `to` with {uri} (the client's target, path and query), {path},
// {query} (without '?', "" when none) and {host} (the Host the client sent) put in.
void expand_redirect(std::string_view to, std::string_view target, std::string_view host, std::string& out);

}  // namespace berth::config
