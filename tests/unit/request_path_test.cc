// Request path sanitizing: what routes and what goes to the instance.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "proxy/http/http_head.h"
#include "proxy/http/request_path.h"

using namespace berth::http;

namespace {

// The sanitized path (with its query), or "!" + the error.
std::string sanitized(std::string_view in) {
  std::string out = "/an/earlier/request?left=here";  // a reused buffer: overwritten, not appended to
  const char* error = "";
  switch (sanitize_path(in, out, &error)) {
    case PathSanitize::kUnchanged:
      return std::string(in);
    case PathSanitize::kChanged:
      CHECK(out != in);
      return out;
    case PathSanitize::kInvalid:
      return std::string("!") + error;
  }
  return "?";
}

}  // namespace

TEST_CASE("request path: sanitized forms", "[request_path]") {
  const std::vector<std::pair<std::string, std::string>> cases = {
      // already sanitized: kept as they are
      {"/", "/"},
      {"/a/b/c", "/a/b/c"},
      {"/a/b/", "/a/b/"},
      {"/a.b/..c/c..", "/a.b/..c/c.."},  // dots inside a segment are not dot segments
      {"/a/b;c=d", "/a/b;c=d"},  // parameters on the last segment are kept
      {"/app/page;jsessionid=1?x=/;/", "/app/page;jsessionid=1?x=/;/"},
      {"/api?x=/../y&z=%2e", "/api?x=/../y&z=%2e"},  // the query is never touched
      // unreserved characters decoded, other encodings upper-cased
      {"/%61dmin", "/admin"},
      {"/%41%5a%30%2D%2e%5F%7e", "/AZ0-._~"},
      {"/a%2fb", "/a%2Fb"},  // an encoded slash stays encoded: not a separator
      {"/a%2Fb/../c", "/c"},
      {"/%c3%a9t%C3%A9", "/%C3%A9t%C3%A9"},
      {"/%25", "/%25"},
      {"/%2561", "/%2561"},  // decoded once only: "%25" is '%', kept encoded
      // dot segments
      {"/./admin", "/admin"},
      {"/public/../admin", "/admin"},
      {"/a/b/../../../../admin", "/admin"},  // never above the root
      {"/..", "/"},
      {"/a/..", "/"},
      {"/a/b/..", "/a/"},
      {"/a/.", "/a/"},
      {"/a/./b/./", "/a/b/"},
      {"/%2e%2e/admin", "/admin"},
      {"/%2E/admin", "/admin"},
      {"/.%2e/admin", "/admin"},
      // empty segments
      {"//admin", "/admin"},
      {"/a//b///c", "/a/b/c"},
      {"/a//", "/a/"},
      {"///", "/"},
      {"//../admin?q=1", "/admin?q=1"},
      // refused
      {"/%zz", "!invalid percent-encoding in path"},
      {"/%2", "!invalid percent-encoding in path"},
      {"/a%", "!invalid percent-encoding in path"},
      {"/%g0", "!invalid percent-encoding in path"},
      {"/public/..;/admin", "!dot segment with parameters in path"},
      {"/public/.;x/admin", "!dot segment with parameters in path"},
      {"/public/%2e%2e;/admin", "!dot segment with parameters in path"},
      {"/a;b=c/d", "!path parameters before the last segment"},
      {"/admin;x/secret", "!path parameters before the last segment"},  // /admin/secret to Tomcat
      {"/a;x/", "!path parameters before the last segment"},
      {"//a;x/%62", "!path parameters before the last segment"},  // found on the slow path too
      {"/public\\..\\admin", "!backslash in path"},
      {"/a\\b", "!backslash in path"},
      {"/a%5Cb", "/a%5Cb"},  // an encoded backslash stays encoded, as an encoded slash does
  };
  for (const auto& [in, want] : cases) {
    INFO(in);
    CHECK(sanitized(in) == want);
  }
}

TEST_CASE("request path: routes see the path without its query and parameters", "[request_path]") {
  CHECK(routed_path("/") == "/");
  CHECK(routed_path("/a/b?x=1;y") == "/a/b");
  CHECK(routed_path("/app/page;jsessionid=1") == "/app/page");
  CHECK(routed_path("/a/b;c;d?q") == "/a/b");
  CHECK(routed_path("/a;x/b") == "/a");  // unsanitized: up to the first ';'
  CHECK(routed_path("") == "");
}

TEST_CASE("request path: the head parser sanitizes a client's path only when asked", "[request_path][http_head]") {
  const std::string raw = "GET //x/../admin?a=%2e HTTP/1.1\r\nHost: a.test\r\n\r\n";
  Limits limits;
  RequestHead plain;
  REQUIRE(parse_request_head(raw, limits, plain).ok());
  CHECK(plain.path == "//x/../admin?a=%2e");
  limits.sanitize_path = true;
  RequestHead req;
  REQUIRE(parse_request_head(raw, limits, req).ok());
  CHECK(req.path == "/admin?a=%2e");
  CHECK(req.target == "//x/../admin?a=%2e");  // as received

  // absolute-form: the path part is sanitized too; "*" is left alone
  RequestHead abs;
  REQUIRE(parse_request_head("GET http://a.test/p/%2e%2e/q HTTP/1.1\r\nHost: a.test\r\n\r\n", limits, abs).ok());
  CHECK(abs.path == "/q");
  RequestHead star;
  REQUIRE(parse_request_head("OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n", limits, star).ok());
  CHECK(star.path == "*");

  // a refused path is a 400
  RequestHead bad;
  const Outcome o = parse_request_head("GET /a%zz HTTP/1.1\r\nHost: a.test\r\n\r\n", limits, bad);
  CHECK(o.error == HeadError::kBadRequest);
  CHECK(std::string(o.detail) == "invalid percent-encoding in path");

  // the same head object parses again without keeping the last path
  REQUIRE(parse_request_head("GET /plain HTTP/1.1\r\nHost: a.test\r\n\r\n", limits, req).ok());
  CHECK(req.path == "/plain");
}

TEST_CASE("request path: encoded characters refused one by one, in the path only", "[request_path]") {
  const std::vector<std::pair<std::string, uint8_t>> each = {
      {"%2F", kEncodedSlash},     {"%5c", kEncodedBackslash},     {"%00", kEncodedNull}, {"%3B", kEncodedSemicolon},
      {"%25", kEncodedPercent},   {"%3f", kEncodedQuestionMark},  {"%23", kEncodedHash},
  };
  for (const auto& [encoding, bit] : each) {
    INFO(encoding);
    const std::string path = "/a/b" + encoding + "c";
    const char* why = refused_encoding(path, kAllEncodedCharacters);
    REQUIRE(why != nullptr);
    CHECK(std::string(why).find(" in path") != std::string::npos);
    CHECK(refused_encoding(path, bit) == why);  // this one alone is enough
    CHECK(refused_encoding(path, kAllEncodedCharacters & ~bit) == nullptr);  // and only it
    CHECK(refused_encoding("/a?q=" + encoding, kAllEncodedCharacters) == nullptr);  // the query is not looked at
  }
  CHECK(std::string(refused_encoding("/x%2fy", kEncodedSlash)) == "encoded slash (%2F) in path");
  CHECK(std::string(refused_encoding("/%25252e", kAllEncodedCharacters)) == "encoded percent sign (%25) in path");
  // The first refused one is named; other encodings and bad '%' (sanitizing's to refuse) pass.
  CHECK(std::string(refused_encoding("/%41%3B%2F", kAllEncodedCharacters)) == "encoded semicolon (%3B) in path");
  for (const char* fine : {"/", "/plain/path", "/%41%7E%C3%A9", "/a%", "/a%2", "/a%zz", "/%2G", "/a;b#c"})
    CHECK(refused_encoding(fine, kAllEncodedCharacters) == nullptr);
  CHECK(refused_encoding("/a%2Fb", 0) == nullptr);
}

TEST_CASE("request path: the head parser leaves encoded separators to the route", "[request_path][http_head]") {
  Limits limits;
  limits.sanitize_path = true;
  RequestHead req;
  // Kept encoded (upper-case hex): whether it is refused depends on the route (client.cc).
  REQUIRE(parse_request_head("GET /public%2f..%2Fadmin HTTP/1.1\r\nHost: a.test\r\n\r\n", limits, req).ok());
  CHECK(req.path == "/public%2F..%2Fadmin");
  CHECK(std::string(refused_encoding(req.path, kEncodedSlash)) == "encoded slash (%2F) in path");
  // absolute-form: its path is what is looked at, not its authority or query
  REQUIRE(parse_request_head("GET http://a.test/x?y=%2F HTTP/1.1\r\nHost: a.test\r\n\r\n", limits, req).ok());
  CHECK(refused_encoding(req.path, kAllEncodedCharacters) == nullptr);
}

TEST_CASE("request path: a rewritten path with a dot segment is refused, not resolved", "[request_path][rewrite]") {
  for (const char* bad : {"/docs/../admin/secret", "/docs/./x", "/a/..", "/..", "/.", "/a/%2e%2e/b", "/a/.%2E/b",
                          "/a/%2E/b", "/a/..;x/b", "/a/%2e%2e;x"}) {
    INFO(bad);
    REQUIRE(unsafe_rewritten_path(bad, 0) != nullptr);
    CHECK(std::string(unsafe_rewritten_path(bad, 0)) == "dot segment in rewritten path");
  }
  CHECK(std::string(unsafe_rewritten_path("/a\\..\\admin", 0)) == "backslash in rewritten path");
  // the same encodings a client's path is refused for, and only those
  CHECK(std::string(unsafe_rewritten_path("/a%2F..%2Fadmin", kEncodedSlash)) == "encoded slash (%2F) in path");
  CHECK(unsafe_rewritten_path("/a%2Fb", kAllEncodedCharacters & ~kEncodedSlash) == nullptr);
  // dots inside a segment, in the query, and other encodings are fine
  for (const char* fine : {"/", "/docs/admin", "/a.b/..c/c../...", "/a/%2e%2e%2e", "/a/%2ex", "/a/%2", "/x?p=/../a",
                           "/%41"})
    CHECK(unsafe_rewritten_path(fine, kAllEncodedCharacters) == nullptr);
}
