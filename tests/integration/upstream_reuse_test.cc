// What a pooled upstream connection holds when a request takes it: bytes the instance sent
// while it lay idle (they answer no request) or its end. The instance is a socket of the test,
// so it can send what no server should, at the moment the test chooses.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "env.h"

using namespace it;

namespace {

// A listening socket on 127.0.0.1 that the test answers on by hand.
class ScriptedInstance {
 public:
  ScriptedInstance() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
  }
  ~ScriptedInstance() {
    for (int c : conns_) ::close(c);
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return port_ != 0; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The next connection from Berth, or -1 when none comes within the timeout.
  int accept_within(std::chrono::milliseconds timeout) {
    if (!readable(fd_, timeout)) return -1;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c >= 0) conns_.push_back(c);
    return c;
  }
  // One request (head and a Content-Length body) read from c; "" when none came in time.
  static std::string read_request(int c, std::chrono::milliseconds timeout = 5s) {
    std::string in;
    const auto until = Clock::now() + timeout;
    for (;;) {
      if (size_t end = in.find("\r\n\r\n"); end != std::string::npos) {
        std::string head = lower(in.substr(0, end));
        size_t cl = head.find("\r\ncontent-length:");
        size_t body = cl == std::string::npos ? 0 : std::strtoull(head.c_str() + cl + 17, nullptr, 10);
        if (in.size() >= end + 4 + body) return in;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0 || !readable(c, left)) return "";
      char buf[4096];
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return "";
      in.append(buf, static_cast<size_t>(n));
    }
  }
  static bool send_all(int c, std::string_view bytes) {
    return ::send(c, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  // Whether anything (bytes or the end) waits on c now.
  static bool anything_waiting(int c) { return readable(c, 0ms); }

 private:
  static bool readable(int fd, std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
  }
  int fd_ = -1;
  uint16_t port_ = 0;
  std::vector<int> conns_;
};

// Whether every thread of the process is stopped (state 'T' in /proc/PID/task/TID/stat).
bool all_threads_stopped(pid_t pid) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(tasks.c_str());
  if (!d) return false;
  bool stopped = true;
  int seen = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(tasks + "/" + e->d_name + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');
    ++seen;
    if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'T') stopped = false;
  }
  ::closedir(d);
  return stopped && seen > 0;
}

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

// Berth (one worker, so the client and the pooled connection share a loop) in front of a
// scripted instance, with one pooled connection to it, idle after a first exchange, and a
// second client connected and accepted (waiting for its request).
struct ReuseSetup {
  ScriptedInstance instance;
  std::unique_ptr<Berth> berth;
  int pooled = -1;
  std::unique_ptr<Client> second;

  ReuseSetup() {
    REQUIRE(instance.ok());
    berth = std::make_unique<Berth>(config_head(1) + "routes:\n  - {host: reuse.test, service: s}\n" +
                                    "services:\n  s: {endpoints: [\"" + instance.address() + "\"]}\n");
    INFO(berth->error());
    REQUIRE(berth->ok());
    Client first(berth->port());
    REQUIRE(first.send(make_request("GET", "/first", "reuse.test")));
    pooled = instance.accept_within(5s);
    REQUIRE(pooled >= 0);
    REQUIRE(ScriptedInstance::read_request(pooled).find("GET /first ") == 0);
    REQUIRE(ScriptedInstance::send_all(pooled, kOk));
    Response r = first.read_response();
    REQUIRE(r.status == 200);
    second = std::make_unique<Client>(berth->port());
    REQUIRE(second->connected());
    std::this_thread::sleep_for(200ms);  // accepted, reading, and the first connection pooled
  }

  ~ReuseSetup() {
    if (berth) berth->process().signal(SIGCONT);  // a failed check may leave it stopped
  }

  // Stops Berth whole (every thread), so that what comes next is all waiting when it runs on.
  void pause() {
    REQUIRE(berth->process().signal(SIGSTOP));
    REQUIRE(wait_until([&] { return all_threads_stopped(berth->pid()); }, 5s, 5ms));
  }
  void resume() { REQUIRE(berth->process().signal(SIGCONT)); }
};

}  // namespace

TEST_CASE("upstream reuse: bytes an idle pooled connection received are never another request's response",
          "[upstream_reuse]") {
  ReuseSetup s;
  // While Berth is stopped: the second client's request, then, on the idle pooled connection, a
  // whole response to nothing. Both are readable when Berth runs on; the request came first, so
  // its event is handled first, and the pooled connection is taken while those bytes wait.
  s.pause();
  REQUIRE(s.second->send(make_request("GET", "/second", "reuse.test")));
  REQUIRE(ScriptedInstance::send_all(s.pooled, "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nSMUGGLED\n"));
  s.resume();

  // The request goes out on a new connection and gets that connection's answer.
  int fresh = s.instance.accept_within(5s);
  if (fresh < 0) {
    Response got = s.second->read_response();
    FAIL("no new connection: the request went out on the pooled one; the client got " << got.status << " "
                                                                                        << got.body);
  }
  CHECK(ScriptedInstance::read_request(fresh).find("GET /second ") == 0);
  REQUIRE(ScriptedInstance::send_all(fresh, kOk));
  Response r = s.second->read_response();
  INFO(r.raw_head << r.body << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  // The pooled connection got no request and was closed.
  CHECK(ScriptedInstance::read_request(s.pooled, 1s).empty());
  CHECK(stats_counter(s.berth->admin_port(), "upstream_unsolicited_bytes") == 1);
  CHECK(s.berth->log_shows("event=upstream_unsolicited_bytes"));
  CHECK(s.berth->log_shows("when=idle"));
}

TEST_CASE("upstream reuse: a pooled connection the instance has closed is not used, a POST included",
          "[upstream_reuse]") {
  ReuseSetup s;
  // While Berth is stopped: the second client's POST (never re-sent once it was written on a
  // connection), then the instance closes the pooled connection.
  s.pause();
  REQUIRE(s.second->send(make_request("POST", "/post", "reuse.test", {}, "body")));
  ::shutdown(s.pooled, SHUT_WR);
  s.resume();

  int fresh = s.instance.accept_within(5s);
  REQUIRE(fresh >= 0);
  std::string req = ScriptedInstance::read_request(fresh);
  CHECK(req.find("POST /post ") == 0);
  CHECK(req.size() >= 4);
  CHECK(req.substr(req.size() - 4) == "body");
  REQUIRE(ScriptedInstance::send_all(fresh, kOk));
  Response r = s.second->read_response();
  INFO(r.raw_head << r.body << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  CHECK(stats_counter(s.berth->admin_port(), "upstream_unsolicited_bytes") == 0);
}

TEST_CASE("upstream reuse: bytes after a whole response close the connection, counted and logged once",
          "[upstream_reuse]") {
  ScriptedInstance instance;
  REQUIRE(instance.ok());
  Berth berth(config_head(1) + "routes:\n  - {host: reuse.test, service: s}\n" +
              "services:\n  s: {endpoints: [\"" + instance.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  Client c(berth.port());
  REQUIRE(c.send(make_request("GET", "/one", "reuse.test")));
  int first = instance.accept_within(5s);
  REQUIRE(first >= 0);
  REQUIRE(ScriptedInstance::read_request(first).find("GET /one ") == 0);
  // The response, then (in the same write) the start of another and a line of junk.
  REQUIRE(ScriptedInstance::send_all(first, kOk + "HTTP/1.1 200 OK\r\n\r\nmore"));
  Response r = c.read_response();
  INFO(r.raw_head << r.body << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "ok\n");
  // The next request (same client connection) goes out on a new connection.
  REQUIRE(c.send(make_request("GET", "/two", "reuse.test")));
  int second = instance.accept_within(5s);
  REQUIRE(second >= 0);
  CHECK(ScriptedInstance::read_request(second).find("GET /two ") == 0);
  REQUIRE(ScriptedInstance::send_all(second, kOk));
  CHECK(c.read_response().body == "ok\n");
  CHECK(ScriptedInstance::read_request(first, 500ms).empty());  // nothing more on the first
  CHECK(stats_counter(berth.admin_port(), "upstream_unsolicited_bytes") == 1);
  CHECK(berth.log_shows("when=after_response"));
}
