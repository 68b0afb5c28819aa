// berth-bench-origin: a deliberately fast, single-threaded epoll HTTP/1.1 origin for the
// benchmark. It is not a general HTTP server: it answers
//   GET /small -> 200 with a 100-byte body
//   GET /64k   -> 200 with a 65536-byte body
//   anything else -> 404 (small body)
// from precomputed responses, keeps connections alive (HTTP/1.1 default; honours
// "Connection: close" and HTTP/1.0 without keep-alive), and handles pipelined requests by
// queueing responses in order. Request bodies announced by Content-Length are skipped;
// chunked request bodies are refused with 400 and a close.
//
// Usage: berth-bench-origin [--host 127.0.0.1] --port PORT
// Prints "origin listening on HOST:PORT" on stdout once it accepts connections.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct Response {
  std::string bytes;
};

Response make_response(int status, const char* reason, size_t body_len, char fill) {
  std::string body;
  body.reserve(body_len);
  static const char kIntro[] = "berth-bench-origin payload\n";
  for (size_t i = 0; i < body_len; ++i) {
    body.push_back(i < sizeof(kIntro) - 1 ? kIntro[i] : (i + 1 == body_len ? '\n' : fill));
  }
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                  "\r\nServer: berth-bench-origin\r\nContent-Type: text/plain\r\nContent-Length: " +
                  std::to_string(body_len) + "\r\n\r\n";
  r += body;
  return Response{std::move(r)};
}

Response g_small, g_big, g_not_found, g_bad_request;

struct Pending {
  const char* data;
  size_t len;
};

struct Conn {
  int fd = -1;
  std::string in;           // unparsed request bytes
  size_t skip_body = 0;     // request body bytes still to discard
  std::vector<Pending> out; // queued responses (point into the static responses)
  size_t out_head = 0;      // index of the first unsent Pending
  bool close_after = false; // close once `out` drains
  bool writing = false;     // registered for EPOLLOUT instead of EPOLLIN
};

int g_epoll = -1;
std::vector<std::unique_ptr<Conn>> g_conns;  // indexed by fd

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = char(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = char(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (size_t i = 0; i + needle.size() <= hay.size(); ++i)
    if (ieq(hay.substr(i, needle.size()), needle)) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

void close_conn(Conn* c) {
  epoll_ctl(g_epoll, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  g_conns[c->fd].reset();
}

void set_events(Conn* c, bool writing) {
  if (c->writing == writing) return;
  c->writing = writing;
  epoll_event ev{};
  ev.events = writing ? EPOLLOUT : EPOLLIN;
  ev.data.fd = c->fd;
  epoll_ctl(g_epoll, EPOLL_CTL_MOD, c->fd, &ev);
}

// Parses every complete request in c->in and queues its response. On a protocol error a 400
// is queued and close_after set.
void parse_requests(Conn* c) {
  size_t pos = 0;
  while (!c->close_after) {
    if (c->skip_body) {
      size_t n = std::min(c->skip_body, c->in.size() - pos);
      pos += n;
      c->skip_body -= n;
      if (c->skip_body) break;
    }
    size_t end = c->in.find("\r\n\r\n", pos);
    if (end == std::string::npos) {
      if (c->in.size() - pos > 64 * 1024) {  // absurd header block
        c->out.push_back({g_bad_request.bytes.data(), g_bad_request.bytes.size()});
        c->close_after = true;
      }
      break;
    }
    std::string_view head(c->in.data() + pos, end + 2 - pos);  // keeps the last header's CRLF
    pos = end + 4;
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    size_t sp1 = line.find(' ');
    size_t sp2 = line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1) {
      c->out.push_back({g_bad_request.bytes.data(), g_bad_request.bytes.size()});
      c->close_after = true;
      break;
    }
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string_view version = line.substr(sp2 + 1);
    size_t q = target.find('?');
    if (q != std::string_view::npos) target = target.substr(0, q);
    bool keep_alive = version != "HTTP/1.0";
    // Headers.
    size_t hp = eol + 2;
    while (hp < head.size()) {
      size_t he = head.find("\r\n", hp);
      if (he == std::string_view::npos) he = head.size();
      std::string_view h = head.substr(hp, he - hp);
      hp = he + 2;
      size_t colon = h.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view name = h.substr(0, colon);
      std::string_view value = trim(h.substr(colon + 1));
      if (ieq(name, "connection")) {
        if (icontains(value, "close")) keep_alive = false;
        else if (icontains(value, "keep-alive")) keep_alive = true;
      } else if (ieq(name, "content-length")) {
        c->skip_body = strtoull(std::string(value).c_str(), nullptr, 10);
      } else if (ieq(name, "transfer-encoding")) {
        c->out.push_back({g_bad_request.bytes.data(), g_bad_request.bytes.size()});
        c->close_after = true;
        break;
      }
    }
    if (c->close_after) break;
    const Response* r = &g_not_found;
    if (target == "/small") r = &g_small;
    else if (target == "/64k") r = &g_big;
    c->out.push_back({r->bytes.data(), r->bytes.size()});
    if (!keep_alive) c->close_after = true;
  }
  c->in.erase(0, pos);
}

// Writes queued responses. Returns false if the connection was closed.
bool flush(Conn* c) {
  while (c->out_head < c->out.size()) {
    iovec iov[64];
    int n = 0;
    for (size_t i = c->out_head; i < c->out.size() && n < 64; ++i, ++n)
      iov[n] = {const_cast<char*>(c->out[i].data), c->out[i].len};
    ssize_t w = writev(c->fd, iov, n);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_events(c, true);
        return true;
      }
      if (errno == EINTR) continue;
      close_conn(c);
      return false;
    }
    size_t left = size_t(w);
    while (left > 0) {
      Pending& p = c->out[c->out_head];
      if (left >= p.len) {
        left -= p.len;
        ++c->out_head;
      } else {
        p.data += left;
        p.len -= left;
        left = 0;
      }
    }
  }
  c->out.clear();
  c->out_head = 0;
  if (c->close_after) {
    close_conn(c);
    return false;
  }
  set_events(c, false);
  return true;
}

void on_readable(Conn* c) {
  char buf[64 * 1024];
  for (int rounds = 0; rounds < 4; ++rounds) {
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r > 0) {
      c->in.append(buf, size_t(r));
      if (size_t(r) < sizeof buf) break;
      continue;
    }
    if (r == 0) {
      close_conn(c);
      return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    close_conn(c);
    return;
  }
  parse_requests(c);
  if (!c->out.empty()) flush(c);
}

void on_accept(int lfd) {
  for (;;) {
    int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // EAGAIN, or EMFILE etc.: try again on the next event
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (size_t(fd) >= g_conns.size()) g_conns.resize(size_t(fd) * 2 + 1);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(g_epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      continue;
    }
    g_conns[fd] = std::move(c);
  }
}

void usage() {
  fprintf(stderr, "usage: berth-bench-origin [--host 127.0.0.1] --port PORT\n");
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--host" && i + 1 < argc) host = argv[++i];
    else if (a == "--port" && i + 1 < argc) port = atoi(argv[++i]);
    else usage();
  }
  if (port <= 0 || port > 65535) usage();
  signal(SIGPIPE, SIG_IGN);
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  g_small = make_response(200, "OK", 100, 's');
  g_big = make_response(200, "OK", 65536, 'b');
  g_not_found = make_response(404, "Not Found", 10, 'n');
  g_bad_request = make_response(400, "Bad Request", 12, 'x');
  g_bad_request.bytes.insert(g_bad_request.bytes.find("\r\n\r\n"), "\r\nConnection: close");

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) usage();
  if (bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
    perror("bind");
    return 1;
  }
  if (listen(lfd, 4096) < 0) {
    perror("listen");
    return 1;
  }
  g_epoll = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.fd = lfd;
  epoll_ctl(g_epoll, EPOLL_CTL_ADD, lfd, &lev);
  g_conns.resize(1024);
  printf("origin listening on %s:%d\n", host.c_str(), port);
  fflush(stdout);

  epoll_event events[512];
  for (;;) {
    int n = epoll_wait(g_epoll, events, 512, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        on_accept(lfd);
        continue;
      }
      Conn* c = size_t(fd) < g_conns.size() ? g_conns[fd].get() : nullptr;
      if (!c) continue;
      if (c->writing) {
        if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
          if (!flush(c)) continue;
          // Drained: more pipelined requests may already be buffered.
          if (!c->writing && !c->in.empty()) {
            parse_requests(c);
            if (!c->out.empty()) flush(c);
          }
        }
      } else {
        on_readable(c);
      }
    }
  }
}
