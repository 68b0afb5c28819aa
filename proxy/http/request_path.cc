#include "proxy/http/request_path.h"

#include <cstddef>

namespace berth::http {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

bool is_dot_segment(std::string_view s) { return s == "." || s == ".."; }

// Whether the path (no query) is in sanitized form already: no '%' or '\', no empty segment but
// a trailing one, no "." or ".." segment, and none of those with parameters.
bool already_sanitized(std::string_view path) {
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' || path[i] == '\\') return false;
    if (path[i] != '/') continue;
    const size_t end = path.find('/', i + 1);
    const std::string_view segment = path.substr(i + 1, end == std::string_view::npos ? end : end - i - 1);
    if (segment.empty() && end != std::string_view::npos) return false;  // "//"
    if (!segment.empty() && segment[0] == '.' && is_dot_segment(segment.substr(0, segment.find(';'))))
      return false;
  }
  return true;
}

}  // namespace

PathSanitize sanitize_path(std::string_view path_and_query, std::string& out, const char** error) {
  const size_t q = path_and_query.find('?');
  const std::string_view path = path_and_query.substr(0, q);
  if (path.empty() || path[0] != '/' || already_sanitized(path)) return PathSanitize::kUnchanged;

  // 1. Percent-encodings: unreserved characters decoded, the others' hex upper-cased.
  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '\\') {
      *error = "backslash in path";
      return PathSanitize::kInvalid;
    }
    if (path[i] != '%') {
      decoded.push_back(path[i]);
      continue;
    }
    const int hi = i + 2 < path.size() ? hex_value(path[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_value(path[i + 2]) : -1;
    if (lo < 0) {
      *error = "invalid percent-encoding in path";
      return PathSanitize::kInvalid;
    }
    const auto c = static_cast<unsigned char>(hi * 16 + lo);
    if (unreserved(c)) {
      decoded.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      decoded.push_back('%');
      decoded.push_back(kHex[hi]);
      decoded.push_back(kHex[lo]);
    }
    i += 2;
  }

  // 2. Segments: "." and ".." resolved, empty ones merged. A last segment that is empty, "." or
  // ".." leaves a trailing '/' ("/a/b/.." -> "/a/").
  std::string result;
  result.reserve(decoded.size() + (path_and_query.size() - path.size()));
  size_t i = 1;  // past the leading '/'
  bool trailing_slash = false;
  while (true) {
    const size_t end = decoded.find('/', i);
    const std::string_view segment =
        std::string_view(decoded).substr(i, end == std::string::npos ? std::string::npos : end - i);
    const bool last = end == std::string::npos;
    if (!segment.empty() && segment[0] == '.' && !is_dot_segment(segment) &&
        is_dot_segment(segment.substr(0, segment.find(';')))) {
      *error = "dot segment with parameters in path";
      return PathSanitize::kInvalid;
    }
    if (segment == "..") {
      const size_t cut = result.rfind('/');
      result.resize(cut == std::string::npos ? 0 : cut);
      trailing_slash = last;
    } else if (segment.empty() || segment == ".") {
      trailing_slash = last;
    } else {
      result.push_back('/');
      result.append(segment);
      trailing_slash = false;
    }
    if (last) break;
    i = end + 1;
  }
  if (result.empty() || trailing_slash) result.push_back('/');
  result.append(path_and_query.substr(path.size()));  // the query, as it came
  if (result == path_and_query) return PathSanitize::kUnchanged;
  out = std::move(result);
  return PathSanitize::kChanged;
}

}  // namespace berth::http
