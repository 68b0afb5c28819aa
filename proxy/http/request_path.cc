#include "proxy/http/request_path.h"

#include <cstddef>
#include <cstring>

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

// "." or "..", bare or with parameters ("..;x").
bool names_dot_segment(std::string_view s) { return !s.empty() && s[0] == '.' && is_dot_segment(s.substr(0, s.find(';'))); }

// "." or ".." with parameters: refused, since servers that drop path parameters read it as "..".
bool dot_segment_with_params(std::string_view s) { return names_dot_segment(s) && !is_dot_segment(s); }

// Whether a raw segment, its parameters aside, is "." or ".." with any dot written "%2e" or
// "%2E" (as a server that decodes before resolving reads it).
bool names_encoded_dot_segment(std::string_view s) {
  s = s.substr(0, s.find(';'));
  size_t dots = 0;
  for (size_t i = 0; i < s.size(); ++i, ++dots) {
    if (s[i] == '.') continue;
    if (s.substr(i, 2) != "%2" || i + 2 >= s.size() || (s[i + 2] != 'e' && s[i + 2] != 'E')) return false;
    i += 2;
  }
  return dots == 1 || dots == 2;
}

// Whether the path (no query) is in sanitized form already: no '%' or '\', no empty segment but
// a trailing one, no "." or ".." segment, none of those with parameters, and no parameters but
// on the last segment.
bool already_sanitized(std::string_view path) {
  bool parameters = false;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' || path[i] == '\\') return false;
    if (path[i] == ';') parameters = true;
    if (path[i] != '/') continue;
    if (parameters) return false;  // a later segment follows parameters
    const size_t end = path.find('/', i + 1);
    const std::string_view segment = path.substr(i + 1, end == std::string_view::npos ? end : end - i - 1);
    if (segment.empty() && end != std::string_view::npos) return false;  // "//"
    if (names_dot_segment(segment)) return false;
  }
  return true;
}

// Appends one raw segment with its percent-encodings normalised: unreserved characters decoded,
// the others' hex upper-cased. Decoding never yields '/' ("%2F" stays encoded), so the segments
// of the decoded path are those of the raw one.
bool append_decoded(std::string& out, std::string_view raw, const char** error) {
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\\') {
      *error = "backslash in path";
      return false;
    }
    if (raw[i] != '%') {
      out.push_back(raw[i]);
      continue;
    }
    const int hi = i + 2 < raw.size() ? hex_value(raw[i + 1]) : -1;
    const int lo = hi >= 0 ? hex_value(raw[i + 2]) : -1;
    if (lo < 0) {
      *error = "invalid percent-encoding in path";
      return false;
    }
    const auto c = static_cast<unsigned char>(hi * 16 + lo);
    if (unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out.push_back('%');
      out.push_back(kHex[hi]);
      out.push_back(kHex[lo]);
    }
    i += 2;
  }
  return true;
}

// The EncodedCharacter a "%XY" names (0 for any other), and its error text.
struct EncodedName {
  uint8_t bit;
  const char* error;
};
EncodedName encoded_character(int hi, int lo) {
  switch (hi * 16 + lo) {
    case 0x2F: return {kEncodedSlash, "encoded slash (%2F) in path"};
    case 0x5C: return {kEncodedBackslash, "encoded backslash (%5C) in path"};
    case 0x00: return {kEncodedNull, "encoded null character (%00) in path"};
    case 0x3B: return {kEncodedSemicolon, "encoded semicolon (%3B) in path"};
    case 0x25: return {kEncodedPercent, "encoded percent sign (%25) in path"};
    case 0x3F: return {kEncodedQuestionMark, "encoded question mark (%3F) in path"};
    case 0x23: return {kEncodedHash, "encoded hash (%23) in path"};
    default: return {0, nullptr};
  }
}

}  // namespace

const char* refused_encoding(std::string_view path_and_query, uint8_t refused) {
  // Nearly every path has no '%': one memchr, and the query is looked for only when it has.
  if (refused == 0 || path_and_query.empty() ||
      std::memchr(path_and_query.data(), '%', path_and_query.size()) == nullptr) return nullptr;
  const std::string_view path = path_and_query.substr(0, path_and_query.find('?'));
  for (const char* at = path.data(), *end = path.data() + path.size();
       (at = static_cast<const char*>(std::memchr(at, '%', static_cast<size_t>(end - at)))) != nullptr; ++at) {
    if (end - at < 3) break;  // a bad '%' is sanitizing's to refuse
    const int hi = hex_value(at[1]);
    const int lo = hi >= 0 ? hex_value(at[2]) : -1;
    if (lo < 0) continue;
    const EncodedName name = encoded_character(hi, lo);
    if (name.bit & refused) return name.error;
  }
  return nullptr;
}

const char* unsafe_rewritten_path(std::string_view path_and_query, uint8_t refused) {
  const std::string_view path = path_and_query.substr(0, path_and_query.find('?'));
  if (path.find('\\') != std::string_view::npos) return "backslash in rewritten path";
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '/') continue;
    const size_t end = path.find('/', i + 1);
    if (names_encoded_dot_segment(path.substr(i + 1, end == std::string_view::npos ? end : end - i - 1)))
      return "dot segment in rewritten path";
  }
  return refused_encoding(path, refused);
}

PathSanitize sanitize_path(std::string_view path_and_query, std::string& out, const char** error) {
  const size_t q = path_and_query.find('?');
  const std::string_view path = path_and_query.substr(0, q);
  if (path.empty() || path[0] != '/' || already_sanitized(path)) return PathSanitize::kUnchanged;

  // One pass over the segments: each is decoded onto the end of `out`, then kept, dropped (empty
  // or "."), or dropped with the one before it (".."). A last segment that is empty, "." or ".."
  // leaves a trailing '/' ("/a/b/.." -> "/a/").
  out.clear();
  out.reserve(path_and_query.size());
  size_t i = 1;  // past the leading '/'
  bool trailing_slash = false;
  while (true) {
    const size_t end = path.find('/', i);
    const bool last = end == std::string_view::npos;
    const size_t mark = out.size();
    out.push_back('/');
    if (!append_decoded(out, path.substr(i, last ? std::string_view::npos : end - i), error))
      return PathSanitize::kInvalid;
    const std::string_view segment = std::string_view(out).substr(mark + 1);
    if (dot_segment_with_params(segment)) {
      *error = "dot segment with parameters in path";
      return PathSanitize::kInvalid;
    }
    if (!last && segment.find(';') != std::string_view::npos) {
      *error = "path parameters before the last segment";
      return PathSanitize::kInvalid;
    }
    if (segment == "..") {
      out.resize(mark);
      const size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      trailing_slash = last;
    } else if (segment.empty() || segment == ".") {
      out.resize(mark);
      trailing_slash = last;
    } else {
      trailing_slash = false;
    }
    if (last) break;
    i = end + 1;
  }
  if (out.empty() || trailing_slash) out.push_back('/');
  out.append(path_and_query.substr(path.size()));  // the query, as it came
  return out == path_and_query ? PathSanitize::kUnchanged : PathSanitize::kChanged;
}

}  // namespace berth::http
