// Route matchers: the canonical key and the regular expression compiled once at load time.
#include "config/route_match.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>

namespace berth::config {

std::string RouteMatch::key() const {
  if (empty()) return {};
  std::string out;
  std::vector<std::string> m = methods;
  std::sort(m.begin(), m.end());
  out += "methods";
  for (const std::string& method : m) out += ' ' + method;
  auto add = [&out](const char* what, std::vector<NameMatch> list, bool fold) {
    for (NameMatch& n : list)
      if (fold) std::transform(n.name.begin(), n.name.end(), n.name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::sort(list.begin(), list.end(), [](const NameMatch& a, const NameMatch& b) {
      return a.name != b.name ? a.name < b.name : a.value < b.value;
    });
    out += '\n';
    out += what;
    for (const NameMatch& n : list) {
      out += '\0';
      out += n.name;
      out += n.value ? "=" + *n.value : std::string("?");
    }
  };
  add("headers", headers, true);
  add("query", query, false);
  out += "\nregex ";
  out += path_regex;
  return out;
}

std::shared_ptr<const re2::RE2> compile_path_regex(const std::string& pattern, std::string& problem) {
  re2::RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);  // bounds the compiled program; large patterns are refused
  auto compiled = std::make_shared<const re2::RE2>(pattern, options);
  if (!compiled->ok()) {
    problem = "invalid regular expression (RE2 syntax): " + compiled->error();
    return nullptr;
  }
  problem.clear();
  return compiled;
}

std::string header_match_name_problem(std::string_view name) {
  if (name.empty()) return "must not be empty";
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
      return "'" + std::string(name) + "' is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)";
  }
  return {};
}

std::string query_match_problem(std::string_view text, bool is_name) {
  if (is_name && text.empty()) return "must not be empty";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte == 0x7f || c == '&' || c == '#' || (is_name && c == '='))
      return "'" + std::string(text) + "' cannot appear in a raw query " + (is_name ? "name" : "value") +
             " (no '&', '#', spaces or control characters" + (is_name ? ", no '='" : "") +
             "; written as sent, percent-encoding included)";
  }
  return {};
}

std::optional<std::string> normalize_method(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::string upper;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return std::nullopt;
    upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return upper;
}

}  // namespace berth::config
