// The request path as Berth routes it and forwards it: sanitized, so that a path that means the
// same resource to an instance also means the same route to Berth. Without it, a route with
// access control on /admin is passed by "/%61dmin", "//admin" or "/public/../admin", which match
// another route (byte for byte) and which many servers read as /admin.
//
// Sanitizing (RFC 3986 sections 2.3, 6.2.2 and 5.2.4), on the path only (the query is kept as
// it came):
// - a percent-encoded unreserved character (ALPHA, DIGIT, "-", ".", "_", "~") is decoded; any
//   other percent-encoding is kept, its hex digits upper-cased ("%2f" -> "%2F": an encoded slash
//   stays encoded, it is not a separator);
// - "." and ".." segments are removed (also when they were written "%2e"), ".." never above the
//   root;
// - empty segments ("//") are merged into one "/".
// Refused: a "%" not followed by two hex digits, a "." or ".." segment carrying parameters
// ("..;x": servers that drop path parameters read it as ".."), parameters on any segment but the
// last ("/admin;x/secret": servers that drop them read /admin/secret, which routes would not
// see), and a backslash (which RFC 3986 does not allow in a path, browsers never send, and some
// servers read as "/": "/public\..\admin").
// Pure; a path already in sanitized form (the common case) is only scanned, and a changed one is
// built in one pass straight into `out` (no allocation once `out` has grown to fit).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::http {

// Percent-encoded characters a path may be refused for (config `encoded_characters`). Sanitizing
// keeps each of them encoded, but each decodes to a byte that some server reads as syntax, so an
// instance that decodes first may not see the path Berth routed: "/public%2F..%2Fadmin" is one
// segment to Berth and "/admin" to a server that decodes %2F before resolving dot segments.
// Checked once the route is known (a route may allow or refuse more than the top level).
// The bits are in config::EncodedCharacter's order.
enum EncodedCharacter : uint8_t {
  kEncodedSlash = 1u << 0,         // %2F '/': a separator
  kEncodedBackslash = 1u << 1,     // %5C '\': a separator to some servers
  kEncodedNull = 1u << 2,          // %00 NUL: ends the path where paths are C strings
  kEncodedSemicolon = 1u << 3,     // %3B ';': starts path parameters
  kEncodedPercent = 1u << 4,       // %25 '%': decoded twice, "%252e" becomes "."
  kEncodedQuestionMark = 1u << 5,  // %3F '?': starts the query
  kEncodedHash = 1u << 6,          // %23 '#': starts the fragment
};
constexpr uint8_t kAllEncodedCharacters = 0x7F;

// Why the path of `path_and_query` (the query is not looked at) is refused: the first
// percent-encoding (either case of hex) of a character in `refused`, as an error text, or
// nullptr when there is none. Only scans for '%' when the path has none.
const char* refused_encoding(std::string_view path_and_query, uint8_t refused);

// Why a path Berth made itself (a route's rewrite of the sanitized path) may not be sent, as an
// error text, or nullptr: a "." or ".." segment (also with a dot written "%2e", or with
// parameters), a backslash, or a percent-encoding in `refused`, the same as a client's path is
// refused for. Such a path is refused, not resolved: a rewrite that turns "/docs-../admin" into
// "/docs/../admin" would resolve to /admin, which the route that matched does not guard.
const char* unsafe_rewritten_path(std::string_view path_and_query, uint8_t refused);

// The part of a request target (origin-form) that routes match: the path up to its first ';' or
// '?'. Path parameters are left out ("/app/page;jsessionid=1" is routed as /app/page), as the
// servers that drop them read the path; what is left is a prefix of the target, so a route
// prefix it starts with also starts the path sent on. Sanitizing leaves parameters on the last
// segment only; unsanitized ("sanitize_path: false"), "/a;x/b" is routed as /a.
inline std::string_view routed_path(std::string_view target) noexcept {
  size_t i = 0;
  while (i < target.size() && target[i] != '?' && target[i] != ';') ++i;
  return target.substr(0, i);
}

enum class PathSanitize : unsigned char {
  kUnchanged,  // the path was already in sanitized form
  kChanged,    // `out` holds the sanitized path, with the query (from '?' on) as it came
  kInvalid,    // refused; `error` says why
};

// path_and_query: an origin-form target ('/' first). `out` holds the result on kChanged; after
// the other outcomes its content is unspecified. path_and_query must not point into `out`.
PathSanitize sanitize_path(std::string_view path_and_query, std::string& out, const char** error);

}  // namespace berth::http
