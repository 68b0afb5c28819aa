#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

extern char** environ;

namespace it {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

struct SigpipeIgnorer {
  SigpipeIgnorer() { ::signal(SIGPIPE, SIG_IGN); }
} g_sigpipe_ignorer;

}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// ---- temp files -----------------------------------------------------------------------------
TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/berth-it-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data())) path_ = buf.data();
}

TempDir::~TempDir() {
  const char* keep = std::getenv("BERTH_IT_KEEP");
  if (path_.empty() || (keep && std::string_view(keep) == "1")) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool write_file(const std::string& path, std::string_view content) {
  // Write to a sibling and rename, so a reader never sees a half-written file.
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return false;
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!f) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int sh(const std::string& cmd, std::string* out, int timeout_s) {
  const std::string full = "timeout " + std::to_string(timeout_s) + " sh -c '" + cmd + "' 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  const int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool make_certificates(const TempDir& dir, const std::vector<std::string>& cas,
                       const std::vector<std::pair<std::string, std::string>>& signed_by_first, std::string* log) {
  std::string script =
      "set -e\ncd \"$1\"\n"
      "ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
      "ca() { openssl req -x509 $ec -keyout \"$1.key\" -out \"$1.crt\" -days 2 -subj \"/CN=$1\"; }\n"
      "sign() {\n"
      "  openssl req $ec -keyout \"$2.key\" -out \"$2.csr\" -subj \"/CN=$2\"\n"
      "  printf '%s\\n' \"$3\" > \"$2.ext\"\n"
      "  openssl x509 -req -in \"$2.csr\" -CA \"$1.crt\" -CAkey \"$1.key\" -CAcreateserial -days 2 \\\n"
      "    -extfile \"$2.ext\" -out \"$2.crt\"\n"
      "}\n";
  for (const std::string& ca : cas) script += "ca '" + ca + "'\n";
  for (const auto& [name, ext] : signed_by_first) script += "sign '" + cas.at(0) + "' '" + name + "' '" + ext + "'\n";
  write_file(dir.file("make-certificates.sh"), script);
  const std::string out = dir.file("make-certificates.log");
  const int rc = std::system(
      ("timeout 60 sh " + dir.file("make-certificates.sh") + " " + dir.path() + " >" + out + " 2>&1").c_str());
  if (log) *log = read_file(out);
  return rc == 0;
}

std::string tail(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return "..." + text.substr(text.size() - max);
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
  }
}

bool Berth::log_shows(std::string_view text, std::chrono::milliseconds timeout) const {
  return wait_until([&] { return log().find(text) != std::string::npos; }, timeout, 10ms);
}

// ---- processes --------------------------------------------------------------------------------
Process::Process(std::vector<std::string> argv, std::string stdout_path, std::string stderr_path)
    : out_path_(std::move(stdout_path)), err_path_(std::move(stderr_path)) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The child starts with default signal dispositions and an empty mask.
  sigset_t def, empty;
  sigemptyset(&empty);
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGHUP);
  posix_spawnattr_setsigdefault(&attr, &def);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    spawn_error_ = "posix_spawn(" + argv[0] + "): " + std::strerror(rc);
    pid_ = -1;
    return;
  }
  pid_ = pid;
}

Process::~Process() { terminate(); }

Process::Process(Process&& other) noexcept { *this = std::move(other); }

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    terminate();
    pid_ = other.pid_;
    status_ = other.status_;
    out_path_ = std::move(other.out_path_);
    err_path_ = std::move(other.err_path_);
    spawn_error_ = std::move(other.spawn_error_);
    other.pid_ = -1;
    other.status_.reset();
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return r == 0;
}

bool Process::signal(int sig) {
  if (!running()) return false;
  return ::kill(pid_, sig) == 0;
}

std::optional<int> Process::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return std::nullopt;
  if (status_) return status_;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = st;
      return status_;
    }
    if (r < 0 && errno != EINTR) return std::nullopt;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

std::optional<int> Process::terminate() {
  if (pid_ <= 0) return std::nullopt;
  if (status_) return status_;
  if (::kill(pid_, SIGTERM) == 0) {
    if (auto st = wait_exit(5s)) return st;
  }
  ::kill(pid_, SIGKILL);
  return wait_exit(5s);
}

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  const std::string p = path ? path : "/usr/bin:/bin";
  for (size_t start = 0; start <= p.size();) {
    size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string candidate = p.substr(start, end - start) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exited " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "killed by signal " + std::to_string(WTERMSIG(st));
  return "wait status " + std::to_string(st);
}

bool exited_with(const std::optional<int>& st, int code) {
  return st && WIFEXITED(*st) && WEXITSTATUS(*st) == code;
}

// ---- origin -----------------------------------------------------------------------------------
Origin::Origin(std::string name) : name_(std::move(name)) {
  proc_ = Process({BERTH_ORIGIN_BINARY, "--name", name_}, dir_.file("origin.out"),
                  dir_.file("origin.err"));
  if (!proc_.started()) {
    error_ = proc_.spawn_error();
    return;
  }
  bool found = wait_until(
      [&] {
        std::string out = proc_.out();
        size_t p = out.find("PORT ");
        if (p == std::string::npos) return !proc_.running();
        size_t nl = out.find('\n', p);
        if (nl == std::string::npos) return false;
        port_ = static_cast<uint16_t>(std::atoi(out.c_str() + p + 5));
        return true;
      },
      5s, 5ms);
  if (!found || port_ == 0) {
    error_ = "origin did not report its port: " + proc_.out() + proc_.err();
    port_ = 0;
  }
}

Origin::Stats Origin::stats() {
  Stats s;
  Response r = http_get(port_, "/__stats", "origin");
  if (r.status != 200) return s;
  auto num = [&](const char* key) -> long {
    size_t p = r.body.find(key);
    if (p == std::string::npos) return -1;
    p = r.body.find(':', p);
    if (p == std::string::npos) return -1;
    return std::atol(r.body.c_str() + p + 1);
  };
  s.connections = num("\"connections\"");
  s.requests = num("\"requests\"");
  return s;
}

long Origin::seen(const std::string& marker) {
  Response r = http_get(port_, "/__seen?marker=" + url_encode(marker), "origin");
  if (r.status != 200) return -1;
  return std::atol(r.body.c_str());
}

bool Origin::reset() { return http_get(port_, "/__reset", "origin").status == 200; }

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string url_encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// ---- berth ------------------------------------------------------------------------------------
namespace {

// Port from the first log line containing `event` and `key=HOST:PORT` (value may be quoted).
uint16_t port_from_log(const std::string& log, std::string_view event, std::string_view key) {
  size_t pos = 0;
  while (pos < log.size()) {
    size_t nl = log.find('\n', pos);
    if (nl == std::string::npos) break;  // only complete lines
    std::string_view line(log.data() + pos, nl - pos);
    pos = nl + 1;
    if (line.find(event) == std::string_view::npos) continue;
    size_t k = line.find(key);
    if (k == std::string_view::npos) continue;
    std::string_view v = line.substr(k + key.size());
    if (!v.empty() && v.front() == '"') v.remove_prefix(1);
    size_t end = v.find_first_of(" \"\t\r");
    if (end != std::string_view::npos) v = v.substr(0, end);
    size_t colon = v.rfind(':');
    if (colon == std::string_view::npos) continue;
    int port = std::atoi(std::string(v.substr(colon + 1)).c_str());
    if (port > 0 && port < 65536) return static_cast<uint16_t>(port);
  }
  return 0;
}

}  // namespace

Berth::Berth(const std::string& yaml, int nofile, const std::vector<std::string>& extra_args) {
  config_path_ = dir_.file("berth.yaml");
  if (!write_file(config_path_, yaml)) {
    error_ = "cannot write " + config_path_;
    return;
  }
  std::vector<std::string> argv{BERTH_BINARY, "--config", config_path_};
  if (nofile > 0)
    argv = {"/bin/sh", "-c", "ulimit -n " + std::to_string(nofile) + " && exec \"$0\" --config \"$@\"",
            BERTH_BINARY, config_path_};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  proc_ = Process(argv, dir_.file("berth.out"), dir_.file("berth.err"));
  if (!proc_.started()) {
    error_ = proc_.spawn_error();
    return;
  }
  bool ready = wait_until(
      [&] {
        std::string l = log();
        if (l.find("event=ready") != std::string::npos) return true;
        return !proc_.running();
      },
      10s, 10ms);
  std::string l = log();
  if (!ready || l.find("event=ready") == std::string::npos) {
    std::string why = proc_.running() ? "no event=ready within 10 s"
                                      : "berth exited (" + (proc_.exit_status()
                                                                ? describe_status(*proc_.exit_status())
                                                                : std::string("?")) + ")";
    error_ = why + "; log:\n" + tail(l);
    return;
  }
  // The listening lines may be logged just before or after event=ready; give them a moment.
  wait_until(
      [&] {
        std::string lg = log();
        port_ = port_from_log(lg, "event=listening", "listener=");
        admin_port_ = port_from_log(lg, "event=admin_listening", "address=");
        return port_ != 0 && admin_port_ != 0;
      },
      2s, 10ms);
  if (port_ == 0) {
    error_ = "no 'event=listening listener=127.0.0.1:PORT' line; log:\n" + tail(log());
    return;
  }
  ready_ = true;
}

std::optional<int> run_berth(const std::vector<std::string>& args, std::string* out,
                             std::string* err) {
  TempDir dir;
  std::vector<std::string> argv{BERTH_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv, dir.file("out"), dir.file("err"));
  if (!p.started()) {
    if (err) *err = p.spawn_error();
    return std::nullopt;
  }
  auto st = p.wait_exit(10s);
  if (out) *out = p.out();
  if (err) *err = p.err();
  return st;
}

namespace {
// True when nothing on 127.0.0.1 holds `port` now (a listener, a socket in
// TIME_WAIT, an outgoing connection's local end).
bool port_free(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}
}  // namespace

uint16_t unused_port() {
  // Ports come from below the kernel's ephemeral range (32768-60999 here), so
  // an outgoing connection (a load generator's, Berth's upstream or probe
  // connections) cannot take a port between this call and the moment an
  // origin started later binds it.
  // A port handed out is not handed out again by this process: two calls before either port is
  // bound (a server's listen port and its DNS port) would otherwise get the same one now and then.
  constexpr uint16_t kLow = 20000, kHigh = 32767;
  static thread_local std::mt19937 rng{std::random_device{}() ^ static_cast<unsigned>(::getpid())};
  static std::mutex mutex;
  static std::vector<bool> handed_out(kHigh + 1);
  std::uniform_int_distribution<int> pick(kLow, kHigh);
  for (int attempt = 0; attempt < 500; ++attempt) {
    auto port = static_cast<uint16_t>(pick(rng));
    std::lock_guard<std::mutex> lock(mutex);
    if (handed_out[port] || !port_free(port)) continue;
    handed_out[port] = true;
    return port;
  }
  return 0;
}

namespace {
long rss_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}
}  // namespace

long vmrss_kb(pid_t pid) {
  long total = rss_of(pid);
  if (total < 0) return -1;
  // Add direct children (in case workers are processes rather than threads).
  std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  if (DIR* d = ::opendir(task_dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream cf(task_dir + "/" + e->d_name + "/children");
      long child;
      while (cf >> child) {
        long r = rss_of(static_cast<pid_t>(child));
        if (r > 0) total += r;
      }
    }
    ::closedir(d);
  }
  return total;
}

// ---- HTTP client -----------------------------------------------------------------------------
std::optional<std::string> Response::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (ieq(k, name)) return v;
  return std::nullopt;
}

size_t Response::header_count(std::string_view name) const {
  size_t n = 0;
  for (auto& [k, v] : headers)
    if (ieq(k, name)) ++n;
  return n;
}

std::string make_request(std::string_view method, std::string_view target, std::string_view host,
                         const std::vector<std::string>& extra_headers, std::string_view body) {
  std::string r;
  r.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  if (!host.empty()) r.append("Host: ").append(host).append("\r\n");
  for (auto& h : extra_headers) r.append(h).append("\r\n");
  if (!body.empty() || method == "POST" || method == "PUT")
    r.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  r.append("\r\n");
  r.append(body);
  return r;
}

Client::Client(uint16_t port, std::chrono::milliseconds timeout) : timeout_(timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    connect_errno_ = errno;
    error_ = std::strerror(errno);
    return;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    connect_errno_ = errno;
    error_ = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Bound blocking sends so a stalled peer cannot hang the suite.
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  fd_ = fd;
}

Client::~Client() { close(); }

void Client::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool Client::send(std::string_view data) {
  if (fd_ < 0) return false;
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = std::string("send: ") + std::strerror(errno);
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void Client::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool Client::fill(Clock::time_point deadline) {
  if (fd_ < 0 || eof_) return false;
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int pr = ::poll(&p, 1, remaining_ms(deadline));
    if (pr < 0) {
      if (errno == EINTR) continue;
      error_ = std::string("poll: ") + std::strerror(errno);
      return false;
    }
    if (pr == 0) {
      error_ = "timeout";
      return false;
    }
    char tmp[256 * 1024];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      eof_ = true;
      error_ = std::string("recv: ") + std::strerror(errno);
      return false;
    }
    if (n == 0) {
      eof_ = true;
      error_ = "connection closed";
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
}

bool Client::read_line(std::string& line, Clock::time_point deadline, size_t max) {
  for (;;) {
    size_t nl = buf_.find("\r\n");
    if (nl != std::string::npos) {
      line = buf_.substr(0, nl);
      buf_.erase(0, nl + 2);
      return true;
    }
    if (buf_.size() > max) {
      error_ = "line too long";
      return false;
    }
    if (!fill(deadline)) return false;
  }
}

Response Client::read_head() {
  Response r;
  auto deadline = Clock::now() + timeout_;
  // Find the end of the head first, so raw_head is exact.
  for (;;) {
    size_t end = buf_.find("\r\n\r\n");
    if (end != std::string::npos) {
      r.raw_head = buf_.substr(0, end + 4);
      buf_.erase(0, end + 4);
      break;
    }
    if (buf_.size() > 1024 * 1024) {
      r.error = "response head too large";
      return r;
    }
    if (!fill(deadline)) {
      r.error = (buf_.empty() ? "no response: " : "incomplete response head: ") + error_ +
                (buf_.empty() ? "" : " [got: " + tail(buf_, 300) + "]");
      return r;
    }
  }
  std::string_view h = r.raw_head;
  size_t eol = h.find("\r\n");
  std::string_view status_line = h.substr(0, eol);
  // HTTP/1.1 SP 3DIGIT SP reason
  if (status_line.size() < 12 || status_line.substr(0, 5) != "HTTP/" || status_line[8] != ' ') {
    r.error = "bad status line: " + std::string(status_line);
    return r;
  }
  r.version = std::string(status_line.substr(0, 8));
  for (int i = 9; i < 12; ++i)
    if (status_line[i] < '0' || status_line[i] > '9') {
      r.error = "bad status code: " + std::string(status_line);
      return r;
    }
  int status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
  if (status_line.size() > 12) {
    if (status_line[12] != ' ') {
      r.error = "bad status line: " + std::string(status_line);
      return r;
    }
    r.reason = std::string(status_line.substr(13));
  }
  size_t pos = eol + 2;
  while (pos < h.size()) {
    size_t e = h.find("\r\n", pos);
    std::string_view line = h.substr(pos, e - pos);
    pos = e + 2;
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0 || line[0] == ' ' || line[0] == '\t' ||
        line[colon - 1] == ' ') {
      r.error = "malformed response header line: " + std::string(line);
      return r;
    }
    r.headers.emplace_back(std::string(line.substr(0, colon)),
                           std::string(trim(line.substr(colon + 1))));
  }
  r.status = status;
  return r;
}

bool Client::read_body(Response& r, bool is_head,
                       const std::function<bool(std::string_view)>& sink) {
  auto deadline = Clock::now() + timeout_;
  r.body_complete = false;
  if (is_head || r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200)) {
    r.framing = Response::Framing::None;
    r.body_complete = true;
    return true;
  }
  auto te = r.header("transfer-encoding");
  auto cl = r.header("content-length");
  if (te) {
    if (!ieq(trim(*te), "chunked")) {
      r.error = "unexpected Transfer-Encoding: " + *te;
      return false;
    }
    if (cl) {
      r.error = "response has both Content-Length and Transfer-Encoding";
      return false;
    }
    r.framing = Response::Framing::Chunked;
    for (;;) {
      std::string line;
      if (!read_line(line, deadline, 1024)) {
        r.error = "chunked body: " + error_;
        return false;
      }
      std::string_view sz = line;
      if (size_t semi = sz.find(';'); semi != std::string_view::npos) sz = sz.substr(0, semi);
      sz = trim(sz);
      if (sz.empty() || sz.size() > 15) {
        r.error = "bad chunk size line: " + line;
        return false;
      }
      uint64_t n = 0;
      for (char c : sz) {
        int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
                : (c >= 'a' && c <= 'f')                     ? c - 'a' + 10
                : (c >= 'A' && c <= 'F')                     ? c - 'A' + 10
                                                             : -1;
        if (d < 0) {
          r.error = "bad chunk size line: " + line;
          return false;
        }
        n = n * 16 + static_cast<uint64_t>(d);
      }
      if (n == 0) {
        for (;;) {
          if (!read_line(line, deadline, 65536)) {
            r.error = "chunked trailer: " + error_;
            return false;
          }
          if (line.empty()) {
            r.body_complete = true;
            return true;
          }
        }
      }
      while (n > 0) {
        if (buf_.empty() && !fill(deadline)) {
          r.error = "chunk data: " + error_;
          return false;
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>(n, buf_.size()));
        bool more = sink(std::string_view(buf_).substr(0, take));
        buf_.erase(0, take);
        n -= take;
        if (!more) {
          r.error = "stopped by sink";
          return false;
        }
      }
      while (buf_.size() < 2)
        if (!fill(deadline)) {
          r.error = "chunk CRLF: " + error_;
          return false;
        }
      if (buf_.compare(0, 2, "\r\n") != 0) {
        r.error = "chunk data not followed by CRLF";
        return false;
      }
      buf_.erase(0, 2);
    }
  }
  if (cl) {
    if (r.header_count("content-length") > 1) {
      r.error = "multiple Content-Length headers";
      return false;
    }
    std::string_view v = trim(*cl);
    if (v.empty() || v.find_first_not_of("0123456789") != std::string_view::npos) {
      r.error = "bad Content-Length: " + *cl;
      return false;
    }
    uint64_t n = std::stoull(std::string(v));
    r.framing = Response::Framing::Length;
    while (n > 0) {
      if (buf_.empty() && !fill(deadline)) {
        r.error = "body (" + std::to_string(n) + " bytes short): " + error_;
        return false;
      }
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, buf_.size()));
      bool more = sink(std::string_view(buf_).substr(0, take));
      buf_.erase(0, take);
      n -= take;
      if (!more) {
        r.error = "stopped by sink";
        return false;
      }
    }
    r.body_complete = true;
    return true;
  }
  // Close-delimited.
  r.framing = Response::Framing::Close;
  for (;;) {
    if (!buf_.empty()) {
      bool more = sink(buf_);
      buf_.clear();
      if (!more) {
        r.error = "stopped by sink";
        return false;
      }
    }
    if (!fill(deadline)) {
      if (eof_ && error_ == "connection closed") {
        r.body_complete = true;
        return true;
      }
      r.error = "close-delimited body: " + error_;
      return false;
    }
  }
}

Response Client::read_response(bool is_head) {
  Response r = read_head();
  if (r.status == 0) return r;
  read_body(r, is_head, [&](std::string_view d) {
    r.body.append(d);
    return true;
  });
  return r;
}

Response Client::request(std::string_view raw, bool is_head) {
  if (!send(raw)) {
    Response r;
    r.error = "send failed: " + error_;
    return r;
  }
  return read_response(is_head);
}

Response Client::get(std::string_view target, std::string_view host,
                     const std::vector<std::string>& extra_headers) {
  return request(make_request("GET", target, host, extra_headers));
}

std::string Client::read_exact(size_t n) {
  auto deadline = Clock::now() + timeout_;
  while (buf_.size() < n)
    if (!fill(deadline)) break;
  size_t take = std::min(n, buf_.size());
  std::string out = buf_.substr(0, take);
  buf_.erase(0, take);
  return out;
}

std::string Client::read_until_close() {
  auto deadline = Clock::now() + timeout_;
  while (fill(deadline)) {
  }
  std::string out = std::move(buf_);
  buf_.clear();
  return out;
}

bool Client::wait_closed(std::chrono::milliseconds timeout, std::string* data) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (data) {
      data->append(buf_);
    }
    buf_.clear();
    if (eof_) return true;
    if (!fill(deadline)) {
      if (data) data->append(buf_);
      buf_.clear();
      return eof_;
    }
  }
}

Response http_get(uint16_t port, std::string_view target, std::string_view host,
                  const std::vector<std::string>& extra_headers) {
  Client c(port);
  if (!c.connected()) {
    Response r;
    r.error = c.error();
    return r;
  }
  return c.get(target, host, extra_headers);
}

namespace {
// /api/stats: (the generation the control side built last, the oldest one a worker serves).
std::pair<uint64_t, uint64_t> generations(uint16_t admin_port) {
  Response r = http_get(admin_port, "/api/stats", "127.0.0.1");
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object() || !j["workers"].is_array() || j["workers"].empty()) return {0, 0};
  uint64_t oldest = UINT64_MAX;
  for (const auto& w : j["workers"]) oldest = std::min(oldest, w.value("generation", uint64_t{0}));
  return {j.value("generation", uint64_t{0}), oldest};
}
}  // namespace

uint64_t applied_generation(uint16_t admin_port) { return generations(admin_port).second; }

bool workers_caught_up(uint16_t admin_port, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        auto [built, oldest] = generations(admin_port);
        return built != 0 && oldest == built;
      },
      timeout, 10ms);
}

// ---- misc ---------------------------------------------------------------------------------------
std::string pattern(uint64_t offset, size_t len) {
  std::string out;
  out.reserve(len);
  size_t i = static_cast<size_t>(offset % kPattern.size());
  while (out.size() < len) {
    size_t take = std::min(kPattern.size() - i, len - out.size());
    out.append(kPattern.substr(i, take));
    i = 0;
  }
  return out;
}

uint32_t byte_sum(std::string_view data, uint32_t start) {
  uint32_t s = start;
  for (unsigned char c : data) s += c;
  return s;
}

uint32_t pattern_sum(uint64_t n) {
  uint32_t full = byte_sum(kPattern);
  uint64_t cycles = n / kPattern.size();
  uint32_t s = static_cast<uint32_t>(cycles * full);
  return byte_sum(kPattern.substr(0, static_cast<size_t>(n % kPattern.size())), s);
}

std::vector<std::pair<std::string, std::string>> parse_echo_headers(std::string_view head) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t pos = head.find("\r\n");
  if (pos == std::string_view::npos) return out;
  pos += 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string_view::npos) e = head.size();
    std::string_view line = head.substr(pos, e - pos);
    pos = e + 2;
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out.emplace_back(lower(line.substr(0, colon)), std::string(trim(line.substr(colon + 1))));
  }
  return out;
}

}  // namespace it
