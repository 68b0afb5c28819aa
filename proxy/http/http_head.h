// Strict HTTP/1.x head scanning and validation, pure and allocation-free once the header
// vector has grown. llhttp parses the same bytes afterwards as a second check and drives body
// framing, but Berth does not trust it alone: everything that decides where a message ends, or
// what a backend sees, is checked here first (RFC 9110/9112).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::http {

// Why a head was refused; maps to the status and the x-berth-error cause of the local reply.
enum class HeadError : uint8_t {
  kNone = 0,
  kBadRequest,          // 400: malformed, ambiguous or dangerous
  kUriTooLong,          // 414
  kHeaderTooLarge,      // 431: block over the limit or too many fields
  kNotImplemented,      // 501: unknown transfer coding, CONNECT
  kVersionNotSupported, // 505: HTTP/2.0 etc. in an HTTP/1 request line
  kBadResponse,         // upstream response malformed or with conflicting framing (-> 502)
};

struct Field {
  uint32_t name_off = 0;
  uint32_t name_len = 0;
  uint32_t value_off = 0;  // value with surrounding whitespace trimmed
  uint32_t value_len = 0;
};

enum class Framing : uint8_t {
  kNone,            // no body (request without CL/TE; 1xx/204/304/HEAD response)
  kContentLength,   // exactly content_length bytes
  kChunked,         // Transfer-Encoding: chunked
  kUntilClose,      // response delimited by the connection closing
};

// Header names Berth treats specially; everything else is kOther.
enum class FieldKind : uint8_t {
  kOther, kHost, kContentLength, kTransferEncoding, kConnection, kKeepAlive, kTe, kTrailer,
  kProxyConnection, kUpgrade, kExpect, kXForwardedFor, kXForwardedProto, kXForwardedHost,
  kXForwardedPort, kXRequestId,
  // What other proxies say about the client and its request: only a trusted proxy's pass on.
  kForwarded, kXRealIp, kXForwardedOther,  // kXForwardedOther: any other X-Forwarded-*
  // X-Original-URL, X-Original-URI, X-Original-Method, X-Rewrite-URL: the request as a proxy in
  // front received it, before its rewrites. Some application frameworks route by them, so from
  // anyone else they would reach a path other than the one Berth routed and checked.
  kXOriginal,
  // One of kXForwardedFor..kXOriginal spelled with '_' for '-' ("X_Real_IP"): never one
  // Berth sets, and CGI/WSGI-style servers read it as the hyphenated one. Always dropped.
  kUnderscoreAlias,
};
FieldKind classify_field(std::string_view name) noexcept;

struct Limits {
  uint32_t max_header_bytes = 32 * 1024;
  uint32_t max_headers = 100;
  uint32_t max_request_line = 8 * 1024;
  // A client's request: its path is sanitized (request_path.h) for routing and forwarding.
  bool sanitize_path = false;
};

// Common to requests and responses.
struct Head {
  std::string_view raw;            // the whole head, final CRLF CRLF included
  std::vector<Field> fields;       // in order; offsets into raw
  std::vector<FieldKind> kinds;    // parallel to fields
  uint8_t version_minor = 1;       // HTTP/1.<minor>, 0 or 1
  Framing framing = Framing::kNone;
  uint64_t content_length = 0;
  bool connection_close = false;   // Connection: close (or HTTP/1.0 without keep-alive)
  bool connection_keep_alive = false;
  bool connection_upgrade = false; // "upgrade" token in Connection
  // Names listed in Connection (other than close/keep-alive/upgrade): hop-by-hop, dropped.
  std::vector<std::string_view> connection_tokens;

  std::string_view name(const Field& f) const { return raw.substr(f.name_off, f.name_len); }
  std::string_view value(const Field& f) const { return raw.substr(f.value_off, f.value_len); }
  // Whether the field at index i is hop-by-hop for this message (dropped when forwarding).
  bool is_connection_listed(std::string_view name) const noexcept;
  void clear();
};

struct RequestHead : Head {
  std::string_view method;
  std::string_view target;         // as received
  std::string_view path;           // origin-form path+query to forward (absolute-form reduced,
                                   // sanitized when Limits::sanitize_path)
  std::string_view host;           // authority used for routing: target's, else Host header
  bool absolute_form = false;
  bool method_head = false;
  bool expect_continue = false;
  bool upgrade = false;            // Upgrade + Connection: upgrade (not h2c)
  std::string_view upgrade_protocol;
  std::string sanitized_path;      // where `path` points when sanitizing changed it
  RequestHead() = default;
  RequestHead(const RequestHead&) = delete;  // `path` may point into this very object
  RequestHead& operator=(const RequestHead&) = delete;
  bool keep_alive() const noexcept;
  void clear();
};

struct ResponseHead : Head {
  uint16_t status = 0;
  std::string_view reason;
  void clear();
};

struct Outcome {
  HeadError error = HeadError::kNone;
  const char* detail = "";         // short, static description for logs
  bool ok() const { return error == HeadError::kNone; }
};

// Finds the end of a head in data[0..len). Returns the length of the head including the final
// empty line, or 0 when more bytes are needed. A bare-LF empty line ("\n\n") also ends the
// head, so that validation refuses it instead of waiting for a CRLF CRLF that never comes.
// `from` lets a caller resume scanning where it stopped (pass the previous len).
size_t find_head_end(const char* data, size_t len, size_t from) noexcept;

// Length of the first line if complete (including its "\n"), else 0.
size_t first_line_length(const char* data, size_t len) noexcept;

Outcome parse_request_head(std::string_view raw, const Limits& limits, RequestHead& out);
// request_method_head: the response answers a HEAD request (no body, whatever it says).
Outcome parse_response_head(std::string_view raw, const Limits& limits, bool request_method_head,
                            ResponseHead& out);

bool is_token_char(unsigned char c) noexcept;

bool iequals(std::string_view a, std::string_view b) noexcept;
// Whether `v` is a Host value Berth accepts: uri-host [":" port] (a name, or an IPv6 literal in
// brackets; a port of at most five digits).
bool valid_host(std::string_view v) noexcept;
// Whether a 101's Upgrade value `chosen` names only protocols the request's Upgrade value
// `offered` listed (RFC 9110 7.8), and at least one.
bool upgrade_offered(std::string_view offered, std::string_view chosen) noexcept;
// True when an Upgrade value names h2c among its protocols (any element, any case, with a
// version or a draft's suffix): such a request is not an upgrade for Berth.
bool offers_h2c(std::string_view upgrade) noexcept;

}  // namespace berth::http
