// Small helpers shared by bench/propagation.cc and bench/discovery_churn.cc (route propagation
// and discovery churn benchmarks): clocks, blocking HTTP/1.1 GETs over TCP and Unix sockets, a
// de-chunker for the Docker event stream, child processes, a process's CPU time, percentiles.
// Measurement code only; nothing here is part of Berth.
#pragma once

#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace pb {

inline int64_t realtime_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
inline int64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
inline void sleep_us(int64_t us) {
  if (us <= 0) return;
  timespec ts{static_cast<time_t>(us / 1'000'000), static_cast<long>((us % 1'000'000) * 1000)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  std::exit(1);
}

// ---- sockets ----

inline int connect_tcp(const std::string& ip, uint16_t port, int timeout_ms) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline int connect_unix(const std::string& path, int timeout_ms) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (timeout_ms > 0) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) {
    ::close(fd);
    return -1;
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Decodes an HTTP/1.1 chunked body incrementally.
class Dechunker {
 public:
  // Feeds raw bytes; appends decoded body bytes to *out. False on a framing error.
  bool feed(std::string_view in, std::string* out) {
    buf_.append(in);
    size_t pos = 0;
    for (;;) {
      if (remaining_ == 0) {
        if (need_crlf_) {
          if (buf_.size() - pos < 2) break;
          pos += 2;
          need_crlf_ = false;
        }
        size_t eol = buf_.find("\r\n", pos);
        if (eol == std::string::npos) break;
        std::string line = buf_.substr(pos, eol - pos);
        pos = eol + 2;
        char* end = nullptr;
        unsigned long size = std::strtoul(line.c_str(), &end, 16);
        if (end == line.c_str()) return false;
        if (size == 0) {
          done_ = true;
          break;
        }
        remaining_ = size;
      }
      size_t take = std::min(remaining_, buf_.size() - pos);
      if (take == 0) break;
      out->append(buf_, pos, take);
      pos += take;
      remaining_ -= take;
      if (remaining_ == 0) need_crlf_ = true;
    }
    buf_.erase(0, pos);
    return true;
  }
  bool done() const { return done_; }

 private:
  std::string buf_;
  size_t remaining_ = 0;
  bool need_crlf_ = false;
  bool done_ = false;
};

struct HttpResponse {
  int status = -1;  // -1: no (complete) response
  std::string head;
  std::string body;
  std::string error;
};

// One request on a connected socket (closes it). Reads until the body is complete (Content-Length
// or chunked) or the peer closes.
inline HttpResponse http_exchange(int fd, const std::string& host, const std::string& target) {
  HttpResponse r;
  if (fd < 0) {
    r.error = std::string("connect: ") + std::strerror(errno);
    return r;
  }
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: berth-bench\r\nConnection: close\r\n\r\n";
  if (!write_all(fd, req)) {
    r.error = "write failed";
    ::close(fd);
    return r;
  }
  std::string in;
  char buf[16384];
  size_t head_end = std::string::npos;
  long content_length = -1;
  bool chunked = false;
  Dechunker dechunk;
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      r.error = std::string("recv: ") + std::strerror(errno);
      break;
    }
    if (n == 0) {
      if (head_end != std::string::npos && content_length < 0 && !chunked) r.body = in.substr(head_end);
      break;
    }
    in.append(buf, static_cast<size_t>(n));
    if (head_end == std::string::npos) {
      size_t e = in.find("\r\n\r\n");
      if (e == std::string::npos) continue;
      head_end = e + 4;
      r.head = in.substr(0, e);
      if (r.head.size() > 12 && r.head.compare(0, 5, "HTTP/") == 0) r.status = std::atoi(r.head.c_str() + 9);
      std::string lh = lower(r.head);
      size_t cl = lh.find("\r\ncontent-length:");
      if (cl != std::string::npos) content_length = std::atol(lh.c_str() + cl + 17);
      chunked = lh.find("\r\ntransfer-encoding: chunked") != std::string::npos;
    }
    if (chunked) {
      std::string tail = in.substr(head_end);
      in.resize(head_end);
      if (!dechunk.feed(tail, &r.body)) {
        r.error = "bad chunked framing";
        break;
      }
      if (dechunk.done()) break;
    } else if (content_length >= 0 && in.size() - head_end >= static_cast<size_t>(content_length)) {
      r.body = in.substr(head_end, static_cast<size_t>(content_length));
      break;
    }
  }
  ::close(fd);
  if (!r.error.empty() && r.status > 0 && chunked && !dechunk.done()) r.status = -1;
  return r;
}

inline HttpResponse http_get_tcp(const std::string& ip, uint16_t port, const std::string& host, const std::string& target,
                                 int timeout_ms = 2000) {
  return http_exchange(connect_tcp(ip, port, timeout_ms), host, target);
}
inline HttpResponse http_get_unix(const std::string& path, const std::string& target, int timeout_ms = 10000) {
  return http_exchange(connect_unix(path, timeout_ms), "docker", target);
}

inline std::string url_encode(std::string_view s) {
  std::string out;
  char hex[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      std::snprintf(hex, sizeof hex, "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

// "unix:///x/docker.sock" -> "/x/docker.sock"
inline std::string unix_path_of(const std::string& docker_host) {
  const std::string prefix = "unix://";
  if (docker_host.compare(0, prefix.size(), prefix) != 0) fail("only unix:// DOCKER_HOST is supported: " + docker_host);
  return docker_host.substr(prefix.size());
}

// ---- child processes ----

struct CmdResult {
  int status = -1;  // exit code; -1 = could not run, -2 = timed out (killed)
  std::string out, err;
};

// Runs argv (PATH lookup) with a timeout; captures stdout and stderr.
inline CmdResult run_cmd(const std::vector<std::string>& argv, int timeout_ms) {
  CmdResult r;
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return r;
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    r.err = std::string("spawn: ") + std::strerror(rc);
    return r;
  }
  int64_t deadline = mono_ns() + static_cast<int64_t>(timeout_ms) * 1'000'000;
  pollfd pfd[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool timed_out = false;
  char buf[4096];
  while (open_fds > 0) {
    int64_t left_ms = (deadline - mono_ns()) / 1'000'000;
    if (left_ms <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(pfd, 2, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < 2; ++i) {
      if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t k = ::read(pfd[i].fd, buf, sizeof buf);
      if (k > 0) {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(k));
      } else if (k == 0 || errno != EINTR) {
        ::close(pfd[i].fd);
        pfd[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& p : pfd)
    if (p.fd >= 0) ::close(p.fd);
  if (timed_out) kill(pid, SIGKILL);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) r.status = -2;
  else if (WIFEXITED(st)) r.status = WEXITSTATUS(st);
  return r;
}

inline std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// ---- CPU time of another process ----

struct CpuSample {
  int64_t ticks_us = 0;     // (utime + stime) from /proc/PID/stat, in microseconds (tick resolution)
  int64_t schedstat_ns = 0; // sum over /proc/PID/task/*/schedstat of the run time (ns resolution)
  int64_t main_thread_ns = 0; // the main thread's share (Berth's control loop)
  bool ok = false;
};

inline CpuSample read_cpu(pid_t pid) {
  CpuSample s;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return s;
  size_t paren = line.rfind(')');
  if (paren == std::string::npos) return s;
  std::istringstream rest(line.substr(paren + 2));
  std::vector<std::string> fields;
  std::string field;
  while (rest >> field) fields.push_back(field);
  // fields[0] is field 3 (state); utime is field 14, stime 15.
  if (fields.size() < 13) return s;
  long hz = sysconf(_SC_CLK_TCK);
  int64_t ticks = std::atoll(fields[11].c_str()) + std::atoll(fields[12].c_str());
  s.ticks_us = ticks * 1'000'000 / hz;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream t(dir + "/" + e->d_name + "/schedstat");
      int64_t ns = 0;
      if (t >> ns) {
        s.schedstat_ns += ns;
        if (std::to_string(pid) == e->d_name) s.main_thread_ns = ns;
      }
    }
    closedir(d);
  }
  s.ok = true;
  return s;
}

// ---- statistics ----

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  // Nearest rank.
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  if (rank < 1) rank = 1;
  if (rank > v.size()) rank = v.size();
  return v[rank - 1];
}

inline std::string fmt(double v, int decimals = 2) {
  if (std::isnan(v)) return "n/a";
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

// ---- Berth's admin API ----

struct Gens {
  bool ok = false;
  uint64_t control = 0;     // the last published generation
  uint64_t min_worker = 0;  // the oldest snapshot any worker still serves
  size_t workers = 0;
  int64_t max_applied_ns = 0;      // CLOCK_REALTIME when the last worker applied its snapshot
  int64_t event_received_ns = 0;   // when Berth received the event behind `control` (0: none)
};

// GET /api/stats on Berth's admin listener.
inline Gens stats(uint16_t admin) {
  Gens g;
  HttpResponse r = http_get_tcp("127.0.0.1", admin, "127.0.0.1", "/api/stats", 2000);
  if (r.status != 200) return g;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("workers")) return g;
  g.control = j.value("generation", uint64_t{0});
  g.event_received_ns = j.value("generation_event_received_ns", int64_t{0});
  g.min_worker = UINT64_MAX;
  for (const auto& w : j["workers"]) {
    g.min_worker = std::min<uint64_t>(g.min_worker, w.value("generation", uint64_t{0}));
    g.max_applied_ns = std::max<int64_t>(g.max_applied_ns, w.value("applied_at_ns", int64_t{0}));
    ++g.workers;
  }
  if (g.workers == 0) g.min_worker = 0;
  g.ok = true;
  return g;
}

// Polls /api/stats (pause_us apart) until every worker serves generation >= gen. Returns the
// CLOCK_MONOTONIC time of the answer that showed it, 0 on timeout.
inline int64_t wait_workers(uint16_t admin, uint64_t gen, int timeout_ms, int64_t pause_us = 100,
                            Gens* seen = nullptr) {
  const int64_t deadline = mono_ns() + static_cast<int64_t>(timeout_ms) * 1'000'000;
  while (mono_ns() < deadline) {
    Gens g = stats(admin);
    if (seen) *seen = g;
    if (g.ok && g.min_worker >= gen) return mono_ns();
    sleep_us(pause_us);
  }
  return 0;
}

// ---- Berth's log ----

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Value of key=value in a key=value log line ("" when absent). Values here are unquoted.
inline std::string log_value(std::string_view line, std::string_view key) {
  std::string pat(" ");
  pat.append(key);
  pat.push_back('=');
  size_t p = line.find(pat);
  if (p == std::string_view::npos) return {};
  p += pat.size();
  size_t e = line.find(' ', p);
  return std::string(line.substr(p, e == std::string_view::npos ? std::string_view::npos : e - p));
}

// "ts=2026-11-27T18:45:49.386Z" at the start of a line -> ns since the epoch (ms resolution).
inline int64_t log_ts_ns(std::string_view line) {
  if (line.size() < 27 || line.compare(0, 3, "ts=") != 0) return 0;
  std::string ts(line.substr(3, 24));
  tm t{};
  if (!strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &t)) return 0;
  int ms = std::atoi(ts.c_str() + 20);
  return (static_cast<int64_t>(timegm(&t)) * 1000 + ms) * 1'000'000;
}

inline size_t count_occurrences(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + needle.size())) ++n;
  return n;
}

// Waits until Berth's log contains `needle` at least `count` times.
inline bool wait_log(const std::string& log_path, const std::string& needle, size_t count, int timeout_ms) {
  int64_t deadline = mono_ns() + static_cast<int64_t>(timeout_ms) * 1'000'000;
  while (mono_ns() < deadline) {
    if (count_occurrences(read_file(log_path), needle) >= count) return true;
    sleep_us(5000);
  }
  return false;
}

}  // namespace pb
