// Mutation tests of the HTTP/1 wire format: heads and chunked bodies by the ten thousand, derived from
// valid ones by small random edits (seeded, so every run tries the same inputs), checked against
// what must hold whatever the bytes are:
// - a request head Berth accepts is forwarded in a form that a second, independent parser
//   (llhttp, strict) and Berth itself both read with the same method, target and body framing:
//   Berth and the instance agree on where the message ends;
// - a response head Berth accepts reaches the client in a form that Berth's parser and llhttp
//   (as the client would read it) frame as Berth sends the body;
// - a sanitized request path has no empty or dot segment and no needless or lower-case
//   percent-encoding, keeps its query, and is sanitized already (sanitizing is idempotent);
// - a chunked body decodes to the same bytes, ends at the same place or fails, however the input
//   is split, and where it completes it agrees with a plain reading of RFC 9112's grammar.
// Under the sanitizer build (CI) the same inputs also check memory safety. To look further than
// the fixed inputs: BERTH_FUZZ_SEED=<n> (other inputs) and BERTH_FUZZ_SCALE=<k> (k times as many);
// BERTH_FUZZ_SHOW=1 also prints the heads Berth accepts that llhttp refuses as they came, and the
// bodies Berth refuses that the grammar allows (none of either is a failure).
#include <catch2/catch.hpp>
#include <llhttp.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_helpers.h"
#include "proxy/http/http_head.h"
#include "proxy/http/http_rewrite.h"
#include "proxy/http/message_parser.h"
#include "proxy/http/request_path.h"

using namespace berth;
using namespace berth::http;
using fuzz::fuzz_count;
using fuzz::fuzz_rng;
using fuzz::shown;

namespace {

// Tokens the edits put in: bytes and lines that matter to HTTP/1 framing.
const std::vector<std::string> kInteresting = {
    " ", "\t", "\r", "\n", "\r\n", ":", ",", ";", std::string(1, '\0'), "\x80", "\xff", "\"", "0", "-", "+", "\x0b", "\x0c",
    "chunked", "identity", "gzip", "Content-Length: 5\r\n", "Content-Length: 0\r\n",
    "Content-Length: 5, 5\r\n", "Content-Length:  7 \r\n", "Transfer-Encoding: chunked\r\n",
    "Transfer-Encoding: identity\r\n", "Transfer-Encoding: gzip, chunked\r\n", "Transfer-Encoding : chunked\r\n",
    " Transfer-Encoding: chunked\r\n", "Host: other.test\r\n", "Connection: close, upgrade\r\n",
    "Upgrade: websocket\r\n", "Expect: 100-continue\r\n", "X-Folded: a\r\n b\r\n", "HTTP/1.0", "HTTP/1.1",
    "http://a.test/x", "GET", "POST", "HEAD", "%", "%2e", "%2F", "/..", "/.", "//", "\\",
};

// --- llhttp as the instance's parser --------------------------------------------------------------

struct LlhttpHead {
  bool ok = false;
  int status = 0;  // a response's
  std::string method, url;
  bool chunked = false;
  bool has_content_length = false;
  uint64_t content_length = 0;
  std::string error;
};

LlhttpHead llhttp_read_head(std::string_view head, llhttp_type_t type = HTTP_REQUEST) {
  struct Ctx {
    std::string url;
  } ctx;
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_url = [](llhttp_t* p, const char* at, size_t n) {
    static_cast<Ctx*>(p->data)->url.append(at, n);
    return 0;
  };
  settings.on_headers_complete = [](llhttp_t*) { return static_cast<int>(HPE_PAUSED); };
  llhttp_t parser;
  llhttp_init(&parser, type, &settings);
  parser.data = &ctx;
  const llhttp_errno_t err = llhttp_execute(&parser, head.data(), head.size());
  LlhttpHead out;
  if (err != HPE_PAUSED) {
    out.error = std::string(llhttp_errno_name(err)) + ": " + (llhttp_get_error_reason(&parser) ? llhttp_get_error_reason(&parser) : "");
    return out;
  }
  out.ok = true;
  out.status = llhttp_get_status_code(&parser);
  if (type == HTTP_REQUEST) out.method = llhttp_method_name(static_cast<llhttp_method_t>(llhttp_get_method(&parser)));
  out.url = ctx.url;
  out.chunked = (parser.flags & F_CHUNKED) != 0;
  out.has_content_length = (parser.flags & F_CONTENT_LENGTH) != 0;
  out.content_length = out.has_content_length ? parser.content_length : 0;
  return out;
}

// llhttp found the body where Berth declared it: `framing`, `length` bytes for a sized one.
void check_same_framing(const LlhttpHead& ll, Framing framing, uint64_t length) {
  CHECK(ll.chunked == (framing == Framing::kChunked));
  switch (framing) {
    case Framing::kContentLength:
      CHECK(ll.has_content_length);
      CHECK(ll.content_length == length);
      break;
    case Framing::kNone:  // no body: no length, or 0
      CHECK((!ll.has_content_length || ll.content_length == 0));
      break;
    default:  // chunked, or until the close
      CHECK_FALSE(ll.has_content_length);
  }
}

const std::vector<std::string> kRequestSeeds = {
    "GET /a/b?c=d HTTP/1.1\r\nHost: a.test\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
    "POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
    "POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n",
    "PUT /x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n",
    "GET http://a.test:8080/abs?q HTTP/1.1\r\nHost: a.test:8080\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "GET /old HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n",
    "POST /e HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\nContent-Length: 3\r\nX-Forwarded-For: 1.2.3.4\r\n"
    "X-Request-Id: abc\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n",
    "DELETE /r HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nTE: trailers\r\nTrailer: X-T\r\n\r\n",
};

}  // namespace

TEST_CASE("mutated request heads: what Berth forwards, the instance frames as Berth does",
          "[http_head][smuggling][fuzz]") {
  std::mt19937_64 rng = fuzz_rng(20261205);
  Limits limits;
  int accepted = 0, refused = 0, incomplete = 0, unknown_method = 0;
  const int count = fuzz_count(40000);
  for (int i = 0; i < count; ++i) {
    limits.sanitize_path = i % 2 == 0;  // as Berth reads a client's request, and byte for byte
    const std::string& seed = kRequestSeeds[static_cast<size_t>(i) % kRequestSeeds.size()];
    const std::string raw = fuzz::mutate(seed, rng, kInteresting);
    const size_t head_len = find_head_end(raw.data(), raw.size(), 0);
    if (head_len == 0) {
      ++incomplete;
      continue;
    }
    const std::string_view head(raw.data(), head_len);
    RequestHead req;
    if (!parse_request_head(head, limits, req).ok()) {
      ++refused;
      continue;
    }
    ++accepted;
    INFO("input: " << shown(head));
    if (std::getenv("BERTH_FUZZ_SHOW")) {
      const LlhttpHead raw_ll = llhttp_read_head(head);
      if (!raw_ll.ok && raw_ll.error.rfind("HPE_INVALID_METHOD", 0) != 0) WARN("llhttp refuses: " << raw_ll.error << " | " << shown(head));
    }
    std::string out;
    ForwardInfo info{"10.9.8.7", "http", 8080, "gen-id"};
    build_upstream_request(req, info, out);
    INFO("forwarded: " << shown(out));

    // Berth's own parser reads its output the same way.
    RequestHead again;
    REQUIRE(parse_request_head(out, limits, again).ok());
    CHECK(again.method == req.method);
    CHECK(again.path == req.path);
    CHECK(again.framing == req.framing);
    CHECK(again.content_length == req.content_length);

    // And so does llhttp, as an instance would.
    const LlhttpHead ll = llhttp_read_head(out);
    INFO("llhttp: " << ll.error);
    // llhttp knows a fixed list of methods; Berth passes any token (RFC 9110 section 9.1).
    if (ll.error.rfind("HPE_INVALID_METHOD", 0) == 0) {
      ++unknown_method;
      continue;
    }
    REQUIRE(ll.ok);
    CHECK(ll.method == req.method);
    CHECK(ll.url == req.path);
    check_same_framing(ll, req.framing, req.content_length);
  }
  INFO("accepted " << accepted << " (" << unknown_method << " with a method llhttp does not know), refused "
                    << refused << ", incomplete " << incomplete);
  // The mutations reach both sides of the parser's decisions.
  CHECK(accepted > 2000);
  CHECK(refused > 2000);
}

namespace {

const std::vector<std::string> kResponseSeeds = {
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\r\n",
    "HTTP/1.1 200 OK\r\nServer: s\r\n\r\n",
    "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n",
    "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
    "HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\nETag: \"x\"\r\n\r\n",
    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nTrailer: X-T\r\nKeep-Alive: timeout=5\r\n\r\n",
    "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
};

}  // namespace

TEST_CASE("mutated response heads: what Berth sends the client, the client frames as Berth does",
          "[http_head][smuggling][fuzz]") {
  std::mt19937_64 rng = fuzz_rng(12052026);
  const Limits limits;
  int accepted = 0, refused = 0;
  const int count = fuzz_count(40000);
  for (int i = 0; i < count; ++i) {
    const std::string& seed = kResponseSeeds[static_cast<size_t>(i) % kResponseSeeds.size()];
    const std::string raw = fuzz::mutate(seed, rng, kInteresting);
    const size_t head_len = find_head_end(raw.data(), raw.size(), 0);
    if (head_len == 0) continue;
    const std::string_view head(raw.data(), head_len);
    const bool to_head = i % 5 == 0;          // the answer to a HEAD request
    const uint8_t client_minor = i % 7 == 0 ? 0 : 1;
    ResponseHead resp;
    if (!parse_response_head(head, limits, to_head, resp).ok()) {
      ++refused;
      continue;
    }
    ++accepted;
    INFO("input: " << shown(head) << (to_head ? " (to HEAD)" : "") << " client HTTP/1." << int{client_minor});
    const ResponsePlan plan = plan_response(resp, client_minor, false);
    std::string out;
    build_client_response(resp, plan, false, out);
    INFO("sent: " << shown(out));

    ResponseHead again;
    REQUIRE(parse_response_head(out, limits, to_head, again).ok());
    CHECK(again.status == resp.status);
    CHECK(again.framing == plan.to_client);
    if (plan.to_client == Framing::kContentLength) CHECK(again.content_length == resp.content_length);

    const LlhttpHead ll = llhttp_read_head(out, HTTP_RESPONSE);
    INFO("llhttp: " << ll.error);
    REQUIRE(ll.ok);
    CHECK(ll.status == resp.status);
    // Where a body follows the head, the client must find it where Berth puts it.
    if (to_head || resp.status < 200 || resp.status == 204 || resp.status == 304) continue;
    check_same_framing(ll, plan.to_client, resp.content_length);
  }
  INFO("accepted " << accepted << ", refused " << refused);
  CHECK(accepted > 2000);
  CHECK(refused > 2000);
}

// --- request paths ---

namespace {

bool hex_upper(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

const std::vector<std::string> kPathSeeds = {
    "/admin/users?id=7", "/a/b/../c/./d", "/%61%62%2F%2e%2E/x", "//x//y/", "/a;b/c;d=1", "/public/%2e%2e/admin?x=/../y",
    "/~user/%7Efile.txt", "/a/b/c/../../..", "/",
};

}  // namespace

TEST_CASE("mutated request paths: sanitized once and for all", "[request_path][fuzz]") {
  std::mt19937_64 rng = fuzz_rng(7122026);
  int changed = 0, refused = 0;
  const int count = fuzz_count(40000);
  for (int i = 0; i < count; ++i) {
    std::string in = fuzz::mutate(kPathSeeds[static_cast<size_t>(i) % kPathSeeds.size()], rng, kInteresting);
    if (in.empty() || in[0] != '/') in.insert(0, 1, '/');
    INFO("input: " << shown(in));
    std::string out;
    const char* error = "";
    const PathSanitize r = sanitize_path(in, out, &error);
    if (r == PathSanitize::kInvalid) {
      ++refused;
      continue;
    }
    if (r == PathSanitize::kChanged) ++changed;
    const std::string_view result = r == PathSanitize::kChanged ? std::string_view(out) : std::string_view(in);
    INFO("sanitized: " << shown(result));
    const size_t q_in = in.find('?'), q_out = result.find('?');
    CHECK(result.substr(q_out == std::string_view::npos ? result.size() : q_out) ==
          std::string_view(in).substr(q_in == std::string::npos ? in.size() : q_in));
    const std::string_view path = result.substr(0, q_out);
    REQUIRE(!path.empty());
    CHECK(path[0] == '/');
    CHECK(path.find("//") == std::string_view::npos);
    for (size_t at = 0; at != std::string_view::npos; at = path.find('/', at + 1)) {
      const size_t end = path.find('/', at + 1);
      const std::string_view segment = path.substr(at + 1, end == std::string_view::npos ? end : end - at - 1);
      CHECK(segment != ".");
      CHECK(segment != "..");
    }
    for (size_t k = 0; k < path.size(); ++k) {
      if (path[k] != '%') continue;
      REQUIRE(k + 2 < path.size());
      CHECK(hex_upper(path[k + 1]));
      CHECK(hex_upper(path[k + 2]));
      const int v = std::stoi(std::string(path.substr(k + 1, 2)), nullptr, 16);
      CHECK_FALSE((std::isalnum(v) || v == '-' || v == '.' || v == '_' || v == '~'));
    }
    std::string again;
    CHECK(sanitize_path(result, again, &error) == PathSanitize::kUnchanged);
  }
  INFO("changed " << changed << ", refused " << refused);
  CHECK(changed > 2000);
  CHECK(refused > 500);
}

// --- chunked bodies -------------------------------------------------------------------------------

namespace {

// RFC 9112 section 7.1, read plainly: chunk-size [chunk-ext] CRLF data CRLF ... last-chunk
// trailer-section CRLF, with chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
struct Reference {
  enum { kComplete, kIncomplete, kError } state = kIncomplete;
  size_t consumed = 0;
  std::string body;
};

bool tchar(unsigned char c) { return is_token_char(c); }

Reference reference_chunked(std::string_view in) {
  Reference r;
  size_t i = 0;
  auto need = [&](size_t n) { return i + n <= in.size(); };
  auto bws = [&] {
    while (i < in.size() && (in[i] == ' ' || in[i] == '\t')) ++i;
  };
  auto token = [&] {
    const size_t start = i;
    while (i < in.size() && tchar(static_cast<unsigned char>(in[i]))) ++i;
    return i > start;
  };
  // 1: fine, 0: ran out of input, -1: invalid
  auto quoted = [&]() -> int {
    ++i;  // the opening quote
    while (i < in.size()) {
      const unsigned char c = static_cast<unsigned char>(in[i]);
      if (c == '"') {
        ++i;
        return 1;
      }
      if (c == '\\') {
        if (!need(2)) return 0;
        const unsigned char q = static_cast<unsigned char>(in[i + 1]);
        if (!(q == '\t' || (q >= 0x20 && q != 0x7f))) return -1;
        i += 2;
        continue;
      }
      if (!(c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80))
        return -1;
      ++i;
    }
    return 0;
  };
  auto crlf = [&]() -> int {
    if (!need(1)) return 0;
    if (in[i] != '\r') return -1;
    if (!need(2)) return 0;
    if (in[i + 1] != '\n') return -1;
    i += 2;
    return 1;
  };
  auto fail = [&] {
    r.state = Reference::kError;
    return r;
  };
  for (;;) {
    // chunk-size
    uint64_t size = 0;
    const size_t start = i;
    while (i < in.size() && std::isxdigit(static_cast<unsigned char>(in[i]))) {
      if (size >> 60) return fail();
      const char c = in[i++];
      size = size * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    if (i == in.size()) return r;
    if (i == start) return fail();
    // chunk-ext
    for (;;) {
      const size_t before_bws = i;
      bws();
      if (i == in.size()) return r;
      if (in[i] != ';') {
        if (i != before_bws) return fail();  // BWS only before a ';'
        break;
      }
      ++i;
      bws();
      if (i == in.size()) return r;
      if (!token()) return fail();
      bws();
      if (i == in.size()) return r;
      if (in[i] == '=') {
        ++i;
        bws();
        if (i == in.size()) return r;
        if (in[i] == '"') {
          const int q = quoted();
          if (q <= 0) return q == 0 ? r : fail();
        } else if (!token()) {
          return i == in.size() ? r : fail();
        }
      }
    }
    if (const int c = crlf(); c <= 0) return c == 0 ? r : fail();
    if (size == 0) break;
    if (!need(size)) return r;
    r.body.append(in.substr(i, size));
    i += size;
    if (const int c = crlf(); c <= 0) return c == 0 ? r : fail();
  }
  // trailer-section: field-line CRLF, then CRLF
  for (;;) {
    if (!need(1)) return r;
    if (in[i] == '\r') {
      if (const int c = crlf(); c <= 0) return c == 0 ? r : fail();
      r.state = Reference::kComplete;
      r.consumed = i;
      return r;
    }
    if (!token()) return i == in.size() ? r : fail();
    if (i == in.size()) return r;
    if (in[i] != ':') return fail();
    ++i;
    while (i < in.size() && in[i] != '\r' && in[i] != '\n') {
      const unsigned char c = static_cast<unsigned char>(in[i]);
      if (c < 0x20 && c != '\t') return fail();
      if (c == 0x7f) return fail();
      ++i;
    }
    if (const int c = crlf(); c <= 0) return c == 0 ? r : fail();
  }
}

struct Sink : BodySink {
  std::string body;
  void on_body_data(const char* d, size_t n) override { body.append(d, n); }
};

struct Parsed {
  MessageParser::State state = MessageParser::State::kBody;
  size_t consumed = 0;
  std::string body;
  bool operator==(const Parsed&) const = default;
};
std::string describe(const Parsed& p) {
  static const char* kStates[] = {"body", "complete", "upgrade", "error"};
  return std::string(kStates[static_cast<int>(p.state)]) + " consumed=" + std::to_string(p.consumed) + " body=" + shown(p.body);
}

// Feeds `in` in the pieces `cuts` makes of it, as a connection would, until the message ends.
// The body of a request (a client's) or of a response (an instance's).
Parsed parse_chunked(std::string_view in, const std::vector<size_t>& cuts, llhttp_type_t type = HTTP_REQUEST) {
  Sink sink;
  MessageParser p;
  Parsed out;
  MessageParser::Result r = p.start(Framing::kChunked, 0, type, &sink);
  size_t from = 0;
  for (size_t k = 0; k <= cuts.size() && r.state == MessageParser::State::kBody; ++k) {
    const size_t to = k < cuts.size() ? cuts[k] : in.size();
    if (to < from) continue;
    r = p.feed(in.data() + from, to - from);
    out.consumed += r.consumed;
    from = to;
  }
  out.state = r.state;
  out.body = sink.body;
  if (r.state == MessageParser::State::kError) out.consumed = 0;  // nothing is kept of a refused message
  return out;
}

const std::vector<std::string> kChunkedSeeds = {
    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "a;name=value\r\n0123456789\r\n1;q=\"quoted;\\\"x\"\r\n!\r\n0\r\n\r\n",
    "4;c=\"d; e\"\r\nwxyz\r\n3;a;b=c\r\nxyz\r\n0\r\n\r\n",
    "3;a=1;b=2\r\nxyz\r\n2;c=3;d;e=\"f\"\r\nab\r\n0;g=4;h=5\r\n\r\n",
    "3\r\nabc\r\n0\r\nX-Trailer: yes\r\nX-Other: 1\r\n\r\n",
    "000\r\n\r\n",
    "F\r\n0123456789abcde\r\n0;last\r\n\r\n",
    "2\r\nhi\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
};

}  // namespace

TEST_CASE("mutated chunked bodies: the same answer at every split and from either side, and RFC 9112's where complete",
          "[framing][smuggling][fuzz]") {
  std::mt19937_64 rng = fuzz_rng(5122026);
  int complete = 0, errors = 0, disagree_stricter = 0;
  const int count = fuzz_count(20000);
  for (int i = 0; i < count; ++i) {
    const std::string& seed = kChunkedSeeds[static_cast<size_t>(i) % kChunkedSeeds.size()];
    const std::string in = fuzz::mutate(seed, rng, kInteresting);
    INFO("input: " << shown(in));
    const Parsed whole = parse_chunked(in, {});
    // Three random ways of splitting it, and byte by byte.
    for (int s = 0; s < 3; ++s) {
      std::vector<size_t> cuts;
      const size_t n = 1 + rng() % 4;
      for (size_t k = 0; k < n; ++k) cuts.push_back(in.empty() ? 0 : rng() % (in.size() + 1));
      std::sort(cuts.begin(), cuts.end());
      CHECK(describe(parse_chunked(in, cuts)) == describe(whole));
    }
    std::vector<size_t> every(in.size());
    for (size_t k = 0; k < in.size(); ++k) every[k] = k + 1;
    CHECK(describe(parse_chunked(in, every)) == describe(whole));
    // An instance's response body is read by the same rules.
    CHECK(describe(parse_chunked(in, {}, HTTP_RESPONSE)) == describe(whole));

    const Reference ref = reference_chunked(in);
    INFO("berth state " << static_cast<int>(whole.state) << " consumed " << whole.consumed << "; reference state "
                        << ref.state << " consumed " << ref.consumed);
    if (whole.state == MessageParser::State::kComplete) {
      ++complete;
      // Berth never ends a message where the grammar does not.
      REQUIRE(ref.state == Reference::kComplete);
      CHECK(whole.consumed == ref.consumed);
      CHECK(whole.body == ref.body);
    } else if (whole.state == MessageParser::State::kError) {
      ++errors;
      if (ref.state != Reference::kError) {
        ++disagree_stricter;
        if (std::getenv("BERTH_FUZZ_SHOW") && ref.state == Reference::kComplete) WARN("stricter: " << shown(in));
      }
    } else {
      // Berth wants more: the grammar must not have seen the end already.
      CHECK(ref.state != Reference::kComplete);
    }
  }
  INFO("complete " << complete << ", refused " << errors << " (" << disagree_stricter
                   << " that the grammar alone allows)");
  CHECK(complete > 1000);
  CHECK(errors > 1000);
}

namespace {

// Whether `in` is parsed as `want` whole, split once at every byte boundary, byte by byte, and as
// an instance's response body.
void check_every_split(const std::string& in, const Parsed& want, bool every_cut = true) {
  INFO("input: " << shown(in));
  CHECK(describe(parse_chunked(in, {})) == describe(want));
  if (every_cut)
    for (size_t cut = 0; cut <= in.size(); ++cut) {
      INFO("split at " << cut);
      CHECK(describe(parse_chunked(in, {cut})) == describe(want));
    }
  std::vector<size_t> every(in.size());
  for (size_t k = 0; k < in.size(); ++k) every[k] = k + 1;
  CHECK(describe(parse_chunked(in, every)) == describe(want));
  CHECK(describe(parse_chunked(in, {}, HTTP_RESPONSE)) == describe(want));
}

Parsed completed(size_t consumed, std::string body) {
  return {MessageParser::State::kComplete, consumed, std::move(body)};
}
const Parsed kRefused{MessageParser::State::kError, 0, ""};

// A size line of 5 with extensions ";a=<value>" that take `bytes` bytes, ';' and '=' included
// (each extension but the last takes 12: ';', a one-byte name, '=' and a nine-byte value).
std::string extensions_of(size_t bytes) {
  std::string line = "5";
  for (; bytes > 15; bytes -= 12) line += ";a=123456789";
  return line + ";a=" + std::string(bytes - 3, 'v');
}

}  // namespace

TEST_CASE("chunk extensions after a token value: accepted at every split as RFC 9112 allows them",
          "[framing][smuggling]") {
  const std::string end = "\r\nhello\r\n0\r\n\r\n";
  for (const std::string line : {"5;a=1;b=2", "5;a=1;b", "5;a=1;b=2;c=3", "5;a=1;b=\"x;y\";c=3", "5;a=\"x\";b=1;c",
                                 "5;a;b=1;c=2", "5;name=value;n2=v2;n3;n4=\"q\"", "5;a=!#$%&'*+-.^_`|~0;b=2"}) {
    const std::string in = line + end;
    check_every_split(in, completed(in.size(), "hello"));
  }
  // Several chunks, the last one included, each with such extensions; then a pipelined request.
  const std::string body = "3;a=1;b=2\r\nhel\r\n2;c=3;d=4;e\r\nlo\r\n0;f=6;g=7\r\nX-T: 1\r\n\r\n";
  check_every_split(body, completed(body.size(), "hello"));
  check_every_split(body + "GET / HTTP/1.1\r\n\r\n", completed(body.size(), "hello"));
  // The size cap on extensions still counts every extension of a line, however many follow a
  // token value: up to it is accepted, one byte more is not.
  const std::string at_cap = extensions_of(4096) + end;
  check_every_split(at_cap, completed(at_cap.size(), "hello"), false);
}

TEST_CASE("chunk extensions after a token value: what the grammar refuses stays refused at every split",
          "[framing][smuggling]") {
  const std::string end = "\r\nhello\r\n0\r\n\r\n";
  const std::vector<std::string> lines = {
       "5;a=1;;b", "5;a=1;", "5;a=1;=2", "5;a=1;b=", "5;a=1;b=2;", "5;a=1;b=2;;c", std::string("5;a=1;\x01") + "b",
        "5;a=1;b=\x01", "5;a=1;b=2\x7f", "5;a=1;b=2 c", "5;a=1;b\"x\"", "5;a=1;b=c\"d\"", "5;a=1;b=\"x",
        "5;a=1;\"b\"=2", "5;a=1;b=2\rJ", "5;a=1;b=2\n", "5;a=1;b=2\r",
        // Berth, like llhttp, takes no whitespace around ';' and '=' (RFC 9112's BWS).
        "5;a=1; b=2", "5;a=1 ;b=2", "5;a=1;b =2", "5;a=1;b= 2", "5;a=1;b=2 "};
  for (const std::string& line : lines) check_every_split(line + end, kRefused);
  // A later size line is refused after the first chunk's data went on.
  const Parsed refused_after_hel{MessageParser::State::kError, 0, "hel"};
  check_every_split("3;a=1;b=2\r\nhel\r\n2;c=3;;d\r\nlo\r\n0\r\n\r\n", refused_after_hel);
  check_every_split("3;a=1;b=2\r\nhel\r\n0;c=3;\r\n\r\n", refused_after_hel);
  // Over the cap, the extensions spread over many size-line pieces.
  check_every_split(extensions_of(4097) + end, kRefused, false);
  check_every_split(extensions_of(20000) + end, kRefused, false);
}
