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
// ("..;x": servers that drop path parameters read it as ".."), and a backslash (which RFC 3986
// does not allow in a path, browsers never send, and some servers read as "/":
// "/public\..\admin").
// Pure; a path already in sanitized form (the common case) is only scanned, and a changed one is
// built in one pass straight into `out` (no allocation once `out` has grown to fit).
#pragma once

#include <string>
#include <string_view>

namespace berth::http {

enum class PathSanitize : unsigned char {
  kUnchanged,  // the path was already in sanitized form
  kChanged,    // `out` holds the sanitized path, with the query (from '?' on) as it came
  kInvalid,    // refused; `error` says why
};

// path_and_query: an origin-form target ('/' first). `out` holds the result on kChanged; after
// the other outcomes its content is unspecified. path_and_query must not point into `out`.
PathSanitize sanitize_path(std::string_view path_and_query, std::string& out, const char** error);

}  // namespace berth::http
