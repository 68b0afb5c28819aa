// Berth's configuration as plain structs. YAML lives only in config/*.cc; nothing here
// depends on yaml-cpp, so the proxy and discovery code never see YAML types.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/rewrite.h"
#include "config/route_match.h"  // routes[].match, routes[].split

namespace berth::config {

using Millis = std::chrono::milliseconds;

// Where a value came from in the file, 1-based (0 = not from a file).
struct Mark {
  int line = 0;
  int column = 0;
  // Where a setting was written is not part of what it says: settings compare equal wherever
  // they stand in the file.
  bool operator==(const Mark&) const { return true; }
};

// A numeric socket address "ip:port" or "[ipv6]:port". Hostnames are not resolved
// (no DNS on the data path); "localhost" is accepted and means 127.0.0.1.
struct SocketAddress {
  std::string host;       // numeric IP, without brackets
  uint16_t port = 0;
  bool ipv6 = false;
  std::string to_string() const;  // "127.0.0.1:80" or "[::1]:80"
  bool operator==(const SocketAddress&) const = default;
};

// TLS termination on a listener (listeners[].tls). Paths are resolved against the config
// file's directory when relative. The loader checks that each pair loads and matches.
struct TlsCertificate {
  std::string cert;  // PEM: the certificate, then its chain
  std::string key;   // PEM private key (RSA or ECDSA)
  Mark mark;
  bool operator==(const TlsCertificate& o) const { return cert == o.cert && key == o.key; }
};

struct ListenerTls {
  std::vector<TlsCertificate> certificates;  // the first is the default for unknown or missing SNI
  std::string min_version = "1.2";           // "1.2" | "1.3"
  std::string client_ca;                     // "" = no client certificates asked
  bool session_tickets = true;               // false: no resumption, every handshake is a full one
  Mark mark;
  bool operator==(const ListenerTls& o) const {
    return certificates == o.certificates && min_version == o.min_version && client_ca == o.client_ca &&
           session_tickets == o.session_tickets;
  }
};

// An address range "10.0.0.0/8", "2001:db8::/32" or a single address (a /32 or /128).
struct Cidr {
  bool ipv6 = false;
  uint8_t bytes[16] = {};   // network address, host bits zero (IPv4: the first 4)
  uint8_t prefix = 0;       // bits
  std::string text;         // as written, for messages
  // Whether an address in network byte order (4 or 16 bytes) lies in the range. An IPv4-mapped
  // IPv6 address (::ffff:a.b.c.d) is checked as IPv4; an IPv4 check is one AND and a compare.
  bool contains(const uint8_t* addr, bool addr_ipv6) const noexcept;
  // The same range, however it was written.
  bool operator==(const Cidr& o) const {
    return ipv6 == o.ipv6 && prefix == o.prefix && std::equal(bytes, bytes + 16, o.bytes);
  }
};
// Whether any of the ranges contains the address (as Cidr::contains).
bool any_contains(std::span<const Cidr> ranges, const uint8_t* addr, bool addr_ipv6) noexcept;
// Whether 16 address bytes are an IPv4-mapped IPv6 address (::ffff:a.b.c.d; RFC 4291 2.5.5.2):
// an IPv4 peer, whose address is the last 4 bytes.
bool ipv4_mapped(const uint8_t* p) noexcept;


struct Listener {
  SocketAddress address;
  Mark mark;
  std::optional<ListenerTls> tls;  // unset: plain HTTP
  bool proxy_protocol = false;     // each connection starts with a PROXY v1/v2 header
  // The peers a PROXY header is taken from (empty: any); others are closed unread, as a
  // connection without a header is. Only with proxy_protocol.
  std::vector<Cidr> proxy_protocol_from;
};

struct Endpoint {
  SocketAddress address;
  uint32_t weight = 1;    // 1..1000
  Mark mark;
};

// How a service spreads requests over its instances and how it treats failing ones.
// Shared by the config file (services.NAME.lb/health/...) and the berth.lb / berth.health.*
// container labels; the proxy copies it into each Service of the route snapshot.
struct LoadBalancing {
  enum class Policy : uint8_t { kRoundRobin, kLeastRequest, kHash, kSticky };
  enum class HashOn : uint8_t { kClientIp, kHeader, kCookie };
  Policy policy = Policy::kRoundRobin;
  HashOn hash_on = HashOn::kClientIp;   // policy hash
  std::string hash_name;                // header or cookie name for hash_on header:/cookie:
  // Policy sticky: the cookie naming the instance; "" until set = default_sticky_cookie(service).
  std::string cookie;
  Millis slow_start{0};                 // round_robin / least_request: a new instance's weight
                                        // ramps up over this long (0 = off)
  bool operator==(const LoadBalancing&) const = default;
};

struct HealthCheck {
  bool enabled = false;                 // set by giving `health:` (or any berth.health.* label)
  std::string path = "/";
  Millis interval{5'000};
  Millis timeout{2'000};
  uint32_t healthy_threshold = 1;       // passing probes in a row to become healthy
  uint32_t unhealthy_threshold = 2;     // failing probes in a row to become unhealthy
  uint16_t status_min = 200;            // "200-399"
  uint16_t status_max = 399;
  uint16_t port = 0;                    // 0 = the instance's own port
  bool operator==(const HealthCheck&) const = default;
};

struct OutlierDetection {
  uint32_t consecutive_failures = 5;    // connect failures or 5xx in a row; 0 = off
  Millis base_ejection{10'000};         // doubled for each repeated ejection, capped at 16x
  uint32_t max_ejection_percent = 50;   // at most this share of a service ejected at once (>= 1 instance)
  uint32_t panic_threshold_percent = 50;// fewer healthy than this: use every instance (0 = never)
  bool operator==(const OutlierDetection&) const = default;
};

struct RetryPolicy {
  static constexpr uint32_t kMaxAttempts = 10;  // the most `attempts` may say
  uint32_t attempts = 3;                // tries in all, first one included (1 = no retries)
  bool non_idempotent = false;          // also retry POST/PATCH after a reset before any response byte
  bool on_response_timeout = false;     // also retry when no response head came within upstream_response
  uint32_t budget_percent = 20;         // retries in flight at most this share of active requests
  uint32_t min_retries = 3;             // ... but always allow this many concurrent retries
  uint64_t replay_body_bytes = 8192;    // request bodies up to this size are kept for a replay (0 = none)
  bool operator==(const RetryPolicy&) const = default;
};

struct CircuitBreaker {                 // 0 = unlimited
  uint32_t max_requests = 0;            // concurrent requests per instance (all workers)
  uint32_t max_pending = 0;             // connects in progress per instance
  uint32_t service_max_requests = 0;    // concurrent requests for the whole service
  uint32_t service_max_pending = 0;
  bool operator==(const CircuitBreaker&) const = default;
};

// TLS from Berth to a service's instances (services.NAME.tls, label berth.upstream.tls=true).
// Paths are resolved against the config file's directory; the loader checks that they load.
struct UpstreamTls {
  bool enabled = false;
  std::string ca;           // CA bundle file; "" = the system's CA store
  std::string server_name;  // SNI and the name verified; "" = the instance's IP address (no SNI)
  std::string cert;         // optional client certificate (PEM, then its chain) ...
  std::string key;          // ... and its private key
  bool verify = true;       // false: any certificate is accepted (encryption without identity)
  bool operator==(const UpstreamTls&) const = default;
};

struct ServicePolicy {
  LoadBalancing lb;
  HealthCheck health;
  OutlierDetection outlier;
  RetryPolicy retry;
  CircuitBreaker circuit;
  UpstreamTls tls;
  bool operator==(const ServicePolicy&) const = default;
};

struct Service {
  std::string name;
  std::vector<Endpoint> endpoints;
  ServicePolicy policy;
  Mark mark;
};

// Who may pass a route (routes[].access).
// HTTP Basic authentication against an htpasswd file (routes[].access.basic_auth). The file is
// read when the configuration is (re)loaded; only slow, salted hashes are accepted: bcrypt
// ($2y$, $2b$, $2a$), SHA-512 crypt ($6$) and yescrypt ($y$).
struct BasicAuth {
  std::string htpasswd;               // path as configured ("" = off)
  std::string realm = "restricted";
  bool forward_authorization = false; // pass the client's Authorization header to the instance
  std::vector<std::pair<std::string, std::string>> users;  // user -> hash, in file order
  bool enabled() const { return !htpasswd.empty(); }
  bool operator==(const BasicAuth&) const = default;
};

// "" when `realm` can stand in WWW-Authenticate's quoted-string (non-empty printable ASCII
// without '"' or '\\'), else what is wrong with it.
std::string realm_problem(std::string_view realm);

// A token bucket per key per route (routes[].access.rate_limit), shared by every worker.
struct RateLimit {
  uint32_t per_second = 0;           // refill rate (0 = off)
  uint32_t burst = 0;                // bucket size (default: per_second)
  std::string header;                // key: "" = the client address, else this request header
  uint32_t table_size = 16384;       // keys remembered at most (a power of two)
  // An IPv6 client is keyed by this many leading bits of its address: one host usually holds a
  // whole /64, so a per-address key would give it 2^64 buckets.
  uint32_t ipv6_prefix = 64;
  bool enabled() const { return per_second > 0; }
  bool operator==(const RateLimit&) const = default;

  // What config files and labels may ask for.
  static constexpr uint32_t kMaxPerSecond = 1'000'000;
  static constexpr uint32_t kMaxBurst = 10'000'000;
  static constexpr uint32_t kMinTableSize = 16;
  static constexpr uint32_t kMaxTableSize = 1u << 24;
  // The table size kept for a requested one (kMinTableSize..kMaxTableSize): the next power of two.
  static uint32_t table_size_for(uint32_t requested) {
    uint32_t size = kMinTableSize;
    while (size < requested) size <<= 1;
    return size;
  }
};

// An authentication service asked about every request (routes[].access.forward_auth): a 2xx
// answer lets the request pass (with copy_headers taken from that answer); any other answer is
// sent to the client as it is (401 with its challenge, 302 to a login page, ...).
struct ForwardAuth {
  std::string url;                        // as configured ("" = off): http://IP:PORT/path?query
  SocketAddress address;                  // where Berth connects (numeric; "localhost" = 127.0.0.1)
  std::string authority;                  // the Host header sent to it
  std::string target;                     // path and query asked for
  std::vector<std::string> copy_headers;  // from a 2xx answer into the request to the instance
  Millis timeout{5000};                   // connect + answer; beyond it the request gets 503
  bool enabled() const { return !url.empty(); }
  bool operator==(const ForwardAuth&) const = default;
};

// "http://127.0.0.1:9100/check" -> address, authority and target of `out`; "" or a problem.
std::string parse_forward_auth_url(const std::string& url, ForwardAuth& out);

struct RouteAccess {
  std::vector<std::string> methods;  // allowed methods, upper-case (empty: any)
  std::vector<Cidr> allow;           // client address must be in one (empty: any)
  std::vector<Cidr> deny;            // checked first: an address in one is refused
  BasicAuth basic_auth;
  RateLimit rate_limit;
  ForwardAuth forward_auth;
  bool empty() const {
    return methods.empty() && allow.empty() && deny.empty() && !basic_auth.enabled() && !rate_limit.enabled() &&
           !forward_auth.enabled();
  }
  bool operator==(const RouteAccess&) const = default;
};

// The methods an access.methods list lets through: the list, and HEAD when it holds GET (a HEAD
// is a GET without the body: a server that answers GET answers HEAD, RFC 9110 9.3.2), so a
// health probe or a link checker is not refused. Used by the filter and by label agreement.
std::vector<std::string> methods_let_through(std::vector<std::string> methods);


// Header changes on one side of a route (routes[].headers.request / .response).
struct HeaderRules {
  std::vector<std::pair<std::string, std::string>> set;  // replace (remove, then add)
  std::vector<std::pair<std::string, std::string>> add;  // append
  std::vector<std::string> remove;
  bool empty() const { return set.empty() && add.empty() && remove.empty(); }
  bool operator==(const HeaderRules&) const = default;
};

// A share of a route's requests copied to a shadow service whose answers are discarded
// (routes[].mirror; labels berth.mirror.*). Copies go once the whole request has been read;
// a body larger than max_body (or still streaming when the exchange ends) is not copied.
struct RouteMirror {
  std::string service;              // "" = no mirror; must name a service
  uint32_t percent_bp = 10'000;     // share copied, in hundredths of a percent (1..10000)
  uint64_t max_body = 64 * 1024;    // bodies up to this are copied (0: bodyless requests only)
  bool enabled() const { return !service.empty(); }
  bool operator==(const RouteMirror&) const = default;
};

// "50", "12.5", "0.01", "100" -> hundredths of a percent (0 < P <= 100, at most two decimals).
std::optional<uint32_t> parse_mirror_percent(std::string_view text);

// Percent-encodings a client's request path may carry (encoded_characters, top level and per
// route). Each is refused with 400 unless allowed: it decodes to a byte some servers read as
// syntax (a separator, the query, a parameter), so an instance that decodes first may see
// another path than Berth routed. One bit each, in this order (the keys' order too).
enum class EncodedCharacter : uint8_t {
  kSlash,          // allow_encoded_slash: %2F
  kBackslash,      // allow_encoded_backslash: %5C
  kNullCharacter,  // allow_encoded_null_character: %00
  kSemicolon,      // allow_encoded_semicolon: %3B
  kPercent,        // allow_encoded_percent: %25
  kQuestionMark,   // allow_encoded_question_mark: %3F
  kHash,           // allow_encoded_hash: %23
};
struct EncodedCharacters {
  uint8_t allowed = 0;  // bit (1 << EncodedCharacter): its key is true
  uint8_t given = 0;    // bits whose key the map names: a route's map overrides only these
  bool allows(EncodedCharacter c) const { return (allowed >> static_cast<unsigned>(c)) & 1u; }
  void set(EncodedCharacter c, bool allow) {
    const auto bit = static_cast<uint8_t>(1u << static_cast<unsigned>(c));
    given |= bit;
    allowed = static_cast<uint8_t>(allow ? allowed | bit : allowed & ~bit);
  }
  uint8_t allowed_given() const { return given & allowed; }                          // set to true
  uint8_t refused_given() const { return static_cast<uint8_t>(given & ~allowed); }  // set to false
  bool operator==(const EncodedCharacters&) const = default;
};
// The EncodedCharacter an allow_encoded_* key names ("allow_encoded_slash"), if any.
std::optional<EncodedCharacter> encoded_character_named(std::string_view key);
// The same for a key written without underscores ("allowencodedslash", as Traefik's lower-cased
// encodedcharacters options read).
std::optional<EncodedCharacter> encoded_character_named_without_underscores(std::string_view name);
// Every allow_encoded_* key, in EncodedCharacter's order.
const std::vector<std::string_view>& encoded_character_keys();

struct Route {
  std::string name;                 // from `name:`, else "route-<index>"
  std::vector<std::string> hosts;   // lower-case; "*.example.com" wildcards; empty = any host
  std::string path_prefix = "/";    // must start with '/'
  std::optional<int32_t> priority;  // explicit priority overrides the natural precedence
  std::string service;              // must name a service in `services`
  std::optional<uint64_t> max_body_bytes;  // overrides limits.max_body_bytes for this route
  EncodedCharacters encoded_characters;    // overrides the top level's for the keys it names
  RouteAccess access;
  HeaderRules request_headers;    // on the way to the instance
  HeaderRules response_headers;   // on the way back to the client (proxied responses)
  bool https_redirect = false;    // plain-HTTP requests get 308 to https:// (ACME paths excepted)
  std::string hsts;               // Strict-Transport-Security value on responses sent over TLS
  bool acme = false;              // obtain and renew a certificate for `hosts` (needs `acme:`)
  // Path rewriting and redirects (config/rewrite.h). A route with a redirect has no service.
  PathRewrite rewrite;            // strip_prefix, add_prefix, rewrite: {regex, replacement}
  Redirect redirect;              // redirect: {to, code}
  Mark mark;
  // ---- matchers and weighted split (config/route_match.h) ----
  RouteMatch match;                // routes[].match: methods, headers, query, path_regex
  std::vector<SplitTarget> split;  // routes[].split (then `service` is empty): weighted services
  RouteMirror mirror;              // routes[].mirror: {service, percent, max_body}
};

struct Timeouts {
  Millis request_header{10'000};     // whole request header block, a deadline from its first byte
  Millis keepalive_idle{60'000};     // idle client connection between requests
  Millis request_body{300'000};      // whole request body, a deadline from the end of the headers
  Millis request_body_idle{60'000};  // no request body byte for this long -> 408
  Millis upstream_connect{5'000};
  Millis upstream_response{60'000};  // request fully sent -> response header block complete
  Millis upstream_idle{60'000};      // pooled idle upstream connection expiry
  Millis tunnel_idle{3'600'000};     // upgraded (WebSocket) tunnel with no traffic either way
  Millis drain{30'000};              // SIGTERM: in-flight requests get this long to finish
};

struct Limits {
  uint32_t max_header_bytes = 32 * 1024;   // request header block, request line included
  uint32_t max_headers = 100;
  uint32_t max_request_line = 8 * 1024;    // longer -> 414
  uint32_t max_connections_per_worker = 16384;
  uint64_t max_body_bytes = 0;             // 0 = unlimited; routes may override
  uint32_t upstream_max_idle_per_endpoint = 1024;  // per worker; above the client concurrency avoids churn
  uint32_t write_buffer_bytes = 256 * 1024;      // backpressure bound per direction
};

struct Admin {
  bool enabled = true;
  SocketAddress address{"127.0.0.1", 9901, false};
  Mark mark;
};

// Docker discovery (discovery/docker_source.*). Off unless enabled.
struct DockerTls {
  std::string ca;    // PEM files; all optional; cert and key go together
  std::string cert;
  std::string key;
  bool operator==(const DockerTls&) const = default;
};

struct DockerCompat {
  bool nginx_proxy = false;  // VIRTUAL_HOST / VIRTUAL_PORT / VIRTUAL_PATH environment variables
  bool traefik = false;      // traefik.http.routers.R.rule + traefik.http.services.S.loadbalancer.server.port
  bool operator==(const DockerCompat&) const = default;
};

struct Docker {
  bool enabled = false;
  std::string endpoint = "unix:///var/run/docker.sock";  // or "tcp://host:port"
  DockerTls tls;                      // only with tcp://
  bool exposed_by_default = false;    // route containers without berth.enable=true
  std::string host_address = "127.0.0.1";  // address of host-network containers (numeric IP)
  std::string network;                // default network to reach containers on ("" = none)
  bool prefer_ipv6 = false;
  bool use_published_ports = false;   // reach containers via their published host ports
  DockerCompat compat;
  Millis empty_route_grace{10'000};   // a route with no instance left answers 503 this long
  Millis reconnect_max{30'000};       // cap of the reconnect backoff
  // A container still running this long after its stop signal (`docker kill -s TERM` to a
  // process that ignores it) is routed again; `docker stop` kills it before (10 s by default).
  Millis stop_signal_timeout{120'000};
  // Operator policy for routes that container labels ask for (labels are not trusted): a
  // container asking for more is rejected with the reason.
  std::vector<std::string> allowed_hosts;  // host patterns label hosts must fall under (empty: any)
  int32_t max_priority = 0;                // the highest berth.priority a label may ask for
  bool allow_any_host = false;             // may a label route omit berth.host (match any host)?
  // The directory files named by berth.access.* labels (htpasswd) must lie under ("": labels
  // may not name files).
  std::string access_files_dir;
  // The authentication services a berth.access.forward_auth label may name, as "IP:port"
  // (canonical, as SocketAddress::to_string writes it). Empty: labels may not name one, since
  // Berth would send requests, with the client's headers, wherever a container asks.
  std::vector<std::string> forward_auth_addresses;
  Mark mark;
  bool operator==(const Docker&) const = default;
};

// Whether host pattern `host` (exact or "*.suffix") falls under `allowed` (exact or
// "*.suffix"): an exact pattern only covers itself; "*.example.com" covers every name below
// example.com and every wildcard below it, but not example.com itself.
bool host_pattern_covers(std::string_view allowed, std::string_view host);
// Many hosts (registry:): sidecars publish their host's instances to etcd, front doors watch
// them (discovery/registry). Off unless the key is given.
struct Registry {
  enum class Role : uint8_t { kSidecar, kFront };
  bool enabled = false;
  std::vector<std::string> etcd;      // member URLs "http://host:port" / "https://host:port", at least one
  Role role = Role::kFront;           // required in the file
  std::string host_id;                // default: the machine's hostname
  std::string advertise_address;      // numeric IP other hosts reach this host's instances on (sidecars)
  Millis lease_ttl{10'000};           // whole seconds, at least 2 s (etcd's minimum)
  // A route learnt from the registry whose last key left answers 503 this long (as
  // docker.empty_route_grace), so a redeploy on another host is not a 404.
  Millis empty_route_grace{10'000};
  std::string prefix = "/berth/v1";   // starts with '/', no trailing '/'
  DockerTls tls;                      // to etcd, for https:// members
  // The policy (lb, health, outlier, retry, circuit_breaker) of every service learnt from the
  // registry; a sidecar's own services keep their labels' policy.
  ServicePolicy service_policy;
  Mark mark;
  bool operator==(const Registry&) const = default;
};

// The access log (access_log:). Off unless the key is given.
struct AccessLog {
  enum class Format : uint8_t { kJson, kCombined };
  enum class Syslog : uint8_t { kNone, kUdp, kTcp, kUnix };
  bool enabled = false;
  Format format = Format::kJson;
  std::string path;                 // "-" = stdout, "" = no file, else a file (reopened on SIGUSR1)
  std::string syslog;               // as written: "udp://ip:port", "tcp://ip:port", "unix:///dev/log"
  Syslog syslog_kind = Syslog::kNone;
  SocketAddress syslog_address;     // kUdp / kTcp
  std::string syslog_socket;        // kUnix: the socket path
  Mark mark;
  bool operator==(const AccessLog& o) const {
    return enabled == o.enabled && format == o.format && path == o.path && syslog == o.syslog;
  }
};

// Automatic certificates (acme:, RFC 8555) for routes with `acme: true` and containers
// labelled berth.tls.acme=true. Off unless the key is given.
struct Acme {
  enum class Challenge : uint8_t { kHttp01, kTlsAlpn01 };
  bool enabled = false;
  std::string directory;              // the ACME server's directory URL (https://...), required
  std::string email;                  // account contact ("" = none)
  std::string storage;                // directory for the account key, keys and chains, required
  std::string ca_bundle;              // extra PEM CAs trusted for the ACME server ("" = system store only)
  Challenge challenge = Challenge::kHttp01;
  Millis renew_before{720LL * 3600 * 1000};  // renew when the certificate expires sooner than this
  Mark mark;
  bool operator==(const Acme&) const = default;  // Mark compares equal: where it was written does not matter
};
const char* acme_challenge_name(Acme::Challenge challenge);  // "http-01" | "tls-alpn-01"

struct Config {
  std::string source;                 // file path (or a name for in-memory configs)
  std::vector<Listener> listeners;    // at least one
  unsigned workers = 0;               // 0 = number of cores
  Admin admin;
  Timeouts timeouts;
  Limits limits;
  std::vector<Route> routes;
  std::vector<Service> services;      // in file order; names unique
  Docker docker;
  AccessLog access_log;
  Registry registry;
  // Peers whose X-Forwarded-For is believed (trusted_proxies): the client address is then the
  // right-most X-Forwarded-For entry outside these ranges. Empty: the peer is the client.
  std::vector<Cidr> trusted_proxies;
  Acme acme;
  // Client request paths are sanitized before routing and forwarding (proxy/http/request_path.h):
  // "/%61dmin", "//admin" and "/x/../admin" all route, and go out, as "/admin".
  bool sanitize_path = true;
  EncodedCharacters encoded_characters;  // none allowed unless the map allows them
};

struct Error {
  std::string file;
  int line = 0;     // 1-based; 0 when the error is not tied to a place
  int column = 0;
  std::string message;
  // "file:line:column: message" (or "file: message" without a place)
  std::string to_string() const;
};

// Parses htpasswd text ("user:hash" lines; blank lines and '#' comments skipped). Entries with
// a hash other than bcrypt, SHA-512 crypt or yescrypt (plain text, MD5 "$apr1$", "{SHA}", DES)
// are refused, as are duplicate users; each problem is an Error at `file`:line.
std::vector<std::pair<std::string, std::string>> parse_htpasswd(std::string_view text, const std::string& file,
                                                                std::vector<Error>& errors);

struct LoadResult {
  std::optional<Config> config;   // set only when errors is empty
  std::vector<Error> errors;      // every problem found, in file order
  bool ok() const { return config.has_value(); }
};

// Parse and validate. Never throws.
LoadResult load_file(const std::string& path);
LoadResult load_string(std::string_view yaml, const std::string& source_name);

// Parsing helpers shared with discovery labels (also never throw).
// "10s", "500ms", "5m", "1h", "250us" is not accepted; a bare integer means seconds. At most
// kMaxDuration: a duration is added to clock readings in nanoseconds, which a larger one would
// overflow (2562047h is int64's nanoseconds), and no timeout, interval or grace wants more.
inline constexpr Millis kMaxDuration = std::chrono::hours(24 * 365 * 10);  // 87600h
std::optional<Millis> parse_duration(std::string_view text);
// "1024", "64KiB", "10MiB", "1GiB", "64KB" (KB = 1000), "0".
std::optional<uint64_t> parse_size(std::string_view text);
// "127.0.0.1:8080", "[::1]:8080", "localhost:8080", ":8080" (= 0.0.0.0:8080). Port 0 allowed
// only when allow_port_zero.
std::optional<SocketAddress> parse_socket_address(std::string_view text, bool allow_port_zero);
// Service policy values shared by the config file and the berth.lb / berth.health.* labels.
// "round_robin" | "least_request" | "hash" | "sticky".
std::optional<LoadBalancing::Policy> parse_lb_policy(std::string_view text);
// "client_ip" | "header:NAME" | "cookie:NAME" into lb.hash_on / lb.hash_name. False when invalid.
bool parse_hash_on(std::string_view text, LoadBalancing& lb);
// "200-399" or "200" into health.status_min/max. False when invalid.
bool parse_status_range(std::string_view text, HealthCheck& health);
// A cookie name (an RFC 6265 token). False when invalid.
bool valid_cookie_name(std::string_view name);
// A sticky service's cookie when lb.cookie is not set: "berth_sticky_" and 8 hex digits of a hash
// of the service name. One name per service, so that two sticky services a client uses on one
// host (a split, "/" and "/api") do not overwrite each other's pin; stable across restarts.
std::string default_sticky_cookie(std::string_view service);
// "true"/"false", also "yes"/"no" and "on"/"off", in any case.
std::optional<bool> parse_bool(std::string_view text);
// "10.0.0.0/8", "::1", "2001:db8::/32"; nullopt when not a numeric address with a valid prefix.
std::optional<Cidr> parse_cidr(std::string_view text);
// A service name: letters, digits, '-', '_' and '.', at least one. The config file, the
// Docker labels and the registry all take this rule.
bool valid_service_name(std::string_view name);
// Empty when `path` is usable as a route path prefix, else the reason: it starts with '/' and
// holds no space, control character, '?' or '#'. Bytes over 0x7f are kept.
std::string path_prefix_problem(std::string_view path);
// Empty when some sanitized request path (sanitize_path, request_path.h) can start with the
// route prefix `path`, else why none can and what to write instead: "//", a "." or ".."
// segment before a '/', a percent-encoded unreserved character (decoded in requests), a
// percent-encoding in lower-case hex (upper-cased in requests), a '%' not followed by two hex
// digits (such a request is refused). Such a route would never be chosen, silently.
std::string unreachable_prefix_problem(std::string_view path);
// Empty when a route may set or remove this header, else why not: it must be a token, and
// not one of the fields that carry framing or connection state (Content-Length,
// Transfer-Encoding, Connection, Upgrade, ...) or that Berth sets itself (Host, X-Forwarded-*,
// X-Request-Id).
std::string header_name_problem(std::string_view name);
// Empty when a header value is safe to send, else why not (no CR, LF or NUL).
std::string header_value_problem(std::string_view value);

// One numeric, boolean or duration setting of a service policy, known to the config file as
// services.NAME.<section>.<name> and to Docker as the label <label>. The config loader and the
// label parser both take name, range and target from this one table, so they cannot disagree.
struct PolicySetting {
  enum class Kind : uint8_t { kInteger, kBool, kDuration };
  std::string_view section;  // "retry": the key under services.NAME
  std::string_view name;     // "attempts": the key in that section
  std::string_view label;    // "berth.retry.attempts"
  Kind kind;
  int64_t min;               // kInteger: the range; kDuration: the range in milliseconds
  int64_t max;
  void (*apply)(ServicePolicy& policy, int64_t value);  // kBool: 0 or 1; kDuration: milliseconds
};
// lb.slow_start, outlier.*, retry.*, circuit_breaker.* (labels berth.circuit.*).
const std::vector<PolicySetting>& policy_settings();
const PolicySetting* find_policy_setting(std::string_view section, std::string_view name);
const PolicySetting* find_policy_setting_by_label(std::string_view label);
// Parses text (surrounding white space allowed) as the setting's kind and range and applies
// it. False, leaving policy unchanged, when the text does not fit.
bool apply_policy_setting(const PolicySetting& setting, std::string_view text, ServicePolicy& policy);
// What the setting accepts, for error messages: "an integer from 1 to 10", "true or false",
// "a duration from 0 to 1h such as 500ms or 30s".
std::string policy_setting_expectation(const PolicySetting& setting);

// access_log.syslog: "udp://ip:port", "tcp://ip:port" or "unix:///absolute/path" into
// access_log.syslog_kind / syslog_address / syslog_socket. Empty when valid, else the problem.
std::string parse_syslog_target(std::string_view text, AccessLog& access_log);

// Lower-cases; accepts "example.com", "*.example.com"; rejects empty labels, bad characters,
// "*" anywhere but a leading "*." label.
std::optional<std::string> normalize_host_pattern(std::string_view text);

}  // namespace berth::config
