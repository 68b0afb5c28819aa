// The systemd readiness protocol against a datagram socket standing in for systemd: berth
// started with $NOTIFY_SOCKET says READY=1 once it serves, RELOADING=1 (with MONOTONIC_USEC)
// then READY=1 around a SIGHUP reload (a refused file too), and STOPPING=1 at SIGTERM.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>

#include "env.h"

using namespace it;

namespace {

// What systemd does: a bound AF_UNIX datagram socket; each datagram is one message.
class NotifyListener {
 public:
  // abstract: bind "@name" (a leading NUL) instead of a path in dir.
  NotifyListener(const TempDir& dir, bool abstract) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
      name_ = "@berth-it-notify-" + std::to_string(::getpid());
      std::memcpy(a.sun_path, name_.data(), name_.size());
      a.sun_path[0] = '\0';
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name_.size());
    } else {
      name_ = dir.file("notify.sock");
      std::memcpy(a.sun_path, name_.c_str(), name_.size() + 1);
      len = sizeof a;
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0) error_ = std::strerror(errno);
  }
  ~NotifyListener() { ::close(fd_); }
  const std::string& name() const { return name_; }
  const std::string& error() const { return error_; }

  // The next datagram, "" after the timeout.
  std::string next(std::chrono::milliseconds timeout = 10s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return {};
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

 private:
  int fd_ = -1;
  std::string name_, error_;
};

// Sets $NOTIFY_SOCKET for the berth spawned while it lives (posix_spawn passes environ on).
struct NotifyEnv {
  explicit NotifyEnv(const std::string& value) { ::setenv("NOTIFY_SOCKET", value.c_str(), 1); }
  ~NotifyEnv() { ::unsetenv("NOTIFY_SOCKET"); }
};

bool has_line(const std::string& message, const std::string& line) {
  return ("\n" + message).find("\n" + line + "\n") != std::string::npos;
}

uint64_t monotonic_usec_in(const std::string& message) {
  size_t p = message.find("MONOTONIC_USEC=");
  if (p == std::string::npos) return 0;
  return std::strtoull(message.c_str() + p + 15, nullptr, 10);
}

uint64_t now_monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

void run_protocol(bool abstract) {
  Origin a("A");
  REQUIRE(a.ok());
  TempDir dir;
  NotifyListener systemd(dir, abstract);
  INFO("listener " << systemd.name() << ": " << systemd.error());
  REQUIRE(systemd.error().empty());
  const std::string yaml = config_head(2) +
                           "routes:\n  - {name: r-a, host: a.test, service: s-a}\n"
                           "services:\n  s-a: {endpoints: [\"" + a.address() + "\"]}\n";
  std::unique_ptr<Berth> berth;
  {
    NotifyEnv env(systemd.name());
    berth = std::make_unique<Berth>(yaml);
  }
  INFO(berth->error());
  REQUIRE(berth->ok());
  INFO("log:\n" << tail(berth->log()));

  // READY=1 once it serves: a request already gets through.
  std::string m = systemd.next();
  CHECK(has_line(m, "READY=1"));
  CHECK(http_get(berth->port(), "/", "a.test").status == 200);

  // SIGHUP: RELOADING=1 stamped with the monotonic clock, then READY=1 when applied.
  uint64_t before = now_monotonic_usec();
  REQUIRE(berth->process().signal(SIGHUP));
  m = systemd.next();
  CHECK(has_line(m, "RELOADING=1"));
  uint64_t stamp = monotonic_usec_in(m);
  CHECK(stamp >= before);
  CHECK(stamp <= now_monotonic_usec());
  m = systemd.next();
  CHECK(has_line(m, "READY=1"));
  CHECK(berth->log_shows("event=config_reloaded"));

  // A refused file: still RELOADING=1 then READY=1 (the running configuration keeps serving).
  REQUIRE(berth->rewrite_config(yaml + "bogus_key: 1\n"));
  REQUIRE(berth->process().signal(SIGHUP));
  CHECK(has_line(systemd.next(), "RELOADING=1"));
  CHECK(has_line(systemd.next(), "READY=1"));
  CHECK(berth->log_shows("event=config_reload_failed"));
  CHECK(http_get(berth->port(), "/", "a.test").status == 200);

  // SIGTERM: STOPPING=1 at the start of the drain, then a clean exit.
  REQUIRE(berth->process().signal(SIGTERM));
  CHECK(has_line(systemd.next(), "STOPPING=1"));
  CHECK(exited_with(berth->process().wait_exit(10s), 0));
  CHECK(systemd.next(200ms).empty());  // nothing after STOPPING=1
}

}  // namespace

TEST_CASE("notify: READY, RELOADING/READY around SIGHUP and STOPPING to a $NOTIFY_SOCKET path",
          "[notify]") {
  run_protocol(false);
}

TEST_CASE("notify: the same to an abstract $NOTIFY_SOCKET (@name)", "[notify]") {
  run_protocol(true);
}

TEST_CASE("notify: without $NOTIFY_SOCKET berth runs as before", "[notify]") {
  ::unsetenv("NOTIFY_SOCKET");
  Origin a("A");
  REQUIRE(a.ok());
  Berth berth(config_head(1) + "routes:\n  - {name: r-a, host: a.test, service: s-a}\n"
                               "services:\n  s-a: {endpoints: [\"" + a.address() + "\"]}\n");
  INFO(berth.error());
  REQUIRE(berth.ok());
  CHECK(berth.log().find("notify_") == std::string::npos);
  REQUIRE(berth.process().signal(SIGHUP));
  CHECK(berth.log_shows("event=config_reloaded"));
  REQUIRE(berth.process().signal(SIGTERM));
  CHECK(exited_with(berth.process().wait_exit(10s), 0));
}
