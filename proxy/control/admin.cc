#include "proxy/control/admin.h"

#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "proxy/http/http_head.h"
#include "proxy/http/http_rewrite.h"
#include "proxy/base/log.h"
#include "proxy/net/listen_socket.h"

namespace berth {
namespace {
constexpr size_t kMaxAdminRequest = 16 * 1024;
// One admin exchange (the head in, the answer out) gets this long, then its connection closes:
// a client that sends nothing, or a byte now and then, holds no descriptor longer.
constexpr uint64_t kAdminExchangeMs = 10'000;
// Admin connections open at once. Scrapes and the status page need a few; a flood must not take
// the descriptors the proxy listeners need. When all are open, a new one takes the place of the
// oldest still silent (a scraper sends its request at once; a client that holds a connection
// silent loses it), and is closed only when all are being answered. A connection whose request
// has arrived but is not read yet (a burst accepted in one turn) is not silent: closed, it would
// be reset; it is answered, the limit aside (the backlog bounds how many a turn accepts).
constexpr size_t kMaxAdminConnections = 64;

// Bytes the kernel holds for the connection, not read yet.
int unread_bytes(const uv_tcp_t& tcp) {
  uv_os_fd_t fd = -1;
  int n = 0;
  if (uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp), &fd) != 0 || ::ioctl(fd, FIONREAD, &n) != 0) return 0;
  return n;
}
}  // namespace

struct AdminServer::Conn {
  uv_tcp_t tcp;
  uv_timer_t deadline;
  uv_write_t write_req;
  AdminServer* server;
  std::string in;
  std::string out;
  bool responded = false;
  bool closing = false;
  int open_handles = 0;
  std::list<Conn*>::iterator waiting_at;  // in server->waiting_ while waiting for the request
  bool waiting = false;
  std::list<Conn*>::iterator open_at;     // in server->open_ until close()

  // The request head is in (or refused): no longer a connection a newcomer may take over.
  void answering() {
    responded = true;
    if (!waiting) return;
    server->waiting_.erase(waiting_at);
    waiting = false;
  }

  // Closes both handles; the last to close frees the connection.
  void close() {
    if (closing) return;
    closing = true;
    if (waiting) {
      server->waiting_.erase(waiting_at);
      waiting = false;
    }
    --server->connections_;
    server->open_.erase(open_at);
    const uv_close_cb closed = [](uv_handle_t* h) {
      auto* c = static_cast<Conn*>(h->data);
      if (--c->open_handles > 0) return;
      delete c;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline), closed);
    if (server->connections_ == 0 && server->after_finish_) {
      std::function<void()> done = std::move(server->after_finish_);
      server->after_finish_ = nullptr;
      done();
    }
  }
};

AdminHandler reuse_slow_documents(AdminHandler build, uint64_t slow_ms, uint64_t reuse_ms,
                                  std::function<uint64_t()> now_ms, std::function<uint64_t()> cpu_ms) {
  if (!now_ms) now_ms = [] { return uv_hrtime() / 1'000'000; };
  if (!cpu_ms) cpu_ms = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1'000'000;
  };
  struct Last {
    AdminResponse response;
    uint64_t built_ms = 0;
    bool reusable = false;
  };
  auto last = std::make_shared<Last>();
  return [build = std::move(build), now_ms = std::move(now_ms), cpu_ms = std::move(cpu_ms), last, slow_ms,
          reuse_ms](const AdminRequest& req) {
    if (req.query.empty() && last->reusable && now_ms() - last->built_ms < reuse_ms) return last->response;
    const uint64_t cpu_start = cpu_ms();
    AdminResponse r = build(req);
    if (!req.query.empty()) return r;  // answers of its own: they leave the kept one alone
    last->reusable = r.status == 200 && cpu_ms() - cpu_start >= slow_ms;
    if (last->reusable) {
      last->response = r;
      last->built_ms = now_ms();
    } else {
      last->response = AdminResponse{};
    }
    return r;
  };
}

std::string admin_query_param(std::string_view query, std::string_view name) {
  return admin_query_value(query, name).value_or(std::string());
}

std::optional<std::string> admin_query_value(std::string_view query, std::string_view name) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    std::string out;
    out.reserve(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] == '+') {
        out += ' ';
      } else if (raw[i] == '%' && i + 2 < raw.size() && hex(raw[i + 1]) >= 0 && hex(raw[i + 2]) >= 0) {
        out += static_cast<char>(hex(raw[i + 1]) * 16 + hex(raw[i + 2]));
        i += 2;
      } else {
        out += raw[i];
      }
    }
    return out;
  }
  return std::nullopt;
}

bool admin_host_allowed(std::string_view host) {
  if (host.empty()) return true;
  if (host.front() == '[') return host.find(']') != std::string_view::npos;  // an IPv6 literal
  const std::string name(host.substr(0, host.rfind(':')));
  if (http::iequals(name, "localhost")) return true;
  in_addr v4;
  return inet_pton(AF_INET, name.c_str(), &v4) == 1;
}

AdminServer::AdminServer(uv_loop_t* loop) : loop_(loop) {}

void AdminServer::handle(std::string path, AdminHandler handler) {
  handlers_[std::move(path)] = std::move(handler);
}

bool AdminServer::start(const config::SocketAddress& addr, bool share, uint16_t& bound_port, std::string& error) {
  uv_tcp_init(loop_, &server_);
  server_.data = this;
  started_ = true;
  sockaddr_storage ss{};
  int rc = addr.ipv6 ? uv_ip6_addr(addr.host.c_str(), addr.port, reinterpret_cast<sockaddr_in6*>(&ss))
                     : uv_ip4_addr(addr.host.c_str(), addr.port, reinterpret_cast<sockaddr_in*>(&ss));
  // By the address, not its spelling: [::ffff:127.0.0.1] and [0:0::1] are loopback too.
  if (addr.ipv6) {
    const in6_addr& a6 = reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr;
    loopback_ = IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
  } else {
    loopback_ = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr)[0] == 127;
  }
  if (rc != 0) {
    error = "admin listener " + addr.to_string() + ": " + uv_strerror(rc);
    return false;
  }
  error = share ? std::string() : listening_elsewhere(addr);
  const ListenSocket socket = error.empty() ? open_listen_socket(addr, true, 128, error) : ListenSocket{};
  if (socket.fd < 0) {
    error = "admin listener " + addr.to_string() + ": " + error;
    return false;
  }
  rc = uv_tcp_open(&server_, socket.fd);  // from here the handle owns the socket
  if (rc != 0) ::close(socket.fd);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 128, on_connection);
  if (rc != 0) {
    error = "admin listener " + addr.to_string() + ": " + uv_strerror(rc);
    return false;
  }
  bound_port = socket.port;
  return true;
}

void AdminServer::stop() {
  if (!started_) return;
  started_ = false;
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&server_))) return;
  uv_os_fd_t fd = -1;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&server_), &fd) == 0) {
    for (;;) {
      const int conn = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (conn >= 0) {
        adopt(conn, /*queued=*/true);
        continue;
      }
      if (errno != EINTR && errno != ECONNABORTED) break;  // EAGAIN: none left
    }
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
}

void AdminServer::on_connection(uv_stream_t* server, int status) {
  auto* self = static_cast<AdminServer*>(server->data);
  if (status < 0) return;
  self->adopt(-1, /*queued=*/false);
}

bool AdminServer::finish(uint64_t within_ms, std::function<void()> done) {
  if (connections_ == 0) return false;
  after_finish_ = std::move(done);
  for (Conn* c : open_)
    if (uv_timer_get_due_in(&c->deadline) > within_ms)
      uv_timer_start(&c->deadline, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->close(); }, within_ms, 0);
  return true;
}

void AdminServer::adopt(int fd, bool queued) {
  auto* c = new Conn();
  c->server = this;
  uv_tcp_init(loop_, &c->tcp);
  c->tcp.data = c;
  uv_timer_init(loop_, &c->deadline);
  c->deadline.data = c;
  c->open_handles = 2;
  ++connections_;
  c->open_at = open_.insert(open_.end(), c);
  const int rc = fd < 0 ? uv_accept(reinterpret_cast<uv_stream_t*>(&server_), reinterpret_cast<uv_stream_t*>(&c->tcp))
                        : uv_tcp_open(&c->tcp, fd);
  if (rc != 0) {
    if (fd >= 0) ::close(fd);
    c->close();
    return;
  }
  if (connections_ > kMaxAdminConnections && !queued) {
    if (waiting_.empty()) {  // all are being answered
      c->close();
      return;
    }
    auto silent = std::find_if(waiting_.begin(), waiting_.end(), [](Conn* w) { return unread_bytes(w->tcp) == 0; });
    if (silent != waiting_.end()) (*silent)->close();
  }
  c->waiting_at = waiting_.insert(waiting_.end(), c);
  c->waiting = true;
  uv_timer_start(&c->deadline, [](uv_timer_t* t) { static_cast<Conn*>(t->data)->close(); }, kAdminExchangeMs, 0);
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->tcp),
      [](uv_handle_t*, size_t, uv_buf_t* buf) {
        static thread_local char scratch[4096];
        buf->base = scratch;
        buf->len = sizeof scratch;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* c = static_cast<Conn*>(s->data);
        if (c->responded) return;
        if (n < 0) {
          c->close();
          return;
        }
        c->in.append(buf->base, static_cast<size_t>(n));
        size_t end = http::find_head_end(c->in.data(), c->in.size(), 0);
        if (!end || end > kMaxAdminRequest) {
          if (c->in.size() > kMaxAdminRequest) {  // answered, not just cut: the client learns why
            uv_read_stop(s);
            c->answering();
            c->server->send(c, 431, "text/plain; charset=utf-8", "request head too large\n",
                            "Cache-Control: no-store\r\n", false);
          }
          return;
        }
        uv_read_stop(s);
        c->answering();
        c->server->respond(c, std::string_view(c->in.data(), end));
      });
}

void AdminServer::respond(Conn* c, std::string_view head) {
  http::RequestHead req;
  http::Limits limits;
  http::Outcome o = http::parse_request_head(head, limits, req);
  uint16_t status = 200;
  std::string body;
  std::string type = "text/plain; charset=utf-8";
  std::string_view extra = "Cache-Control: no-store\r\n";
  if (!o.ok()) {
    status = 400;
    body = "bad request\n";
  } else if (req.method != "GET" && req.method != "HEAD") {
    status = 405;
    body = "method not allowed\n";
    extra = "Cache-Control: no-store\r\nAllow: GET, HEAD\r\n";  // RFC 9110 15.5.6
  } else if (loopback_ && !admin_host_allowed(req.host)) {
    status = 403;
    body = "the admin listener answers Host localhost or an IP address only\n";
  } else {
    size_t q = req.path.find('?');
    AdminRequest ar{req.path.substr(0, q), q == std::string_view::npos ? std::string_view() : req.path.substr(q + 1)};
    auto it = handlers_.find(ar.path);
    if (it == handlers_.end()) {
      status = 404;
      body = "not found\n";
    } else {
      AdminResponse r = it->second(ar);
      status = r.status;
      type = std::move(r.content_type);
      body = std::move(r.body);
    }
  }
  send(c, status, type, body, extra, o.ok() && req.method_head);
}

void AdminServer::send(Conn* c, uint16_t status, const std::string& type, const std::string& body,
                       std::string_view extra, bool head_only) {
  c->out.clear();
  http::build_local_response(status, type, body, true, extra, c->out, head_only);
  uv_buf_t b = uv_buf_init(c->out.data(), static_cast<unsigned>(c->out.size()));
  c->write_req.data = c;
  int rc = uv_write(&c->write_req, reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1,
                    [](uv_write_t* w, int) { static_cast<Conn*>(w->data)->close(); });
  if (rc != 0) c->close();
}

}  // namespace berth
