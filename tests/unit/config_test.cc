// Config loading: defaults, every option, every kind of error with its exact position, and the
// value parsers shared with discovery.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "config/config.h"
#include "tests/unit/config_helpers.h"

using namespace berth::config;
using berth::config::testing::all_errors;
using berth::config::testing::check_refused_at;
using berth::config::testing::PlacedError;
using berth::config::testing::load;
using namespace std::chrono_literals;

namespace {

const char* const kListener = "listeners: [\"127.0.0.1:8080\"]\n";

}  // namespace

// ---------------------------------------------------------------------------------------
// Valid configurations

TEST_CASE("config: a minimal file gets every default", "[config]") {
  LoadResult result = load(kListener);
  INFO(all_errors(result));
  REQUIRE(result.ok());
  const Config& config = *result.config;

  CHECK(config.source == "t.yaml");
  REQUIRE(config.listeners.size() == 1);
  CHECK(config.listeners[0].address.to_string() == "127.0.0.1:8080");
  CHECK(config.listeners[0].mark.line == 1);
  CHECK(config.workers == 0);
  CHECK(config.sanitize_path);
  CHECK(config.admin.enabled);
  CHECK(config.admin.address.to_string() == "127.0.0.1:9901");
  CHECK(config.routes.empty());
  CHECK(config.services.empty());

  const Timeouts& t = config.timeouts;
  CHECK(t.request_header == 10s);
  CHECK(t.keepalive_idle == 60s);
  CHECK(t.request_body == 300s);
  CHECK(t.request_body_idle == 60s);
  CHECK(t.upstream_connect == 5s);
  CHECK(t.upstream_response == 60s);
  CHECK(t.upstream_idle == 60s);
  CHECK(t.tunnel_idle == 1h);
  CHECK(t.drain == 30s);

  const Limits& l = config.limits;
  CHECK(l.max_header_bytes == 32 * 1024);
  CHECK(l.max_headers == 100);
  CHECK(l.max_request_line == 8 * 1024);
  CHECK(l.max_connections_per_worker == 16384);
  CHECK(l.max_body_bytes == 0);
  CHECK(l.upstream_max_idle_per_endpoint == 1024);
  CHECK(l.write_buffer_bytes == 256 * 1024);
}

TEST_CASE("config: every option is read", "[config]") {
  const std::string yaml =
      "listeners:\n"                                   // 1
      "  - 127.0.0.1:8080\n"                           // 2
      "  - {address: \"[::1]:8443\"}\n"                // 3
      "  - :0\n"                                       // 4
      "workers: 4\n"                                   // 5
      "admin:\n"                                       // 6
      "  address: 127.0.0.1:0\n"                       // 7
      "  enabled: false\n"                             // 8
      "timeouts:\n"                                    // 9
      "  request_header: 5s\n"                         // 10
      "  keepalive_idle: 2m\n"                         // 11
      "  request_body: 1h\n"                           // 12
      "  request_body_idle: 500ms\n"                   // 13
      "  upstream_connect: 3\n"                        // 14
      "  upstream_response: 90s\n"                     // 15
      "  upstream_idle: 10s\n"                         // 16
      "  tunnel_idle: 2h\n"                            // 17
      "  drain: 15s\n"                                 // 18
      "limits:\n"                                      // 19
      "  max_header_bytes: 64KiB\n"                    // 20
      "  max_headers: 50\n"                            // 21
      "  max_request_line: 4096\n"                     // 22
      "  max_connections_per_worker: 1000\n"           // 23
      "  max_body_bytes: 10MiB\n"                      // 24
      "  upstream_max_idle_per_endpoint: 0\n"          // 25
      "  write_buffer_bytes: 1MiB\n"                   // 26
      "routes:\n"                                      // 27
      "  - name: api\n"                                // 28
      "    host: [API.example.com, \"*.example.com.\"]\n"  // 29
      "    path: /api\n"                               // 30
      "    priority: -3\n"                             // 31
      "    service: web\n"                             // 32
      "    max_body_bytes: 1KB\n"                      // 33
      "  - service: empty\n"                           // 34
      "services:\n"                                    // 35
      "  web:\n"                                       // 36
      "    endpoints:\n"                               // 37
      "      - 127.0.0.1:9000\n"                       // 38
      "      - {address: \"[::1]:9001\", weight: 7}\n"  // 39
      "  empty:\n"                                     // 40
      "    endpoints: []\n";                           // 41
  LoadResult result = load(yaml);
  INFO(all_errors(result));
  REQUIRE(result.ok());
  const Config& c = *result.config;

  REQUIRE(c.listeners.size() == 3);
  CHECK(c.listeners[0].address.to_string() == "127.0.0.1:8080");
  CHECK(c.listeners[1].address.to_string() == "[::1]:8443");
  CHECK(c.listeners[1].address.ipv6);
  CHECK(c.listeners[1].mark.line == 3);
  CHECK(c.listeners[2].address.to_string() == "0.0.0.0:0");
  CHECK(c.workers == 4);
  CHECK_FALSE(c.admin.enabled);
  CHECK(c.admin.address.to_string() == "127.0.0.1:0");

  CHECK(c.timeouts.request_header == 5s);
  CHECK(c.timeouts.keepalive_idle == 2min);
  CHECK(c.timeouts.request_body == 1h);
  CHECK(c.timeouts.request_body_idle == 500ms);
  CHECK(c.timeouts.upstream_connect == 3s);
  CHECK(c.timeouts.upstream_response == 90s);
  CHECK(c.timeouts.upstream_idle == 10s);
  CHECK(c.timeouts.tunnel_idle == 2h);
  CHECK(c.timeouts.drain == 15s);

  CHECK(c.limits.max_header_bytes == 65536);
  CHECK(c.limits.max_headers == 50);
  CHECK(c.limits.max_request_line == 4096);
  CHECK(c.limits.max_connections_per_worker == 1000);
  CHECK(c.limits.max_body_bytes == 10 * 1024 * 1024);
  CHECK(c.limits.upstream_max_idle_per_endpoint == 0);
  CHECK(c.limits.write_buffer_bytes == 1024 * 1024);

  REQUIRE(c.routes.size() == 2);
  const Route& api = c.routes[0];
  CHECK(api.name == "api");
  CHECK(api.hosts == std::vector<std::string>{"api.example.com", "*.example.com"});
  CHECK(api.path_prefix == "/api");
  CHECK(api.priority == -3);
  CHECK(api.service == "web");
  CHECK(api.max_body_bytes == 1000);
  CHECK(api.mark.line == 28);
  CHECK(api.mark.column == 5);
  const Route& fallback = c.routes[1];
  CHECK(fallback.name == "route-1");
  CHECK(fallback.hosts.empty());
  CHECK(fallback.path_prefix == "/");
  CHECK_FALSE(fallback.priority.has_value());
  CHECK_FALSE(fallback.max_body_bytes.has_value());

  REQUIRE(c.services.size() == 2);
  CHECK(c.services[0].name == "web");
  CHECK(c.services[0].mark.line == 36);
  REQUIRE(c.services[0].endpoints.size() == 2);
  CHECK(c.services[0].endpoints[0].address.to_string() == "127.0.0.1:9000");
  CHECK(c.services[0].endpoints[0].weight == 1);
  CHECK(c.services[0].endpoints[1].address.to_string() == "[::1]:9001");
  CHECK(c.services[0].endpoints[1].weight == 7);
  CHECK(c.services[0].endpoints[1].mark.line == 39);
  CHECK(c.services[1].name == "empty");
  CHECK(c.services[1].endpoints.empty());
}

TEST_CASE("config: sanitize_path turns path sanitizing off, and takes a bool only", "[config]") {
  LoadResult off = load(std::string(kListener) + "sanitize_path: false\n");
  INFO(all_errors(off));
  REQUIRE(off.ok());
  CHECK_FALSE(off.config->sanitize_path);
  LoadResult bad = load(std::string(kListener) + "sanitize_path: sometimes\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.errors.at(0).line == 2);
}

TEST_CASE("config: encoded_characters allows percent-encodings one by one; none by default", "[config]") {
  auto bit = [](EncodedCharacter c) { return static_cast<uint8_t>(1u << static_cast<unsigned>(c)); };
  LoadResult none = load(std::string(kListener) + "routes: [{service: s}]\nservices: {s: {endpoints: []}}\n");
  REQUIRE(none.ok());
  CHECK(none.config->encoded_characters.allowed == 0);
  CHECK(none.config->routes.at(0).encoded_characters.given == 0);

  LoadResult some = load(std::string(kListener) +
                         "encoded_characters:\n  allow_encoded_slash: true\n  allow_encoded_percent: true\n"
                         "  allow_encoded_hash: false\n"
                         "routes:\n"
                         "  - {path: /api, service: s, encoded_characters: {allow_encoded_semicolon: true, "
                         "allow_encoded_slash: false}}\n"
                         "services: {s: {endpoints: []}}\n");
  INFO(all_errors(some));
  REQUIRE(some.ok());
  const EncodedCharacters& e = some.config->encoded_characters;
  CHECK(e.allows(EncodedCharacter::kSlash));
  CHECK(e.allows(EncodedCharacter::kPercent));
  CHECK_FALSE(e.allows(EncodedCharacter::kHash));
  CHECK_FALSE(e.allows(EncodedCharacter::kBackslash));
  CHECK(e.given == (bit(EncodedCharacter::kSlash) | bit(EncodedCharacter::kPercent) | bit(EncodedCharacter::kHash)));
  const EncodedCharacters& r = some.config->routes.at(0).encoded_characters;
  CHECK(r.given == (bit(EncodedCharacter::kSemicolon) | bit(EncodedCharacter::kSlash)));
  CHECK(r.allowed == bit(EncodedCharacter::kSemicolon));

  LoadResult typo = load(std::string(kListener) + "encoded_characters:\n  allow_encoded_slashes: true\n");
  REQUIRE_FALSE(typo.ok());
  CHECK(typo.errors.at(0).line == 3);
  CHECK(typo.errors.at(0).message.find("allow_encoded_slash") != std::string::npos);  // the key meant
  LoadResult not_bool = load(std::string(kListener) + "encoded_characters: {allow_encoded_null_character: maybe}\n");
  REQUIRE_FALSE(not_bool.ok());
  CHECK(not_bool.errors.at(0).line == 2);
  LoadResult not_map = load(std::string(kListener) + "encoded_characters: [slash]\n");
  REQUIRE_FALSE(not_map.ok());
  CHECK(not_map.errors.at(0).message.find("allow_encoded_") != std::string::npos);
  LoadResult route_typo = load(std::string(kListener) +
                               "routes:\n  - service: s\n    encoded_characters: {allow_slash: true}\n"
                               "services: {s: {endpoints: []}}\n");
  REQUIRE_FALSE(route_typo.ok());
  CHECK(route_typo.errors.at(0).line == 4);

  CHECK(encoded_character_named("allow_encoded_question_mark") == EncodedCharacter::kQuestionMark);
  CHECK_FALSE(encoded_character_named("allowencodedquestionmark"));
  CHECK(encoded_character_named_without_underscores("allowencodedquestionmark") == EncodedCharacter::kQuestionMark);
  CHECK(encoded_character_named_without_underscores("allowencodednullcharacter") == EncodedCharacter::kNullCharacter);
  CHECK_FALSE(encoded_character_named_without_underscores("allowencodedslashes"));
  CHECK_FALSE(encoded_character_named_without_underscores("allowencoded"));
  CHECK_FALSE(encoded_character_named_without_underscores(""));
}

TEST_CASE("config: empty sections mean defaults", "[config]") {
  LoadResult result = load(std::string(kListener) + "admin:\ntimeouts:\nlimits:\nroutes:\nservices:\n");
  INFO(all_errors(result));
  REQUIRE(result.ok());
  CHECK(result.config->admin.enabled);
  CHECK(result.config->timeouts.drain == 30s);
  CHECK(result.config->routes.empty());
}

TEST_CASE("config: the shipped example loads", "[config]") {
  LoadResult result = load_file(BERTH_SOURCE_DIR "/config/berth.example.yaml");
  INFO(all_errors(result));
  REQUIRE(result.ok());
  const Config& c = *result.config;
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].address.to_string() == "127.0.0.1:8080");
  CHECK(c.admin.enabled);
  CHECK(c.admin.address.to_string() == "127.0.0.1:9901");
  REQUIRE(c.routes.size() == 2);
  CHECK(c.routes[0].hosts == std::vector<std::string>{"demo.localhost"});
  CHECK(c.routes[0].service == "demo");
  CHECK(c.routes[1].hosts.empty());
  CHECK(c.routes[1].service == "demo");
  REQUIRE(c.services.size() == 1);
  CHECK(c.services[0].name == "demo");
  REQUIRE(c.services[0].endpoints.size() == 1);
  CHECK(c.services[0].endpoints[0].address.to_string() == "127.0.0.1:8081");
  // The commented-out values in the example are the defaults.
  CHECK(c.workers == 0);
  CHECK(c.timeouts.request_body == 5min);
  CHECK(c.limits.write_buffer_bytes == 256 * 1024);
}

// ---------------------------------------------------------------------------------------
// Errors, each with its exact place

namespace {

struct ErrorCase {
  std::string what;
  std::string yaml;
  int line;
  int column;
  std::string message;
};

const std::string kWebService = "services: {web: {endpoints: [\"127.0.0.1:9000\"]}}\n";

const std::vector<ErrorCase> kErrorCases = {
    {"unknown top-level key", std::string(kListener) + "worker: 4\n", 2, 1,
     "unknown key 'worker' at the top level (expected one of: listeners, workers, admin, timeouts, "
     "limits, routes, services, docker, access_log, registry, trusted_proxies, acme, sanitize_path, encoded_characters)"},
    {"unknown key in a route",
     std::string(kListener) + kWebService +
         "routes:\n"
         "  - service: web\n"
         "  - service: web\n"
         "    path: /a\n"
         "    hots: a.com\n",
     7, 5,
     "unknown key 'hots' in routes[1] (expected one of: name, host, path, priority, service, "
     "max_body_bytes, access, headers, encoded_characters, https_redirect, hsts, acme, strip_prefix, add_prefix, rewrite, redirect, match, split, mirror)"},
    {"an address range with too many bits",
     std::string(kListener) + kWebService +
         "routes:\n"
         "  - service: web\n"
         "    access:\n"
         "      allow: [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n",
     6, 29,
     "routes[0].access.allow[1]: invalid address range '10.0.0.0/33' (expected a numeric IPv4 or IPv6 "
     "address, optionally with /prefix bits: 0-32 or 0-128; an IPv4-mapped range ::ffff:a.b.c.d needs /96 or more)"},
    {"a method that is not a token",
     std::string(kListener) + kWebService + "routes:\n  - service: web\n    access: {methods: [GET, \"GE T\"]}\n",
     5, 29, "routes[0].access.methods[1]: 'GE T' is not an HTTP method"},
    {"a header Berth manages",
     std::string(kListener) + kWebService +
         "routes:\n"
         "  - service: web\n"
         "    headers:\n"
         "      request:\n"
         "        set: {X-A: b, Content-Length: \"0\"}\n",
     7, 23,
     "routes[0].headers.request.set: 'Content-Length' is managed by Berth (framing, connection or "
     "forwarding) and cannot be edited"},
    {"a header value with a line break",
     std::string(kListener) + kWebService +
         "routes:\n"
         "  - service: web\n"
         "    headers: {response: {add: {X-A: \"a\\r\\nSet-Cookie: x=1\"}}}\n",
     5, 37, "routes[0].headers.response.add.X-A: a header value must not contain CR, LF or NUL"},
    {"an unknown header rule",
     std::string(kListener) + kWebService + "routes:\n  - service: web\n    headers: {request: {replace: {A: b}}}\n",
     5, 25, "unknown key 'replace' in routes[0].headers.request (expected one of: set, add, remove)"},
    {"unknown key in an endpoint",
     std::string(kListener) + "services:\n  web:\n    endpoints:\n      - {address: 127.0.0.1:1, wieght: 2}\n",
     5, 32, "unknown key 'wieght' in services.web.endpoints[0] (expected one of: address, weight)"},
    {"unknown key in timeouts", std::string(kListener) + "timeouts:\n  connect: 5s\n", 3, 3,
     "unknown key 'connect' in timeouts (expected one of: request_header, keepalive_idle, "
     "request_body, request_body_idle, upstream_connect, upstream_response, upstream_idle, "
     "tunnel_idle, drain)"},
    {"workers not a number", std::string(kListener) + "workers: four\n", 2, 10,
     "workers: expected an integer, got 'four'"},
    {"workers negative", std::string(kListener) + "workers: -1\n", 2, 10,
     "workers: -1 is out of range (0..1024)"},
    {"workers left empty", std::string(kListener) + "workers:\n", 2, 1,
     "workers: expected an integer, got nothing (null)"},
    {"listeners empty", "listeners: []\n", 1, 12,
     "listeners: at least one listener is required, e.g. listeners: [\"0.0.0.0:8080\"]"},
    {"listeners not a list", "listeners: 127.0.0.1:80\n", 1, 12,
     "listeners: expected a list of addresses such as \"0.0.0.0:8080\", got '127.0.0.1:80'"},
    {"listener with a host name", "listeners: [\"example.com:80\"]\n", 1, 13,
     "listeners[0]: invalid address 'example.com:80': 'example.com' is not a numeric IPv4 address "
     "(host names are not resolved; use e.g. 127.0.0.1)"},
    {"listener without a port", "listeners:\n  - 127.0.0.1\n", 2, 5,
     "listeners[0]: invalid address '127.0.0.1': missing ':port'"},
    {"listener port out of range", "listeners:\n  - 127.0.0.1:70000\n", 2, 5,
     "listeners[0]: invalid address '127.0.0.1:70000': port 70000 is out of range (1..65535)"},
    {"listener map without address", "listeners:\n  - {}\n", 2, 5,
     "listeners[0]: missing required key 'address'"},
    {"duplicate listener", "listeners:\n  - 127.0.0.1:8080\n  - {address: 127.0.0.1:8080}\n", 3, 5,
     "listeners: duplicate listener 127.0.0.1:8080 (already at line 2)"},
    {"admin on a listener's address", "listeners: [\"127.0.0.1:9901\"]\n", 0, 0,
     "admin.address: 127.0.0.1:9901 is also a listener (line 1); the admin server needs its own "
     "address"},
    {"admin address explicit and taken", std::string(kListener) + "admin:\n  address: 127.0.0.1:8080\n", 3,
     12,
     "admin.address: 127.0.0.1:8080 is also a listener (line 1); the admin server needs its own "
     "address"},
    {"admin on a wildcard over a listener's address",
     "listeners: [\"127.0.0.1:8080\"]\nadmin:\n  address: 0.0.0.0:8080\n", 3, 12,
     "admin.address: 0.0.0.0:8080 overlaps the listener 127.0.0.1:8080 (line 1) on the same port; the admin "
     "server needs its own port"},
    {"admin under a wildcard listener", "listeners: [\"[::]:8080\"]\nadmin:\n  address: 127.0.0.1:8080\n", 3, 12,
     "admin.address: 127.0.0.1:8080 overlaps the listener [::]:8080 (line 1) on the same port; the admin "
     "server needs its own port"},
    {"admin enabled not a bool", std::string(kListener) + "admin:\n  enabled: maybe\n", 3, 12,
     "admin.enabled: expected true or false, got 'maybe'"},
    {"admin not a map", std::string(kListener) + "admin: [1]\n", 2, 8,
     "admin: expected a map with 'address' and/or 'enabled', got a list"},
    {"duplicate key", std::string(kListener) + "timeouts:\n  drain: 10s\n  drain: 20s\n", 4, 3,
     "duplicate key 'drain' in timeouts (first at line 3)"},
    {"duplicate top-level key", std::string(kListener) + "workers: 1\nworkers: 2\n", 3, 1,
     "duplicate key 'workers' in the top-level map (first at line 2)"},
    {"bad duration", std::string(kListener) + "timeouts:\n  drain: 10x\n", 3, 10,
     "timeouts.drain: expected a duration such as 500ms, 10s, 5m, 1h or a whole number of seconds "
     "(at most 87600h), got '10x'"},
    {"duration over the limit", std::string(kListener) + "timeouts:\n  drain: 87601h\n", 3, 10,
     "timeouts.drain: expected a duration such as 500ms, 10s, 5m, 1h or a whole number of seconds "
     "(at most 87600h), got '87601h'"},
    {"zero duration", std::string(kListener) + "timeouts:\n  upstream_connect: 0ms\n", 3, 21,
     "timeouts.upstream_connect: must be greater than 0"},
    {"duration given as a list", std::string(kListener) + "timeouts:\n  drain: [1]\n", 3, 10,
     "timeouts.drain: expected a duration such as 500ms, 10s, 5m, 1h or a whole number of seconds "
     "(at most 87600h), got a list"},
    {"bad size", std::string(kListener) + "limits:\n  max_body_bytes: 12QB\n", 3, 19,
     "limits.max_body_bytes: expected a size such as 65536, 64KiB or 1MiB, got '12QB'"},
    {"header bytes too small", std::string(kListener) + "limits:\n  max_header_bytes: 512\n", 3, 21,
     "limits.max_header_bytes: must be between 1KiB and 1MiB, got 512"},
    {"header bytes too large", std::string(kListener) + "limits:\n  max_header_bytes: 2MiB\n", 3, 21,
     "limits.max_header_bytes: must be between 1KiB and 1MiB, got 2MiB"},
    {"max_headers zero", std::string(kListener) + "limits:\n  max_headers: 0\n", 3, 16,
     "limits.max_headers: 0 is out of range (1..1000)"},
    {"max_headers as a size", std::string(kListener) + "limits:\n  max_headers: 1KiB\n", 3, 16,
     "limits.max_headers: expected an integer, got '1KiB'"},
    {"write buffer too small", std::string(kListener) + "limits:\n  write_buffer_bytes: 8KiB\n", 3, 23,
     "limits.write_buffer_bytes: must be between 16KiB and 1GiB, got 8KiB"},
    {"request line longer than headers",
     std::string(kListener) + "limits:\n  max_header_bytes: 4KiB\n  max_request_line: 8KiB\n", 4, 21,
     "limits.max_request_line: 8192 is larger than limits.max_header_bytes (4096); the request line "
     "counts toward the header bytes"},
    {"default request line longer than headers",
     std::string(kListener) + "limits:\n  max_header_bytes: 2KiB\n", 3, 21,
     "limits.max_request_line: 8192 is larger than limits.max_header_bytes (2048); the request line "
     "counts toward the header bytes"},
    {"route names an unknown service",
     std::string(kListener) + "services:\n  web: {endpoints: []}\n  demo: {endpoints: []}\n" +
         "routes:\n  - service: web\n  - service: api\n    path: /api\n",
     7, 14, "routes[1].service: no service named 'api' (defined services: web, demo)"},
    {"route service with no services at all", std::string(kListener) + "routes:\n  - service: api\n", 3, 14,
     "routes[0].service: no service named 'api' (no services are defined)"},
    {"route without a service", std::string(kListener) + kWebService + "routes:\n  - path: /x\n", 4, 5,
     "routes[0]: missing required key 'service' (or 'split', or 'redirect')"},
    {"route not a map", std::string(kListener) + kWebService + "routes:\n  - web\n", 4, 5,
     "routes[0]: expected a route map with at least 'service', got 'web'"},
    {"routes not a list", std::string(kListener) + kWebService + "routes: {service: web}\n", 3, 9,
     "routes: expected a list of routes, got a map"},
    {"path without a leading slash",
     std::string(kListener) + kWebService + "routes:\n  - path: api\n    service: web\n", 4, 11,
     "routes[0].path: invalid path prefix 'api': must start with '/'"},
    {"path with a query", std::string(kListener) + kWebService + "routes:\n  - path: /a?b\n    service: web\n",
     4, 11,
     "routes[0].path: invalid path prefix '/a?b': must not contain '?' (routes match the path only, "
     "not the query)"},
    {"path with parameters", std::string(kListener) + kWebService + "routes:\n  - path: /a;b\n    service: web\n",
     4, 11, "routes[0].path: invalid path prefix '/a;b': must not contain ';' (routes match the path without its "
     "parameters)"},
    {"path no sanitized request starts with",
     std::string(kListener) + kWebService + "routes:\n  - path: /a%41\n    service: web\n", 4, 11,
     "routes[0].path: invalid path prefix '/a%41': never matches: '%41' is decoded in requests; write 'A' (request "
     "paths are sanitized before routing; see sanitize_path)"},
    {"wildcard in the middle",
     std::string(kListener) + kWebService + "routes:\n  - host: a.*.com\n    service: web\n", 4, 11,
     "routes[0].host: invalid host pattern 'a.*.com': '*' is only allowed as the whole first label, "
     "as in '*.example.com'"},
    {"host with a port", std::string(kListener) + kWebService + "routes:\n  - host: [ok.com, \"a.com:80\"]\n"
                                                                "    service: web\n",
     4, 20, "routes[0].host[1]: invalid host pattern 'a.com:80': host patterns must not include a port"},
    {"host with an empty label",
     std::string(kListener) + kWebService + "routes:\n  - {host: a..com, service: web}\n", 4, 12,
     "routes[0].host: invalid host pattern 'a..com': empty label (two dots in a row, or a leading dot)"},
    {"star alone as host", std::string(kListener) + kWebService + "routes:\n  - {host: \"*\", service: web}\n",
     4, 12, "routes[0].host: invalid host pattern '*': '*' alone is not a host pattern (omit 'host' to match any host)"},
    {"empty host list", std::string(kListener) + kWebService + "routes:\n  - {host: [], service: web}\n", 4,
     12,
     "routes[0].host: expected a host name or a non-empty list of host names, got a list (omit "
     "'host' to match any host)"},
    {"host listed twice in a route",
     std::string(kListener) + kWebService + "routes:\n  - {host: [a.com, A.COM.], service: web}\n", 4, 20,
     "routes[0].host[1]: host 'a.com' is listed twice in this route"},
    {"priority too large",
     std::string(kListener) + kWebService + "routes:\n  - {priority: 3000000000, service: web}\n", 4, 16,
     "routes[0].priority: 3000000000 is out of range (-2147483648..2147483647)"},
    {"route body limit not a size",
     std::string(kListener) + kWebService + "routes:\n  - {max_body_bytes: lots, service: web}\n", 4, 22,
     "routes[0].max_body_bytes: expected a size such as 65536, 64KiB or 1MiB, got 'lots'"},
    {"duplicate route: same host and path",
     std::string(kListener) + kWebService +  // lines 1-2
         "routes:\n"                         // 3
         "  - host: a.com\n"                 // 4
         "    path: /api\n"                  // 5
         "    service: web\n"                // 6
         "  - host: [b.com, A.com]\n"        // 7
         "    path: /api\n"                  // 8
         "    service: web\n",               // 9
     7, 19, "routes[1]: duplicate of routes[0] (line 4): both match host 'a.com' with path prefix '/api'"},
    {"duplicate route: two catch-alls",
     std::string(kListener) + kWebService + "routes:\n  - service: web\n  - service: web\n", 5, 5,
     "routes[1]: duplicate of routes[0] (line 4): both match any host with path prefix '/'"},
    {"duplicate route name",
     std::string(kListener) + kWebService +
         "routes:\n  - {name: api, path: /a, service: web}\n  - {name: api, path: /b, service: web}\n",
     5, 12, "routes[1].name: duplicate route name 'api' (also routes[0] at line 4)"},
    {"route named as another route is called for having no name",
     std::string(kListener) + kWebService +
         "routes:\n  - {name: route-1, host: a.test, service: web}\n  - {host: b.test, service: web}\n",
     4, 12, "routes[0].name: 'route-1' is the name routes[1] (line 5) gets for having none"},
    {"service without endpoints key", std::string(kListener) + "services:\n  web: {}\n", 3, 3,
     "services.web: missing required key 'endpoints' (use 'endpoints: []' for a service with no "
     "endpoints yet)"},
    {"service left empty", std::string(kListener) + "services:\n  web:\n", 3, 3,
     "services.web: expected a map with 'endpoints', got nothing (null)"},
    {"endpoints not a list", std::string(kListener) + "services:\n  web:\n    endpoints: 127.0.0.1:1\n", 4,
     16,
     "services.web.endpoints: expected a list of endpoints (\"ip:port\" or {address, weight}), got "
     "'127.0.0.1:1'"},
    {"duplicate service name",
     std::string(kListener) + "services:\n  web: {endpoints: []}\n  web: {endpoints: []}\n", 4, 3,
     "duplicate key 'web' in services (first at line 3)"},
    {"invalid service name", std::string(kListener) + "services:\n  \"my web\": {endpoints: []}\n", 3, 3,
     "services: invalid service name 'my web' (letters, digits, '-', '_' and '.' only)"},
    {"endpoint weight zero",
     std::string(kListener) + "services:\n  web:\n    endpoints:\n      - {address: 127.0.0.1:1, weight: 0}\n",
     5, 40, "services.web.endpoints[0].weight: 0 is out of range (1..1000)"},
    {"endpoint weight too large",
     std::string(kListener) + "services:\n  web:\n    endpoints:\n      - {address: 127.0.0.1:1, weight: 1001}\n",
     5, 40, "services.web.endpoints[0].weight: 1001 is out of range (1..1000)"},
    {"endpoint on port 0", std::string(kListener) + "services:\n  web:\n    endpoints: [127.0.0.1:0]\n", 4, 17,
     "services.web.endpoints[0]: invalid address '127.0.0.1:0': port 0 is not allowed here"},
    {"endpoint without brackets around IPv6",
     std::string(kListener) + "services:\n  web:\n    endpoints: [\"::1:80\"]\n", 4, 17,
     "services.web.endpoints[0]: invalid address '::1:80': IPv6 addresses must be in brackets, as in "
     "[::1]:8080"},
    {"endpoint map without address",
     std::string(kListener) + "services:\n  web:\n    endpoints:\n      - weight: 2\n", 5, 9,
     "services.web.endpoints[0]: missing required key 'address'"},
    {"duplicate endpoint",
     std::string(kListener) + "services:\n  web:\n    endpoints:\n      - 127.0.0.1:1\n      - localhost:1\n",
     6, 9, "services.web.endpoints[1]: duplicate endpoint 127.0.0.1:1 (already at line 5)"},
    {"non-string key", std::string(kListener) + "[a, b]: 1\n", 2, 1,
     "top level: keys must be plain strings, got a list"},
    {"missing listeners", "workers: 2\n", 0, 0,
     "missing required key 'listeners' (at least one listener, e.g. listeners: [\"0.0.0.0:8080\"])"},
    {"empty file", "", 0, 0, "the file contains no settings (expected a map with at least 'listeners')"},
    {"only comments", "# nothing here\n\n", 0, 0,
     "the file contains no settings (expected a map with at least 'listeners')"},
    {"top level is a list", "- 127.0.0.1:8080\n", 1, 1,
     "expected a map of settings (listeners, routes, services, ...) at the top level, got a list"},
    {"top level is a scalar", "hello\n", 1, 1,
     "expected a map of settings (listeners, routes, services, ...) at the top level, got 'hello'"},
    {"two documents", std::string(kListener) + "---\n" + kListener, 3, 1,
     "only one YAML document is allowed; remove the second one (and its '---')"},
    {"YAML syntax error", "listeners: [\"127.0.0.1:8080\"\nworkers: 1\n", 2, 1,
     "invalid YAML: end of sequence flow not found"},
    {"YAML bad indentation", "listeners:\n  - 127.0.0.1:8080\n bad: 1\n", 3, 2,
     "invalid YAML: end of map not found"},
};

}  // namespace

TEST_CASE("config: each kind of error is reported at its exact place", "[config][errors]") {
  const ErrorCase& c = GENERATE(from_range(kErrorCases));
  LoadResult result = load(c.yaml);
  INFO("case: " << c.what << "\n" << c.yaml << "errors:\n" << all_errors(result));
  CHECK_FALSE(result.ok());
  CHECK_FALSE(result.config.has_value());
  REQUIRE(result.errors.size() == 1);
  const Error& error = result.errors[0];
  CHECK(error.file == "t.yaml");
  CHECK(error.message == c.message);
  CHECK(error.line == c.line);
  CHECK(error.column == c.column);
}

TEST_CASE("config: an empty endpoint list is allowed", "[config]") {
  LoadResult result = load(std::string(kListener) + "services:\n  web: {endpoints: []}\n" +
                           "routes:\n  - service: web\n");
  INFO(all_errors(result));
  REQUIRE(result.ok());
  CHECK(result.config->services[0].endpoints.empty());
}

TEST_CASE("config: the same path under different hosts is not a duplicate", "[config]") {
  LoadResult result = load(std::string(kListener) + kWebService +
                           "routes:\n"
                           "  - {host: a.com, service: web}\n"
                           "  - {host: \"*.a.com\", service: web}\n"
                           "  - {service: web}\n"
                           "  - {path: /api, service: web}\n");
  INFO(all_errors(result));
  CHECK(result.ok());
}

TEST_CASE("config: every error is collected, in file order", "[config][errors]") {
  const std::string yaml =
      "listeners: [\"nope\"]\n"           // 1
      "workers: many\n"                   // 2
      "timeouts:\n"                       // 3
      "  drain: soon\n"                   // 4
      "routes:\n"                         // 5
      "  - service: ghost\n"              // 6
      "    colour: blue\n"                // 7
      "services:\n"                       // 8
      "  web:\n"                          // 9
      "    endpoints: [\"1.2.3.4\"]\n";   // 10
  LoadResult result = load(yaml);
  REQUIRE_FALSE(result.ok());
  std::vector<std::string> lines;
  for (const Error& error : result.errors) lines.push_back(error.to_string());
  CHECK(lines == std::vector<std::string>{
                     "t.yaml:1:13: listeners[0]: invalid address 'nope': missing ':port'",
                     "t.yaml:2:10: workers: expected an integer, got 'many'",
                     "t.yaml:4:10: timeouts.drain: expected a duration such as 500ms, 10s, 5m, 1h or a "
                     "whole number of seconds (at most 87600h), got 'soon'",
                     "t.yaml:6:14: routes[0].service: no service named 'ghost' (defined services: web)",
                     "t.yaml:7:5: unknown key 'colour' in routes[0] (expected one of: name, host, path, "
                     "priority, service, max_body_bytes, access, headers, encoded_characters, https_redirect, hsts, acme, strip_prefix, "
                     "add_prefix, rewrite, redirect, match, split, mirror)",
                     "t.yaml:10:17: services.web.endpoints[0]: invalid address '1.2.3.4': missing ':port'",
                 });
}

TEST_CASE("config: a route prefix no sanitized request path starts with is refused; sanitize_path: false takes it",
          "[config][errors]") {
  // Each never matches a sanitized path: the route would be silently dead, its requests going
  // to another route (and its access rules).
  for (const char* path : {"/a%41", "/%7Ejohn", "/g/a%2fb", "/x//y", "/p/../q", "/r/./s", "/a%zz/b", "/a%2Eb", "/\xC3\xA9t\xC3\xA9"}) {
    INFO(path);
    CHECK(!unreachable_prefix_problem(path).empty());
    LoadResult result = load(std::string(kListener) + kWebService + "routes:\n  - {path: \"" + path + "\", service: web}\n");
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].line == 4);
    CHECK(result.errors[0].message.find("never matches") != std::string::npos);
    LoadResult raw = load(std::string(kListener) + kWebService + "sanitize_path: false\nroutes:\n  - {path: \"" + path +
                          "\", service: web}\n");
    CHECK(raw.errors.empty());
  }
  CHECK(unreachable_prefix_problem("/\xC3\xA9t\xC3\xA9").find("(%C3%A9)") != std::string::npos);
  // Byte prefixes a sanitized path can start with: a partial encoding or dot segment at the end,
  // upper-case encodings of reserved characters, dots inside a segment.
  for (const char* path : {"/", "/a%2", "/a%", "/a/.", "/a/..", "/.well-known/", "/g/a%2Fb", "/a..b/", "/%C3%A9t%C3%A9"}) {
    INFO(path);
    CHECK(unreachable_prefix_problem(path).empty());
  }
}

TEST_CASE("config: a route with its own errors is not also reported as a duplicate", "[config][errors]") {
  LoadResult result = load(std::string(kListener) + kWebService +
                           "routes:\n  - service: web\n  - {path: nope, service: web}\n");
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].message == "routes[1].path: invalid path prefix 'nope': must start with '/'");
}

TEST_CASE("config: load_file reports unreadable files", "[config][errors]") {
  LoadResult missing = load_file("/nonexistent/berth.yaml");
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].to_string() == "/nonexistent/berth.yaml: cannot read file: No such file or directory");

  LoadResult directory = load_file("/");
  REQUIRE(directory.errors.size() == 1);
  CHECK(directory.errors[0].to_string() == "/: cannot read file: Is a directory");
}

TEST_CASE("config: hostile input never throws", "[config][errors]") {
  const std::string input = GENERATE(as<std::string>{}, "{{{{", "\t\t", "listeners: *nope", "&a [*a]",
                                     std::string("\0\xff\xfe", 3), "? [a]\n: b\n", "listeners: !!binary zz",
                                     std::string(200, '[') + std::string(200, ']'), "'unterminated");
  LoadResult result;
  REQUIRE_NOTHROW(result = load(input));
  CHECK_FALSE(result.ok());
  CHECK_FALSE(result.errors.empty());
}

TEST_CASE("config: Error::to_string", "[config]") {
  CHECK(Error{"berth.yaml", 12, 14, "routes[1].service: no service named 'api'"}.to_string() ==
        "berth.yaml:12:14: routes[1].service: no service named 'api'");
  CHECK(Error{"berth.yaml", 0, 0, "cannot read file: Permission denied"}.to_string() ==
        "berth.yaml: cannot read file: Permission denied");
}

// ---------------------------------------------------------------------------------------
// Value parsers

TEST_CASE("config: parse_duration", "[config][values]") {
  struct Case {
    std::string text;
    std::optional<Millis> expected;
  };
  const Case c = GENERATE(values<Case>({
      {"10s", 10s},
      {"500ms", 500ms},
      {"5m", 5min},
      {"1h", 1h},
      {"30", 30s},
      {"0", 0ms},
      {"0s", 0ms},
      {"250us", std::nullopt},
      {"1.5s", std::nullopt},
      {"-1s", std::nullopt},
      {"+1s", std::nullopt},
      {" 10s", std::nullopt},
      {"10 s", std::nullopt},
      {"10S", std::nullopt},
      {"10sec", std::nullopt},
      {"ms", std::nullopt},
      {"", std::nullopt},
      {"99999999999999999999", std::nullopt},
      {"9999999999999999h", std::nullopt},
      {"87600h", 87600h},
      {"87601h", std::nullopt},
      {"315360000", 87600h},
      {"2562047788015h", std::nullopt},  // int64 milliseconds, but overflows nanoseconds
  }));
  INFO("'" << c.text << "'");
  CHECK(parse_duration(c.text) == c.expected);
}

TEST_CASE("config: parse_size", "[config][values]") {
  struct Case {
    std::string text;
    std::optional<uint64_t> expected;
  };
  const Case c = GENERATE(values<Case>({
      {"1024", 1024},
      {"0", 0},
      {"512B", 512},
      {"64KiB", 64 * 1024},
      {"10MiB", 10ull << 20},
      {"1GiB", 1ull << 30},
      {"2TiB", 2ull << 40},
      {"64KB", 64'000},
      {"64kB", 64'000},
      {"3MB", 3'000'000},
      {"1GB", 1'000'000'000},
      {"18446744073709551615", 18446744073709551615ull},
      {"18446744073709551616", std::nullopt},
      {"20000000TiB", std::nullopt},
      {"KiB", std::nullopt},
      {"1.5MiB", std::nullopt},
      {"-1", std::nullopt},
      {"64kib", std::nullopt},
      {"64 KiB", std::nullopt},
      {"64K", std::nullopt},
      {"", std::nullopt},
  }));
  INFO("'" << c.text << "'");
  CHECK(parse_size(c.text) == c.expected);
}

TEST_CASE("config: parse_socket_address accepts numeric addresses", "[config][values]") {
  struct Case {
    std::string text;
    bool allow_port_zero;
    std::string host;
    uint16_t port;
    bool ipv6;
    std::string canonical;
  };
  const Case c = GENERATE(values<Case>({
      {"127.0.0.1:8080", false, "127.0.0.1", 8080, false, "127.0.0.1:8080"},
      {"[::1]:8080", false, "::1", 8080, true, "[::1]:8080"},
      {"[0:0:0::1]:443", false, "::1", 443, true, "[::1]:443"},
      {"[FE80::A]:1", false, "fe80::a", 1, true, "[fe80::a]:1"},
      {"localhost:8080", false, "127.0.0.1", 8080, false, "127.0.0.1:8080"},
      {"LocalHost:1", false, "127.0.0.1", 1, false, "127.0.0.1:1"},
      {":8080", false, "0.0.0.0", 8080, false, "0.0.0.0:8080"},
      {"0.0.0.0:65535", false, "0.0.0.0", 65535, false, "0.0.0.0:65535"},
      {"127.0.0.1:0", true, "127.0.0.1", 0, false, "127.0.0.1:0"},
      {"[::]:0", true, "::", 0, true, "[::]:0"},
  }));
  INFO(c.text);
  auto address = parse_socket_address(c.text, c.allow_port_zero);
  REQUIRE(address.has_value());
  CHECK(address->host == c.host);
  CHECK(address->port == c.port);
  CHECK(address->ipv6 == c.ipv6);
  CHECK(address->to_string() == c.canonical);
}

TEST_CASE("config: parse_socket_address rejects everything else", "[config][values]") {
  const std::string text = GENERATE(as<std::string>{}, "", ":", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",
                                    "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80a",
                                    "127.0.0.1:0080080", "example.com:80", "::1:80", "[::1]", "[::1]80",
                                    "[::1:80", "[zz]:80", "[127.0.0.1]:80", "1.2.3:80", "256.1.1.1:80",
                                    " 127.0.0.1:80", "127.0.0.1:80 ");
  INFO("'" << text << "'");
  CHECK_FALSE(parse_socket_address(text, /*allow_port_zero=*/false).has_value());
}

TEST_CASE("config: port 0 only when allowed", "[config][values]") {
  CHECK(parse_socket_address("127.0.0.1:0", true).has_value());
  CHECK_FALSE(parse_socket_address("127.0.0.1:0", false).has_value());
}

TEST_CASE("config: normalize_host_pattern", "[config][values]") {
  struct Case {
    std::string text;
    std::optional<std::string> expected;
  };
  const Case c = GENERATE(values<Case>({
      {"example.com", "example.com"},
      {"Example.COM", "example.com"},
      {"example.com.", "example.com"},
      {"*.Example.com", "*.example.com"},
      {"*.com", "*.com"},
      {"localhost", "localhost"},
      {"my_host-1", "my_host-1"},
      {"127.0.0.1", "127.0.0.1"},
      {"[::1]", "[::1]"},
      {"[0:0::1]", "[::1]"},
      {"[FE80::A]", "[fe80::a]"},
      {std::string(63, 'a') + ".com", std::string(63, 'a') + ".com"},
      {"", std::nullopt},
      {".", std::nullopt},
      {"*", std::nullopt},
      {"*.", std::nullopt},
      {"a..b", std::nullopt},
      {".a", std::nullopt},
      {"a.com..", std::nullopt},
      {"a.*.com", std::nullopt},
      {"*a.com", std::nullopt},
      {"**.a.com", std::nullopt},
      {"*.*.a.com", std::nullopt},
      {"a.com:80", std::nullopt},
      {"[::1]:80", std::nullopt},
      {"a b", std::nullopt},
      {"a/b", std::nullopt},
      {"[::1", std::nullopt},
      {"[xyz]", std::nullopt},
      {std::string(64, 'a') + ".com", std::nullopt},
      {std::string(50, 'a') + "." + std::string(50, 'b') + "." + std::string(50, 'c') + "." +
           std::string(50, 'd') + "." + std::string(50, 'e'),
       std::nullopt},
  }));
  INFO("'" << c.text << "'");
  CHECK(normalize_host_pattern(c.text) == c.expected);
}

TEST_CASE("config: SocketAddress::to_string", "[config][values]") {
  CHECK(SocketAddress{"10.0.0.1", 80, false}.to_string() == "10.0.0.1:80");
  CHECK(SocketAddress{"2001:db8::1", 8443, true}.to_string() == "[2001:db8::1]:8443");
}

// ---------------------------------------------------------------------------------------
// The docker section

TEST_CASE("config: docker discovery is off by default, with documented defaults", "[config][docker]") {
  LoadResult result = load(kListener);
  REQUIRE(result.ok());
  const Docker& d = result.config->docker;
  CHECK_FALSE(d.enabled);
  CHECK(d.endpoint == "unix:///var/run/docker.sock");
  CHECK(d.tls.ca.empty());
  CHECK(d.tls.cert.empty());
  CHECK(d.tls.key.empty());
  CHECK_FALSE(d.exposed_by_default);
  CHECK(d.host_address == "127.0.0.1");
  CHECK(d.network.empty());
  CHECK_FALSE(d.prefer_ipv6);
  CHECK_FALSE(d.use_published_ports);
  CHECK_FALSE(d.compat.nginx_proxy);
  CHECK_FALSE(d.compat.traefik);
  CHECK(d.empty_route_grace == 10s);
  CHECK(d.reconnect_max == 30s);
  // Labels are not trusted by default.
  CHECK(d.allowed_hosts.empty());
  CHECK(d.max_priority == 0);
  CHECK_FALSE(d.allow_any_host);
  CHECK(d.forward_auth_addresses.empty());
}

TEST_CASE("config: every docker option is read", "[config][docker]") {
  const std::string yaml = std::string(kListener) +
                           "docker:\n"
                           "  enabled: true\n"
                           "  endpoint: tcp://10.0.0.5:2376\n"
                           "  tls: {ca: /etc/d/ca.pem, cert: /etc/d/cert.pem, key: /etc/d/key.pem}\n"
                           "  exposed_by_default: true\n"
                           "  host_address: \"::1\"\n"
                           "  network: backend\n"
                           "  prefer_ipv6: true\n"
                           "  use_published_ports: true\n"
                           "  compat: {nginx_proxy: true, traefik: yes}\n"
                           "  empty_route_grace: 2500ms\n"
                           "  reconnect_max: 1m\n"
                           "  allowed_hosts: [\"*.Apps.Example.com\", exact.test]\n"
                           "  max_priority: 50\n"
                           "  allow_any_host: true\n"
                           "  forward_auth_addresses: [\"127.0.0.1:9100\", \"localhost:9200\", \"[::1]:80\"]\n";
  LoadResult result = load(yaml);
  INFO(all_errors(result));
  REQUIRE(result.ok());
  const Docker& d = result.config->docker;
  CHECK(d.enabled);
  CHECK(d.endpoint == "tcp://10.0.0.5:2376");
  CHECK(d.tls.ca == "/etc/d/ca.pem");
  CHECK(d.tls.cert == "/etc/d/cert.pem");
  CHECK(d.tls.key == "/etc/d/key.pem");
  CHECK(d.exposed_by_default);
  CHECK(d.host_address == "::1");
  CHECK(d.network == "backend");
  CHECK(d.prefer_ipv6);
  CHECK(d.use_published_ports);
  CHECK(d.compat.nginx_proxy);
  CHECK(d.compat.traefik);
  CHECK(d.empty_route_grace == 2500ms);
  CHECK(d.reconnect_max == 60s);
  CHECK(d.allowed_hosts == std::vector<std::string>{"*.apps.example.com", "exact.test"});
  CHECK(d.max_priority == 50);
  CHECK(d.allow_any_host);
  CHECK(d.forward_auth_addresses == std::vector<std::string>{"127.0.0.1:9100", "127.0.0.1:9200", "[::1]:80"});
}

TEST_CASE("config: host_pattern_covers", "[config][docker]") {
  CHECK(host_pattern_covers("*.apps.test", "a.apps.test"));
  CHECK(host_pattern_covers("*.apps.test", "a.b.apps.test"));
  CHECK(host_pattern_covers("*.apps.test", "*.b.apps.test"));
  CHECK(host_pattern_covers("*.apps.test", "*.apps.test"));
  CHECK_FALSE(host_pattern_covers("*.apps.test", "apps.test"));
  CHECK_FALSE(host_pattern_covers("*.apps.test", "*.test"));
  CHECK_FALSE(host_pattern_covers("*.apps.test", "evilapps.test"));
  CHECK(host_pattern_covers("exact.test", "exact.test"));
  CHECK_FALSE(host_pattern_covers("exact.test", "a.exact.test"));
  CHECK_FALSE(host_pattern_covers("exact.test", "*.exact.test"));
}

TEST_CASE("config: an empty docker section means defaults", "[config][docker]") {
  LoadResult result = load(std::string(kListener) + "docker:\n");
  INFO(all_errors(result));
  REQUIRE(result.ok());
  CHECK_FALSE(result.config->docker.enabled);
  LoadResult unix_path = load(std::string(kListener) + "docker: {enabled: true, endpoint: \"unix:///tmp/d.sock\"}\n");
  INFO(all_errors(unix_path));
  REQUIRE(unix_path.ok());
  CHECK(unix_path.config->docker.endpoint == "unix:///tmp/d.sock");
}

TEST_CASE("config: docker errors are reported at their place", "[config][docker][errors]") {
  const std::vector<PlacedError> cases = {
      {"docker: {enabled: maybe}\n", 2, 19, "docker.enabled: expected true or false"},
      {"docker: {endpint: x}\n", 2, 10, "unknown key 'endpint' in docker"},
      {"docker: {endpoint: \"http://x\"}\n", 2, 20, "docker.endpoint: expected \"unix:///path/to/docker.sock\""},
      {"docker: {endpoint: \"tcp://host\"}\n", 2, 20, "docker.endpoint: expected"},
      {"docker: {host_address: localhost}\n", 2, 24, "docker.host_address: expected a numeric IP"},
      {"docker: {empty_route_grace: soon}\n", 2, 29, "docker.empty_route_grace: expected a duration"},
      {"docker: {reconnect_max: 0s}\n", 2, 25, "docker.reconnect_max: must be greater than 0"},
      {"docker: {compat: {haproxy: true}}\n", 2, 19, "unknown key 'haproxy' in docker.compat"},
      {"docker: {tls: {ca: /ca.pem}}\n", 2, 9, "docker.tls: TLS needs a tcp:// endpoint"},
      {"docker: {endpoint: \"tcp://1.2.3.4:2376\", tls: {cert: /c.pem}}\n", 2, 9,
       "docker.tls: 'cert' and 'key' must be given together"},
      {"docker: [1]\n", 2, 9, "docker: expected a map of Docker discovery settings"},
      {"docker: {allowed_hosts: \"*.a.test\"}\n", 2, 25, "docker.allowed_hosts: expected a list of host patterns"},
      {"docker: {allowed_hosts: [\"bad host\"]}\n", 2, 26, "docker.allowed_hosts[0]: invalid host pattern"},
      {"docker: {max_priority: high}\n", 2, 24, "docker.max_priority"},
      {"docker: {allow_any_host: sometimes}\n", 2, 26, "docker.allow_any_host: expected true or false"},
      {"docker: {forward_auth_addresses: \"127.0.0.1:9100\"}\n", 2, 34, "docker.forward_auth_addresses: expected a list"},
      {"docker: {forward_auth_addresses: [\"auth.test:9100\"]}\n", 2, 35,
       "docker.forward_auth_addresses[0]: expected a numeric address (or localhost) and a port"},
      {"docker: {forward_auth_addresses: [\"127.0.0.1:9100/check\"]}\n", 2, 35,
       "docker.forward_auth_addresses[0]: expected a numeric address"},
  };
  for (const PlacedError& c : cases) check_refused_at(std::string(kListener) + c.yaml, c);
}

TEST_CASE("config: access.rate_limit is read and checked", "[config]") {
  LoadResult ok = load(std::string(kListener) +
                       "routes: [{service: s, access: {rate_limit: {per_second: 20, burst: 40, key: \"header:X-Api-Key\", table_size: 1000}}},\n"
                       "         {host: b.test, service: s, access: {rate_limit: {per_second: 5}}}]\n"
                       "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
  INFO(all_errors(ok));
  REQUIRE(ok.ok());
  const auto& a = ok.config->routes[0].access.rate_limit;
  CHECK(a.per_second == 20);
  CHECK(a.burst == 40);
  CHECK(a.header == "X-Api-Key");
  CHECK(a.table_size == 1024);
  CHECK(a.ipv6_prefix == 64);
  const auto& b = ok.config->routes[1].access.rate_limit;
  CHECK(b.burst == 5);
  CHECK(b.header.empty());
  LoadResult prefix = load(std::string(kListener) +
                           "routes: [{service: s, access: {rate_limit: {per_second: 5, ipv6_prefix: 56}}}]\n"
                           "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
  INFO(all_errors(prefix));
  REQUIRE(prefix.ok());
  CHECK(prefix.config->routes[0].access.rate_limit.ipv6_prefix == 56);
  for (const char* bad : {"{burst: 4}", "{per_second: 0}", "{per_second: 1, key: cookie}", "{per_second: 1, key: \"header:\"}",
                          "{per_second: 1, ipv6_prefix: 0}", "{per_second: 1, ipv6_prefix: 129}"}) {
    LoadResult r = load(std::string(kListener) + "routes: [{service: s, access: {rate_limit: " + bad +
                        "}}]\nservices: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
    INFO(bad);
    CHECK_FALSE(r.ok());
  }
  // A bad value is reported once, at the value: not also as a missing key.
  for (const char* bad : {"rate_limit: {per_second: 0}", "basic_auth: {htpasswd: [a]}"}) {
    LoadResult r = load(std::string(kListener) + "routes: [{service: s, access: {" + bad +
                        "}}]\nservices: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
    INFO(bad << "\n" << all_errors(r));
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].message.find("is required") == std::string::npos);
  }
  LoadResult missing = load(std::string(kListener) + "routes: [{service: s, access: {rate_limit: {burst: 4}}}]\n"
                                                     "services: {s: {endpoints: [\"127.0.0.1:1\"]}}\n");
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].message.find("'per_second' is required") != std::string::npos);
}

TEST_CASE("config: routes' https_redirect and hsts", "[config][tls]") {
  LoadResult result = load(std::string(kListener) + kWebService +
                           "routes:\n"
                           "  - {host: a.test, service: web, https_redirect: true, hsts: \"max-age=31536000\"}\n"
                           "  - {host: b.test, service: web}\n");
  INFO(all_errors(result));
  REQUIRE(result.ok());
  CHECK(result.config->routes[0].https_redirect);
  CHECK(result.config->routes[0].hsts == "max-age=31536000");
  CHECK_FALSE(result.config->routes[1].https_redirect);
  CHECK(result.config->routes[1].hsts.empty());
  for (const char* good : {"max-age=0", "Max-Age=\\\"600\\\"; includeSubDomains; preload", " max-age = 31536000 ;"}) {
    LoadResult ok = load(std::string(kListener) + kWebService + "routes:\n  - {service: web, hsts: \"" + good + "\"}\n");
    INFO(good << ": " << all_errors(ok));
    CHECK(ok.ok());
  }
  // Browsers drop a header without one valid max-age: a typo would mean no HSTS at all.
  for (const char* bad : {"", "  ", "max-age=abc", "max-age=", "max-age", "includeSubDomains", "max-age=1; max-age=2",
                          "max-age=-1"}) {
    LoadResult refused = load(std::string(kListener) + kWebService + "routes:\n  - {service: web, hsts: \"" + bad + "\"}\n");
    INFO(bad);
    CHECK_FALSE(refused.ok());
    CHECK(all_errors(refused).find("one max-age in seconds") != std::string::npos);
  }
}

TEST_CASE("config: listeners' proxy_protocol_from", "[config]") {
  LoadResult ok = load("listeners:\n  - {address: \"127.0.0.1:8080\", proxy_protocol: true, proxy_protocol_from: [\"10.0.0.0/8\", \"::1\"]}\n"
                       "  - \"127.0.0.1:8081\"\n");
  INFO(all_errors(ok));
  REQUIRE(ok.ok());
  REQUIRE(ok.config->listeners[0].proxy_protocol_from.size() == 2);
  CHECK(ok.config->listeners[0].proxy_protocol_from[0].prefix == 8);
  CHECK(ok.config->listeners[1].proxy_protocol_from.empty());
  LoadResult without = load("listeners:\n  - {address: \"127.0.0.1:8080\", proxy_protocol_from: [\"10.0.0.0/8\"]}\n");
  REQUIRE_FALSE(without.ok());
  CHECK(without.errors[0].line == 2);
  CHECK(without.errors[0].message.find("needs proxy_protocol: true") != std::string::npos);
  LoadResult bad = load("listeners:\n  - {address: \"127.0.0.1:8080\", proxy_protocol: true, proxy_protocol_from: [\"nope\"]}\n");
  CHECK_FALSE(bad.ok());
}

TEST_CASE("config: a TLS listener needs certificates and a known min_version", "[config][tls]") {
  LoadResult none = load("listeners:\n  - address: \"127.0.0.1:8443\"\n    tls: {min_version: \"1.2\"}\n");
  INFO(all_errors(none));
  REQUIRE_FALSE(none.ok());
  CHECK(none.errors[0].message.find("certificates") != std::string::npos);
  CHECK(none.errors[0].line == 3);
  LoadResult version = load("listeners:\n  - address: \"127.0.0.1:8443\"\n"
                            "    tls: {certificates: [], min_version: \"1.0\"}\n");
  INFO(all_errors(version));
  REQUIRE_FALSE(version.ok());
  bool saw_version = false;
  for (const Error& e : version.errors) saw_version |= e.message.find("\"1.2\" or \"1.3\"") != std::string::npos;
  CHECK(saw_version);
  // A plain listener stays plain.
  LoadResult plain = load(std::string(kListener));
  REQUIRE(plain.ok());
  CHECK_FALSE(plain.config->listeners[0].tls.has_value());
}
