#include "config/rewrite.h"

#include <re2/re2.h>

namespace berth::config {
namespace {

// What a rewritten path may carry: the request-target bytes (visible ASCII) but not the start
// of a query or a fragment.
bool is_path_char(unsigned char c) { return c > 0x20 && c < 0x7f && c != '?' && c != '#'; }

// Whether `path` starts with `prefix` at a segment boundary ("/api" in "/api" and "/api/x",
// not in "/apix"). A prefix ending in '/' already ends at one.
// Whether `prefix` is the path's first segments: it ends at a '/', at the end, or where the
// segment's parameters begin (";", as routes match "/api;v=1" by "/api").
bool segment_prefix(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/' ||
         path[prefix.size()] == ';';
}

// Whether the written text of a path holds a "." or ".." segment (a dot may be written %2e,
// parameters after ';' aside): the instance would resolve it, and the request would reach a
// path its route does not guard. Segments holding a group reference (\N) are left to the
// check each request's result gets.
bool has_dot_segment(std::string_view text) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('/', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view segment = text.substr(start, end - start);
    segment = segment.substr(0, segment.find(';'));
    size_t dots = 0;
    bool only_dots = !segment.empty() && segment.find('\\') == std::string_view::npos;
    for (size_t i = 0; only_dots && i < segment.size(); ++i, ++dots) {
      if (segment[i] == '.') continue;
      only_dots = segment.substr(i, 3) == "%2e" || segment.substr(i, 3) == "%2E";
      i += 2;
    }
    if (only_dots && (dots == 1 || dots == 2)) return true;
    start = end + 1;
  }
  return false;
}

std::string_view without_trailing_slash(std::string_view prefix) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.remove_suffix(1);
  return prefix == "/" ? std::string_view() : prefix;
}

}  // namespace

std::string rewrite_prefix_problem(std::string_view text) {
  if (text.empty() || text.front() != '/') return "must start with '/'";
  for (unsigned char c : text) {
    if (c == '?' || c == '#') return std::string("must not contain '") + static_cast<char>(c) + "' (a path only)";
    if (!is_path_char(c)) return "must be visible ASCII without spaces";
  }
  if (has_dot_segment(text)) return "must not hold a '.' or '..' segment (the instance would resolve it)";
  return {};
}

std::string compile_path_regex(std::string_view pattern, std::string_view replacement, PathRewrite& rewrite) {
  if (pattern.empty()) return "regex must not be empty";
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<const RE2>(pattern, options);
  if (!re->ok()) return "invalid regex '" + std::string(pattern) + "': " + re->error();
  std::string error;
  if (!re->CheckRewriteString(replacement, &error))
    return "replacement '" + std::string(replacement) + "' does not fit the regex: " + error;
  for (size_t i = 0; i < replacement.size(); ++i) {
    const auto c = static_cast<unsigned char>(replacement[i]);
    if (c == '\\') {
      ++i;  // \N or "\\": checked by RE2 above
      continue;
    }
    if (!is_path_char(c))
      return "replacement '" + std::string(replacement) +
             "' may hold only visible ASCII without spaces, '?' or '#' (the query is kept as sent)";
  }
  if (has_dot_segment(replacement))
    return "replacement '" + std::string(replacement) +
           "' must not hold a '.' or '..' segment (the instance would resolve it)";
  // An anchored pattern replaces from the first byte: the result starts with what the
  // replacement starts with, which must then be '/' (or a group, checked per request).
  if (pattern.front() == '^' && (replacement.empty() || (replacement.front() != '/' && replacement.front() != '\\')))
    return "replacement '" + std::string(replacement) + "' must start with '/' (the path sent must)";
  rewrite.regex = std::move(re);
  rewrite.regex_text = std::string(pattern);
  rewrite.replacement = std::string(replacement);
  return {};
}

std::string redirect_target_problem(std::string_view to) {
  if (to.empty()) return "must not be empty";
  for (size_t i = 0; i < to.size(); ++i) {
    const auto c = static_cast<unsigned char>(to[i]);
    if (c <= 0x20 || c >= 0x7f) return "must be visible ASCII without spaces";
    if (c == '}') return "has '}' without '{'";
    if (c != '{') continue;
    const size_t close = to.find('}', i);
    if (close == std::string_view::npos) return "has '{' without '}'";
    const std::string_view name = to.substr(i + 1, close - i - 1);
    if (name != "uri" && name != "path" && name != "query" && name != "host")
      return "unknown placeholder {" + std::string(name) + "} (known: {uri}, {path}, {query}, {host})";
    i = close;
  }
  return {};
}

std::string redirect_code_problem(int64_t code) {
  switch (code) {
    case 301: case 302: case 303: case 307: case 308:
      return {};
    default:
      return "must be 301, 302, 303, 307 or 308";
  }
}

RewriteOutcome rewrite_target(const PathRewrite& rewrite, std::string_view route_prefix, std::string_view target,
                              std::string& out, std::string& stripped) {
  stripped.clear();
  if (target.empty() || target.front() != '/') return RewriteOutcome::kUnchanged;  // "*"
  const size_t q = target.find('?');
  std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q);  // with '?'

  // 1. strip: the rest keeps its leading '/', and is "/" when nothing is left.
  const std::string_view strip = rewrite.strip == PathRewrite::Strip::kRoutePrefix ? route_prefix
                                 : rewrite.strip == PathRewrite::Strip::kGiven     ? std::string_view(rewrite.strip_prefix)
                                                                                   : std::string_view();
  bool changed = false;
  std::string_view rest = path;
  const std::string_view taken = without_trailing_slash(strip);
  if (!taken.empty() && segment_prefix(path, strip)) {
    rest = path.substr(taken.size());
    stripped.assign(taken);
    changed = true;
  }
  // 2. add: joined with one '/' between.
  out.clear();
  if (!rewrite.add_prefix.empty()) {
    const std::string_view add = without_trailing_slash(rewrite.add_prefix);
    out.append(add);
    changed = changed || !add.empty();
  }
  // "/api;v=1" stripped of "/api" leaves the parameters of the root: "/;v=1" (or "/v1;v=1").
  if (rest.empty() || (rest.front() == ';' && out.empty())) out.push_back('/');
  out.append(rest);
  // 3. the regular expression, first match.
  if (rewrite.regex && RE2::Replace(&out, *rewrite.regex, rewrite.replacement)) changed = true;
  if (!changed) {
    out.clear();
    return RewriteOutcome::kUnchanged;
  }
  if (out.empty() || out.front() != '/') return RewriteOutcome::kFailed;
  for (unsigned char c : out)
    if (!is_path_char(c)) return RewriteOutcome::kFailed;
  out.append(query);
  return RewriteOutcome::kRewritten;
}

void expand_redirect(std::string_view to, std::string_view target, std::string_view host, std::string& out) {
  const size_t q = target.find('?');
  const std::string_view path = target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  for (size_t i = 0; i < to.size(); ++i) {
    if (to[i] != '{') {
      out.push_back(to[i]);
      continue;
    }
    const size_t close = to.find('}', i);
    if (close == std::string_view::npos) {  // refused at load; kept literal if it ever comes
      out.append(to.substr(i));
      return;
    }
    const std::string_view name = to.substr(i + 1, close - i - 1);
    if (name == "uri") out.append(target);
    else if (name == "path") out.append(path);
    else if (name == "query") out.append(query);
    else if (name == "host") out.append(host);
    else out.append(to.substr(i, close - i + 1));
    i = close;
  }
}

}  // namespace berth::config
