// berth-test-origin: a small scripted HTTP/1.1 origin server for Berth's integration tests.
//
//   berth-test-origin [--port N] [--name NAME]
//
// Listens on 127.0.0.1:N (0 = ephemeral), prints "PORT <n>\n" to stdout, then serves until
// SIGTERM/SIGINT. One thread per connection; keep-alive, pipelining, Content-Length and
// chunked request bodies. Behaviour is chosen by query parameters on any path:
//   status=NNN size=N chunked=1 delay_ms=N body_delay_ms=N close=1 abort=1 read_delay_ms=N (before
//   reading the request body) read_rate=N (the request body read at about N bytes/s)
//   upgrade_as=P (a 101 naming P; "-": none) tunnel=echo|count|bye (after the 101) interim=N (N 103 responses first) abort_after_headers=1 (half the body, then FIN) reset_mid_body=1 (half, then RST) no_length=1 header=Name:Value bad_framing=1 expect100=0|1
//   respond_first=1 (the whole answer, size=N of the pattern with Connection: close, before the
//   request body is read; then the body is read and the connection closed)
//   not_a_head=1 (after any interim responses: bytes that are no status line, connection held)
//   bad_chunk=1 (a chunked head and, in the same write, a chunk-size line that is no number;
//   connection held)
//   stale_after_ms=N (a keep-alive answer, then N ms later the connection is reset without
//   reading what came meanwhile: a server that closes idle connections on its own)
//   reset_in_head=N (after any interim responses: the first N bytes of the head, 200 ms, a reset)
//   interim_delay_ms=N (between the interim responses and the final head)
//   smuggle=1 (a whole extra response, "X-Smuggled: yes", in the same write as a response without
//   a body or a small one: a confused instance)
//   slow=NAME:MS (only the origin named NAME waits MS) fail=NAME:CODE (only NAME answers CODE)
//   drip=NAME:MS (only NAME sends its body one byte every MS ms)
//   reset_on=NAME [reset_after=N] (only the origin named NAME resets the connection: after
//   reading the whole request, or after the first N raw bytes of its body) [reset_delay_ms=N]
//   (having read the whole request, it waits N ms before the reset)
// Special paths: /echo, /echo_body (answers with the request body), /upload, /download,
// /auth (a forward-authentication service keyed on the Authorization header),
// /__stats, /__seen?marker=X, /__reset, /__recorded?marker=X (head and body of the first request
// sent with an X-Record-Body header whose head has the marker),
// /__health (answers the status set by /__health_set?status=N, default 200).
// Bodies produced by size=N are the repeating pattern kPattern[i % 62] (tests rely on it).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr std::string_view kPattern =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr size_t kMaxHead = 1 << 20;  // 1 MiB of request head at most
constexpr size_t kBlock = 64 * 1024;

std::string g_name = "origin";
int g_signal_pipe[2] = {-1, -1};

// ---- counters ---------------------------------------------------------------------------
std::mutex g_mu;
uint64_t g_connections = 0;
uint64_t g_requests = 0;
std::vector<std::string> g_heads;  // raw heads of counted requests, for /__seen
std::vector<std::string> g_recorded;  // head + body of requests with X-Record-Body, for /__recorded
std::atomic<uint64_t> g_conn_ids{0};
uint64_t g_epoch = 0;
std::atomic<int> g_health_status{200};  // what /__health answers  // bumped by /__reset so a connection counted before it counts again

// ---- small helpers ----------------------------------------------------------------------
std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool icontains_token(std::string_view list, std::string_view token) {
  // Comma-separated list contains token (case-insensitive).
  std::string l = lower(list);
  std::string t = lower(token);
  size_t start = 0;
  while (start <= l.size()) {
    size_t comma = l.find(',', start);
    if (comma == std::string::npos) comma = l.size();
    if (trim(std::string_view(l).substr(start, comma - start)) == t) return true;
    start = comma + 1;
  }
  return false;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string pct_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

uint64_t to_u64(std::string_view s, uint64_t def) {
  if (s.empty()) return def;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return def;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void sleep_ms(uint64_t ms) {
  if (ms) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// The size=N body pattern, starting at absolute offset `offset`, `len` bytes (len <= kBlock).
const std::string& pattern_source() {
  static const std::string p = [] {
    std::string s;
    s.reserve(kBlock + kPattern.size());
    while (s.size() < kBlock + kPattern.size()) s.append(kPattern);
    return s;
  }();
  return p;
}
std::string_view pattern_at(uint64_t offset, size_t len) {
  return std::string_view(pattern_source()).substr(offset % kPattern.size(), len);
}

// ---- buffered connection reader -----------------------------------------------------------
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  // Returns false on EOF or error.
  bool fill() {
    if (pos_ > 0 && pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > 64 * 1024) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char tmp[64 * 1024];
    for (;;) {
      ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(tmp, static_cast<size_t>(n));
      return true;
    }
  }

  size_t available() const { return buf_.size() - pos_; }
  std::string_view pending() const { return std::string_view(buf_).substr(pos_); }
  void skip(size_t n) { pos_ += n; }

  // Reads a request head (up to and including the blank line). Leading empty lines are
  // skipped. nullopt on EOF before a complete head / oversize.
  std::optional<std::string> read_head(bool* eof_clean) {
    *eof_clean = false;
    for (;;) {
      // skip leading CRLF / LF between requests
      while (available() > 0 && (buf_[pos_] == '\r' || buf_[pos_] == '\n')) {
        if (buf_[pos_] == '\r' && available() < 2) break;
        if (buf_[pos_] == '\r' && buf_[pos_ + 1] != '\n') break;
        pos_ += (buf_[pos_] == '\r') ? 2 : 1;
      }
      std::string_view p = pending();
      size_t a = p.find("\r\n\r\n");
      size_t b = p.find("\n\n");
      size_t end = std::string::npos;
      if (a != std::string::npos) end = a + 4;
      if (b != std::string::npos && (end == std::string::npos || b + 2 < end)) end = b + 2;
      if (end != std::string::npos) {
        std::string head(p.substr(0, end));
        pos_ += end;
        return head;
      }
      if (p.size() > kMaxHead) return std::nullopt;
      if (!fill()) {
        *eof_clean = available() == 0;
        return std::nullopt;
      }
    }
  }

  // A line ending in LF (CR stripped), at most max bytes.
  std::optional<std::string> read_line(size_t max = 8192) {
    for (;;) {
      std::string_view p = pending();
      size_t nl = p.find('\n');
      if (nl != std::string::npos) {
        std::string line(p.substr(0, nl));
        pos_ += nl + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (p.size() > max) return std::nullopt;
      if (!fill()) return std::nullopt;
    }
  }

  // Consumes exactly n bytes, handing them to sink. False on EOF.
  bool consume(uint64_t n, const std::function<void(const char*, size_t)>& sink) {
    while (n > 0) {
      if (available() == 0) {
        // Read directly, never past n (so later pipelined bytes stay for the next reader).
        if (n >= 16 * 1024) {
          static thread_local std::vector<char> big(256 * 1024);
          size_t want = static_cast<size_t>(std::min<uint64_t>(n, big.size()));
          ssize_t r = ::recv(fd_, big.data(), want, 0);
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) return false;
          sink(big.data(), static_cast<size_t>(r));
          n -= static_cast<uint64_t>(r);
          continue;
        }
        if (!fill()) return false;
      }
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, available()));
      sink(buf_.data() + pos_, take);
      pos_ += take;
      n -= take;
    }
    return true;
  }

 private:
  int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

// ---- request ----------------------------------------------------------------------------
struct Request {
  std::string raw_head;
  std::string method;
  std::string target;
  std::string path;
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;  // name lower-cased
  std::vector<std::pair<std::string, std::string>> query;    // decoded

  std::optional<std::string> header(std::string_view name) const {
    for (auto& [k, v] : headers)
      if (k == name) return v;
    return std::nullopt;
  }
  std::string all_headers(std::string_view name) const {
    std::string out;
    for (auto& [k, v] : headers)
      if (k == name) {
        if (!out.empty()) out += ", ";
        out += v;
      }
    return out;
  }
  std::optional<std::string> q(std::string_view name) const {
    for (auto& [k, v] : query)
      if (k == name) return v;
    return std::nullopt;
  }
  uint64_t qnum(std::string_view name, uint64_t def) const {
    auto v = q(name);
    return v ? to_u64(*v, def) : def;
  }
  bool qflag(std::string_view name) const {
    auto v = q(name);
    return v && *v != "0" && *v != "false";
  }
};

bool parse_head(const std::string& raw, Request& req) {
  req.raw_head = raw;
  size_t pos = 0;
  auto next_line = [&](std::string& line) {
    size_t nl = raw.find('\n', pos);
    if (nl == std::string::npos) return false;
    line = raw.substr(pos, nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    pos = nl + 1;
    return true;
  };
  std::string line;
  if (!next_line(line)) return false;
  size_t sp1 = line.find(' ');
  size_t sp2 = line.rfind(' ');
  if (sp1 == std::string::npos || sp2 == sp1) return false;
  req.method = line.substr(0, sp1);
  req.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  req.version = line.substr(sp2 + 1);
  if (req.version != "HTTP/1.1" && req.version != "HTTP/1.0") return false;
  while (next_line(line)) {
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return false;
    req.headers.emplace_back(lower(line.substr(0, colon)),
                             std::string(trim(std::string_view(line).substr(colon + 1))));
  }
  std::string_view t = req.target;
  // absolute-form: strip scheme://authority
  if (size_t s = t.find("://"); s != std::string::npos && t.front() != '/') {
    size_t slash = t.find('/', s + 3);
    t = slash == std::string::npos ? std::string_view("/") : t.substr(slash);
  }
  size_t qm = t.find('?');
  req.path = std::string(t.substr(0, qm));
  if (qm != std::string::npos) {
    std::string_view qs = t.substr(qm + 1);
    while (!qs.empty()) {
      size_t amp = qs.find('&');
      std::string_view kv = qs.substr(0, amp);
      size_t eq = kv.find('=');
      if (!kv.empty())
        req.query.emplace_back(pct_decode(kv.substr(0, eq)),
                               eq == std::string::npos ? std::string() : pct_decode(kv.substr(eq + 1)));
      if (amp == std::string::npos) break;
      qs.remove_prefix(amp + 1);
    }
  }
  return true;
}

// ---- body reading -------------------------------------------------------------------------
struct BodyResult {
  bool ok = true;
  uint64_t bytes = 0;
  uint32_t sum = 0;
};

BodyResult read_body(Reader& r, const Request& req, std::string* copy = nullptr) {
  BodyResult res;
  const uint64_t rate = req.qnum("read_rate", 0);  // bytes/s: an instance reading the body slowly
  auto sink = [&](const char* p, size_t n) {
    if (rate) std::this_thread::sleep_for(std::chrono::microseconds(n * 1'000'000 / rate));
    if (copy) copy->append(p, n);
    res.bytes += n;
    uint32_t s = res.sum;
    for (size_t i = 0; i < n; ++i) s += static_cast<unsigned char>(p[i]);
    res.sum = s;
  };
  auto te = req.header("transfer-encoding");
  if (te && icontains_token(*te, "chunked")) {
    for (;;) {
      auto line = r.read_line();
      if (!line) return {false, res.bytes, res.sum};
      std::string_view sz = *line;
      if (size_t semi = sz.find(';'); semi != std::string::npos) sz = sz.substr(0, semi);
      sz = trim(sz);
      if (sz.empty() || sz.size() > 15) return {false, res.bytes, res.sum};
      uint64_t n = 0;
      for (char c : sz) {
        int h = hexval(c);
        if (h < 0) return {false, res.bytes, res.sum};
        n = n * 16 + static_cast<uint64_t>(h);
      }
      if (n == 0) {
        for (;;) {  // trailers
          auto tl = r.read_line();
          if (!tl) return {false, res.bytes, res.sum};
          if (tl->empty()) return res;
        }
      }
      if (!r.consume(n, sink)) return {false, res.bytes, res.sum};
      auto crlf = r.read_line(2);
      if (!crlf || !crlf->empty()) return {false, res.bytes, res.sum};
    }
  }
  if (auto cl = req.header("content-length")) {
    uint64_t n = to_u64(trim(*cl), UINT64_MAX);
    if (n == UINT64_MAX) return {false, 0, 0};
    if (!r.consume(n, sink)) return {false, res.bytes, res.sum};
  }
  return res;
}

// ---- responses --------------------------------------------------------------------------
const char* reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

std::string chunk_frame(std::string_view data) {
  char hex[32];
  std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
  std::string out = hex;
  out.append(data);
  out += "\r\n";
  return out;
}

void abort_socket(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
}

// KEY=NAME:VALUE: VALUE as a number when NAME is this origin's name (one instance of several
// slow, failing or dripping), else nullopt.
std::optional<uint64_t> for_this_origin(const Request& req, std::string_view key) {
  auto v = req.q(key);
  if (!v) return std::nullopt;
  const size_t colon = v->find(':');
  if (colon == std::string::npos || v->substr(0, colon) != g_name) return std::nullopt;
  return std::strtoull(v->c_str() + colon + 1, nullptr, 10);
}

// reset_on=NAME: this origin is the one that resets.
bool resets_here(const Request& req) {
  auto who = req.q("reset_on");
  return who && *who == g_name;
}

// Reads until the peer's end (or an error), handing each piece to `piece`, which may stop it
// early by returning false.
template <typename Piece>
void recv_until_end(int fd, Piece piece) {
  char buf[64 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || !piece(std::string_view(buf, static_cast<size_t>(n)))) return;
  }
}

void tunnel_echo(int fd, Reader& r) {
  if (r.available()) {
    if (!send_all(fd, r.pending())) return;
    r.skip(r.available());
  }
  recv_until_end(fd, [fd](std::string_view piece) { return send_all(fd, piece); });
  ::shutdown(fd, SHUT_WR);
}

// tunnel=count: a slow reader (it starts after 500 ms) that counts what the client sends until
// its end, then answers "got N\n" and ends too: what a half-close must let through both ways.
void tunnel_count(int fd, Reader& r) {
  sleep_ms(500);
  uint64_t total = r.available();
  r.skip(r.available());
  recv_until_end(fd, [&total](std::string_view piece) {
    total += piece.size();
    return true;
  });
  send_all(fd, "got " + std::to_string(total) + "\n");
  ::shutdown(fd, SHUT_WR);
}

// tunnel=bye: "BYE\n" and the origin's end at once, then it reads what the client still sends
// until the client ends, and records it as a head ("TUNNEL <bytes>") for /__seen.
void tunnel_bye(int fd, Reader& r) {
  send_all(fd, "BYE\n");
  ::shutdown(fd, SHUT_WR);
  std::string got(r.pending());
  r.skip(r.available());
  recv_until_end(fd, [&got](std::string_view piece) {
    got.append(piece);
    return got.size() < 1'000'000;
  });
  std::lock_guard lk(g_mu);
  g_heads.push_back("TUNNEL " + got);
}

enum class After { KeepAlive, Close, Abort, Closed };

// Serves one request; returns what to do with the connection.
After serve(int fd, Reader& r, Request& req, uint64_t conn_id, uint64_t* counted_epoch) {
  const bool control = req.path.rfind("/__", 0) == 0;
  if (!control) {
    std::lock_guard lk(g_mu);
    if (*counted_epoch != g_epoch + 1) {
      *counted_epoch = g_epoch + 1;
      ++g_connections;
    }
    ++g_requests;
    if (g_heads.size() < 1'000'000) g_heads.push_back(req.raw_head);
  }

  const bool http10 = req.version == "HTTP/1.0";
  std::string conn_hdr = lower(req.all_headers("connection"));
  bool keep = http10 ? icontains_token(conn_hdr, "keep-alive") : !icontains_token(conn_hdr, "close");
  const bool head_method = req.method == "HEAD";

  // Upgrade (WebSocket-style echo tunnel).
  auto upgrade = req.header("upgrade");
  if (upgrade && icontains_token(conn_hdr, "upgrade") && icontains_token(*upgrade, "websocket")) {
    sleep_ms(req.qnum("delay_ms", 0));  // an instance slow to answer the upgrade
    // upgrade_as=P: the 101 names protocol P instead ("-": no Upgrade field at all).
    const std::string as = req.q("upgrade_as").value_or("websocket");
    std::string resp = "HTTP/1.1 101 Switching Protocols\r\n" +
                       (as == "-" ? std::string() : "Upgrade: " + as + "\r\n") +
                       "Connection: Upgrade\r\nx-origin-name: " + g_name + "\r\n\r\n";
    if (!send_all(fd, resp)) return After::Closed;
    const std::string mode = req.q("tunnel").value_or("echo");
    if (mode == "count") tunnel_count(fd, r);
    else if (mode == "bye") tunnel_bye(fd, r);
    else tunnel_echo(fd, r);
    return After::Close;
  }

  // Expect: 100-continue.
  bool expect_continue = false;
  if (auto ex = req.header("expect"); ex && lower(trim(*ex)) == "100-continue") expect_continue = true;
  bool skip_body = false;
  if (expect_continue) {
    if (req.qnum("expect100", 1) != 0) {
      if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return After::Closed;
    } else {
      skip_body = true;
      keep = false;
    }
  }

  if (req.qflag("respond_first")) {
    // An instance that answers while it reads the body: the answer is complete at once.
    const uint64_t n = req.qnum("size", 0);
    std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) + "\r\nConnection: close\r\n\r\n";
    for (uint64_t off = 0; off < n; off += kBlock) resp.append(pattern_at(off, std::min<uint64_t>(kBlock, n - off)));
    if (!send_all(fd, resp)) return After::Closed;
    read_body(r, req);
    return After::Close;
  }
  if (resets_here(req) && req.q("reset_after")) {
    if (!r.consume(req.qnum("reset_after", 0), [](const char*, size_t) {})) return After::Closed;
    return After::Abort;
  }
  BodyResult body;
  std::string body_copy;
  sleep_ms(req.qnum("read_delay_ms", 0));  // an instance that reads the body this much later
  if (!skip_body) {
    const bool record = !control && req.header("x-record-body").has_value();
    body = read_body(r, req, req.path == "/echo_body" || record ? &body_copy : nullptr);
    if (record && body.ok) {
      std::lock_guard lk(g_mu);
      g_recorded.push_back(req.raw_head + body_copy);
    }
    if (!body.ok) {
      send_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad body\r\n\r\n");
      return After::Close;
    }
  }

  if (req.qflag("abort")) return After::Abort;
  if (resets_here(req)) {
    sleep_ms(req.qnum("reset_delay_ms", 0));
    return After::Abort;
  }
  sleep_ms(req.qnum("delay_ms", 0));
  // slow=NAME:MS: only the origin called NAME waits MS (one slow instance of several).
  if (auto slow = for_this_origin(req, "slow")) sleep_ms(*slow);

  // Control endpoints.
  int status = static_cast<int>(req.qnum("status", 200));
  // fail=NAME:CODE: only the origin called NAME answers CODE (a failing shadow of several).
  if (auto fail = for_this_origin(req, "fail")) status = static_cast<int>(*fail);
  std::string content;
  bool have_content = false;
  uint64_t pattern_size = 0;
  bool use_pattern = false;
  std::vector<std::string> extra;

  if (req.path == "/__stats") {
    std::lock_guard lk(g_mu);
    content = "{\"connections\":" + std::to_string(g_connections) +
              ",\"requests\":" + std::to_string(g_requests) + "}";
    have_content = true;
    extra.push_back("Content-Type: application/json");
  } else if (req.path == "/__seen") {
    std::string marker = req.q("marker").value_or("");
    uint64_t count = 0;
    if (!marker.empty()) {
      std::lock_guard lk(g_mu);
      for (auto& h : g_heads)
        if (h.find(marker) != std::string::npos) ++count;
    }
    content = std::to_string(count);
    have_content = true;
  } else if (req.path == "/__recorded") {
    // The first request recorded (X-Record-Body) whose head has the marker: head and body.
    std::string marker = req.q("marker").value_or("");
    status = 404;
    std::lock_guard lk(g_mu);
    for (auto& rec : g_recorded)
      if (!marker.empty() && rec.find(marker) != std::string::npos) {
        content = rec;
        status = 200;
        break;
      }
    have_content = true;
  } else if (req.path == "/__health") {
    // Health-check target: answers the status set by /__health_set?status=N (default 200).
    status = g_health_status.load();
    content = "health " + std::to_string(status);
    have_content = true;
  } else if (req.path == "/__health_set") {
    g_health_status = static_cast<int>(req.qnum("status", 200));
    status = 200;
    content = "set";
    have_content = true;
  } else if (req.path == "/__reset") {
    std::lock_guard lk(g_mu);
    g_connections = 0;
    g_requests = 0;
    g_heads.clear();
    g_recorded.clear();
    ++g_epoch;
    content = "reset";
    have_content = true;
  } else if (req.path == "/auth") {
    // A forward-authentication service: "Bearer good" passes as alice, "Bearer login" is sent
    // to log in, anything else is refused with a challenge.
    const std::string credentials = req.header("authorization").value_or("");
    if (credentials == "Bearer good") {
      status = 200;
      extra.push_back("X-User: alice");
      extra.push_back("X-Auth-Other: not-copied");
      content = "ok\n";
    } else if (credentials == "Bearer login") {
      status = 302;
      extra.push_back("Location: http://login.test/?next=1");
      extra.push_back("Set-Cookie: flow=1; HttpOnly");
      content = "to the login page\n";
    } else {
      status = 401;
      extra.push_back("WWW-Authenticate: Bearer realm=\"test\"");
      extra.push_back("Content-Type: application/json");
      content = "{\"error\":\"denied by the auth service\"}";
    }
    have_content = true;
  } else if (req.path == "/echo") {
    content = req.raw_head;
    have_content = true;
    extra.push_back("x-origin-body-bytes: " + std::to_string(body.bytes));
  } else if (req.path == "/echo_body") {
    content = std::move(body_copy);
    have_content = true;
  } else if (req.path == "/upload") {
    content = "bytes=" + std::to_string(body.bytes) + " sum=" + std::to_string(body.sum);
    have_content = true;
  } else if (req.q("size")) {
    pattern_size = req.qnum("size", 0);
    use_pattern = true;
  } else if (req.path == "/download") {
    use_pattern = true;
    pattern_size = 0;
  }
  if (!have_content && !use_pattern) {
    content = "origin=" + g_name + " path=" + req.path + "\n";
  }
  if (!control && req.path != "/echo") extra.push_back("x-origin-body-bytes: " + std::to_string(body.bytes));

  for (auto& [k, v] : req.query)
    if (k == "header") {
      size_t colon = v.find(':');
      if (colon != std::string::npos && colon > 0)
        extra.push_back(v.substr(0, colon) + ": " + std::string(trim(std::string_view(v).substr(colon + 1))));
    }

  const uint64_t body_len = use_pattern ? pattern_size : content.size();
  const bool no_body_status = status == 204 || status == 304 || (status >= 100 && status < 200);
  const bool send_body = !head_method && !no_body_status;
  const bool chunked = req.qflag("chunked") && !no_body_status;
  const bool no_length = req.qflag("no_length");
  const bool bad_framing = req.qflag("bad_framing");
  const bool abort_after_headers = req.qflag("abort_after_headers");
  const bool reset_mid_body = req.qflag("reset_mid_body");  // as abort_after_headers, with a reset
  // bad_framing keeps the connection open on purpose: a proxy that trusts the
  // Content-Length would then find leftover chunk bytes in front of the next response.
  const bool cut_short = abort_after_headers || reset_mid_body;
  if (req.qflag("close") || no_length || cut_short) keep = false;
  if (http10 && chunked) keep = false;

  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  head += "x-origin-name: " + g_name + "\r\n";
  head += "x-origin-conn: " + std::to_string(conn_id) + "\r\n";
  for (auto& e : extra) head += e + "\r\n";
  if (!no_body_status) {
    if (bad_framing) {
      head += "Content-Length: " + std::to_string(body_len) + "\r\nTransfer-Encoding: chunked\r\n";
    } else if (no_length) {
      // neither: the body ends with the connection
    } else if (chunked) {
      head += "Transfer-Encoding: chunked\r\n";
    } else {
      head += "Content-Length: " + std::to_string(body_len) + "\r\n";
    }
  }
  if (!keep) head += "Connection: close\r\n";
  else if (http10) head += "Connection: keep-alive\r\n";
  head += "\r\n";

  // interim=N: N 103 Early Hints before the response (a large N: an instance flooding them).
  for (uint64_t i = 0, n = req.qnum("interim", 0); i < n; ++i)
    if (!send_all(fd, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")) return After::Closed;
  sleep_ms(req.qnum("interim_delay_ms", 0));  // then the final head, this much later
  // not_a_head=1: then bytes that cannot begin a status line and no end of head; the connection
  // stays open (a proxy should not wait for more).
  if (req.qflag("not_a_head")) return send_all(fd, "<html>not a response") ? After::KeepAlive : After::Closed;
  if (req.qflag("bad_chunk"))
    return send_all(fd, "HTTP/1.1 200 OK\r\nx-origin-name: " + g_name +
                            "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
               ? After::KeepAlive
               : After::Closed;
  if (auto cut = req.q("reset_in_head")) {
    const size_t n = std::min<size_t>(std::strtoull(cut->c_str(), nullptr, 10), head.size() - 1);
    if (n > 0 && !send_all(fd, head.substr(0, n))) return After::Closed;
    sleep_ms(200);  // read by the peer before the reset, which would discard them unread
    return After::Abort;
  }

  uint64_t body_delay = req.qnum("body_delay_ms", 0);
  const uint64_t drip_ms = for_this_origin(req, "drip").value_or(0);
  const std::string smuggled =
      req.qflag("smuggle") ? "HTTP/1.1 200 OK\r\nX-Smuggled: yes\r\nContent-Length: 7\r\n\r\nSMUGGLE" : "";
  if (!send_body) {
    if (!send_all(fd, head + smuggled)) return After::Closed;
    return keep ? After::KeepAlive : After::Close;
  }

  // Small bodies go out with the head in one write unless something asks otherwise.
  const bool framed_chunks = chunked || bad_framing;
  if (!use_pattern && !framed_chunks && !body_delay && !cut_short && !drip_ms) {
    if (!send_all(fd, head + content + smuggled)) return After::Closed;
    return keep ? After::KeepAlive : After::Close;
  }

  if (!send_all(fd, head)) return After::Closed;
  sleep_ms(body_delay);

  uint64_t limit = cut_short ? body_len / 2 : body_len;
  uint64_t off = 0;
  // Chunked small bodies are split in two chunks to exercise re-framing.
  size_t piece = drip_ms ? 1 : use_pattern ? kBlock : std::max<size_t>(1, (content.size() + 1) / 2);
  while (off < limit) {
    if (off > 0) sleep_ms(drip_ms);
    size_t len = static_cast<size_t>(std::min<uint64_t>(piece, limit - off));
    std::string_view data = use_pattern ? pattern_at(off, len) : std::string_view(content).substr(off, len);
    bool ok = framed_chunks ? send_all(fd, chunk_frame(data)) : send_all(fd, data);
    if (!ok) return After::Closed;
    off += len;
  }
  if (reset_mid_body) {
    sleep_ms(200);  // the proxy has read and passed on what was sent: the reset comes after it
    return After::Abort;
  }
  if (abort_after_headers) return After::Close;
  if (framed_chunks && !send_all(fd, "0\r\n\r\n")) return After::Closed;
  return keep ? After::KeepAlive : After::Close;
}

void handle_connection(int fd) {
  const uint64_t conn_id = ++g_conn_ids;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  Reader r(fd);
  uint64_t counted_epoch = 0;
  for (;;) {
    bool eof_clean = false;
    auto raw = r.read_head(&eof_clean);
    if (!raw) {
      if (!eof_clean && r.available() > kMaxHead)
        send_all(fd, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      break;
    }
    Request req;
    if (!parse_head(*raw, req)) {
      {
        std::lock_guard lk(g_mu);
        ++g_requests;
        if (g_heads.size() < 1'000'000) g_heads.push_back(*raw);
      }
      send_all(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      break;
    }
    After a = serve(fd, r, req, conn_id, &counted_epoch);
    if (auto stale = req.q("stale_after_ms"); stale && a == After::KeepAlive) {
      sleep_ms(std::strtoull(stale->c_str(), nullptr, 10));
      a = After::Abort;
    }
    if (a == After::Abort) {
      abort_socket(fd);
      return;
    }
    if (a != After::KeepAlive) break;
  }
  ::shutdown(fd, SHUT_WR);
  // Drain briefly so the peer gets a FIN rather than an RST for unread bytes.
  pollfd p{fd, POLLIN, 0};
  char tmp[4096];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (std::chrono::steady_clock::now() < deadline && ::poll(&p, 1, 100) > 0) {
    ssize_t n = ::recv(fd, tmp, sizeof tmp, 0);
    if (n <= 0) break;
  }
  ::close(fd);
}

void on_signal(int) {
  char c = 1;
  ssize_t ignored = ::write(g_signal_pipe[1], &c, 1);
  (void)ignored;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--name" && i + 1 < argc) {
      g_name = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--port N] [--name NAME]\n", argv[0]);
      return 2;
    }
  }

  ::signal(SIGPIPE, SIG_IGN);
  if (::pipe(g_signal_pipe) != 0) return 1;
  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);

  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) {
    std::perror("socket");
    return 1;
  }
  int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    std::perror("bind");
    return 1;
  }
  if (::listen(lfd, 1024) != 0) {
    std::perror("listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("PORT %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  for (;;) {
    pollfd fds[2] = {{lfd, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) break;
    if (fds[0].revents & POLLIN) {
      int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd < 0) continue;
      std::thread(handle_connection, cfd).detach();
    }
  }
  std::fflush(stdout);
  std::fflush(stderr);
  ::_exit(0);
}
