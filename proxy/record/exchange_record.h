// The exchange record: what one request/response exchange was, finalised exactly once however
// it ended (proxied, answered locally, cut short, client gone, tunnel closed). Access logs and
// metrics read only this. Plain data; the data path fills it, a RecordSink consumes it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace berth {

// How an exchange ended.
enum class ExchangeEnd : uint8_t {
  kResponded,     // a whole response from an instance went to the client
  kLocalReply,    // Berth answered itself (error, filter, no route, ...)
  kClientClosed,  // the client went away before its response was complete
  kAborted,       // Berth cut the response short (instance failed mid-response, body timeout)
  kTunnelClosed,  // an upgraded connection (101) ended
};
const char* exchange_end_name(ExchangeEnd end) noexcept;

// The request method as one of the standard methods, or kOther (anything else, or no head).
// Always filled, unlike the copied `method` string: metrics label requests with it.
enum class MethodClass : uint8_t {
  kOther, kGet, kHead, kPost, kPut, kDelete, kConnect, kOptions, kTrace, kPatch,
  kCount_
};
MethodClass classify_method(std::string_view method) noexcept;
// "GET", ..., "OTHER": static strings.
const char* method_class_name(MethodClass m) noexcept;
// The standard method the first bytes of a request start with ("GET /x HTT" -> kGet), or kOther
// when its first token is another or not yet complete (no space after it).
MethodClass leading_method(std::string_view bytes) noexcept;

// One try of one instance. Times are monotonic ns (uv_hrtime); 0 = did not happen.
struct AttemptRecord {
  std::string_view instance;   // endpoint key "address:port" (valid while the record is)
  std::string_view container;  // the instance's container name ("" for a config instance)
  int64_t start_ns = 0;        // instance chosen
  int64_t connected_ns = 0;    // connection usable (a pooled one: = start_ns)
  int64_t first_byte_ns = 0;   // final response head received (interim 1xx heads do not count)
  uint16_t status = 0;         // response status from the instance (0 = none)
  bool reused = false;         // a pooled keep-alive connection
  const char* failure = "";    // why this try failed ("" = it did not)
  uint32_t endpoint_index = UINT32_MAX;  // the instance's index in its service's endpoints
};

struct ExchangeRecord {
  // Every try of an exchange is kept: as many as retry.attempts may say (config::RetryPolicy;
  // checked where both are known, proxy/datapath/client.cc).
  static constexpr size_t kMaxAttempts = 10;

  // Monotonic ns: first byte of the request head, and when the last response byte was queued
  // to the client (or the exchange was given up). start_unix_ns: wall clock at start_ns.
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int64_t start_unix_ns = 0;

  // Request facts, copied from the head (empty when the head never parsed).
  std::string method;
  MethodClass method_class = MethodClass::kOther;  // always set once the head is read
  std::string host;
  std::string path;            // without the query
  std::string query;           // after '?', without it
  std::string user_agent;
  std::string referer;
  std::string request_id;      // the client's valid X-Request-Id, else the one Berth made
  uint8_t version_minor = 1;   // HTTP/1.x
  // The request head parsed: the facts above are the request's. When it did not (refused,
  // too large, cut off, timed out), only `method` may be set: the standard method the bytes
  // start with (note_unparsed_method).
  bool head_parsed = false;
  // For a head that did not parse: method_class from its first bytes (leading_method), and
  // `method` named when that is a standard one, so the access log names what metrics count.
  void note_unparsed_method(std::string_view bytes);
  std::string_view scheme;     // "http" or "https"
  // Over TLS: the protocol version ("TLSv1.3"), cipher suite and the name the client asked
  // for (SNI); empty over plain HTTP. Views into the connection, valid while the record is.
  std::string_view tls_version;
  std::string_view tls_cipher;
  std::string_view tls_sni;
  std::string client;          // the client address (proxy/net/client_address.h) "address:port", or "address" when named by X-Forwarded-For without a port

  // Routing (views into the snapshot the exchange ran on; valid while the record is).
  std::string_view route;
  std::string_view service;
  // The same by position: the snapshot (identity only, never read through; null when no route
  // matched), its generation, and the route's and its service's indices in it. Metrics find their
  // counters by these with an array index, resolved by name once per snapshot.
  const void* snapshot = nullptr;
  uint64_t snapshot_generation = 0;
  uint32_t route_index = UINT32_MAX;
  uint32_t split_target = UINT32_MAX;  // a split route's chosen target (its metrics are per target)
  uint32_t service_index = UINT32_MAX;

  // Outcome.
  uint16_t status = 0;         // status sent to the client (0: none was sent)
  const char* cause = "";      // x-berth-error value of a local reply or abort ("" = none)
  ExchangeEnd end = ExchangeEnd::kClientClosed;
  uint64_t bytes_in = 0;       // request bytes read from the client (head and body, as received)
  uint64_t bytes_out = 0;      // response bytes queued to the client (head and body)
  uint8_t attempt_count = 0;   // tries made (more than kMaxAttempts: only the first are kept)
  AttemptRecord attempts[kMaxAttempts];

  // The last try, or null.
  const AttemptRecord* last_attempt() const noexcept {
    if (attempt_count == 0) return nullptr;
    return &attempts[(attempt_count <= kMaxAttempts ? attempt_count : kMaxAttempts) - 1];
  }
  double duration_ms() const noexcept { return static_cast<double>(end_ns - start_ns) / 1e6; }
  // Keeps string capacity (records are pooled with their exchange).
  void clear() noexcept;
};

// What became of a request's mirror copy (routes[].mirror): sent (the shadow answered, its
// answer discarded), dropped (no instance, too many copies in flight, connect failure, reset or
// timeout) or skipped (a body too large for mirror.max_body, still streaming, or an upgrade).
enum class MirrorResult : uint8_t { kSent, kDropped, kSkipped };
inline constexpr const char* kMirrorResultNames[] = {"sent", "dropped", "skipped"};

// Receives finalised records on the worker loop that ran the exchange. Must not block: a sink
// that writes somewhere copies what it needs and hands it off. The record's views are valid only
// during the call.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // Whether records need the copied request strings (method, host, path, ...). A sink that only
  // counts leaves them empty and saves the copies.
  virtual bool wants_request_details() const { return true; }
  virtual void on_exchange(const ExchangeRecord& record) = 0;
  // A mirror copy of a request of `route` to `service` ended (no record: copies are not logged).
  virtual void on_mirror(std::string_view route, std::string_view service, MirrorResult result) {}
};

}  // namespace berth
