// Integration-test harness: child processes (berth, berth-test-origin), a raw-socket HTTP/1.1
// client and a few helpers. Nothing here depends on Catch2; env.h adds the Catch-aware bits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace it {

using Clock = std::chrono::steady_clock;

// Seconds elapsed since t0.
inline double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}
using namespace std::chrono_literals;

// ---- temp files -----------------------------------------------------------------------------
// A private directory under $TMPDIR (or /tmp), removed with its contents on destruction unless
// BERTH_IT_KEEP=1 is set in the environment.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

bool write_file(const std::string& path, std::string_view content);
std::string read_file(const std::string& path);

// ---- processes --------------------------------------------------------------------------------
class Process {
 public:
  Process() = default;
  // Spawns argv[0] with stdout/stderr redirected to the given files (stdin = /dev/null).
  Process(std::vector<std::string> argv, std::string stdout_path, std::string stderr_path);
  ~Process();  // terminate(): SIGTERM, then SIGKILL after 5 s
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  const std::string& spawn_error() const { return spawn_error_; }
  bool running();                       // reaps if it exited
  bool signal(int sig);                 // false if not running
  // Waits for exit; the raw wait status, or nullopt on timeout.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  std::optional<int> exit_status() const { return status_; }
  // SIGTERM, wait up to 5 s, then SIGKILL. Returns the wait status if it was running.
  std::optional<int> terminate();

  std::string out() const { return read_file(out_path_); }
  std::string err() const { return read_file(err_path_); }
  const std::string& out_path() const { return out_path_; }
  const std::string& err_path() const { return err_path_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string out_path_, err_path_;
  std::string spawn_error_;
};

// The first executable `name` in $PATH; "" when there is none.
std::string find_in_path(const std::string& name);
// "exited 0", "killed by signal 11", ... for messages.
std::string describe_status(int wait_status);
bool exited_with(const std::optional<int>& wait_status, int code);

// Polls pred every `step` until it returns true or the timeout passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step = 20ms);

// Runs a shell command bounded by `timeout_s` (coreutils timeout); its stdout and stderr
// together in *out. The exit code, -1 when it did not exit normally.
int sh(const std::string& cmd, std::string* out = nullptr, int timeout_s = 20);

// Last `max` bytes of a text, for failure messages.
std::string tail(const std::string& text, size_t max = 4000);

// Test certificates made with the openssl command (Debian package openssl) in `dir`, all ECDSA
// P-256, valid 2 days: one self-signed CA per name in `cas` (NAME.key, NAME.crt; the first
// signs), then for each {name, extension line} of `signed_by_first` NAME.key and NAME.crt, e.g.
// {"server", "subjectAltName=IP:127.0.0.1"}. False on failure, with openssl's output in *log.
bool make_certificates(const TempDir& dir, const std::vector<std::string>& cas,
                       const std::vector<std::pair<std::string, std::string>>& signed_by_first, std::string* log);

// ---- origin -----------------------------------------------------------------------------------
class Origin {
 public:
  explicit Origin(std::string name = "origin");
  bool ok() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  const std::string& name() const { return name_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  Process& process() { return proc_; }
  std::string error() const { return error_; }

  // Direct (not through berth) queries of the origin's counters.
  struct Stats {
    long connections = -1;
    long requests = -1;
  };
  Stats stats();
  long seen(const std::string& marker);  // -1 on failure
  bool reset();

 private:
  std::string name_;
  TempDir dir_;
  Process proc_;
  uint16_t port_ = 0;
  std::string error_;
};

// ---- berth ------------------------------------------------------------------------------------
class Berth {
 public:
  // Writes yaml to a temp config file, spawns BERTH_BINARY --config FILE and waits up to 10 s
  // for "event=ready" in its log. ok() tells whether that worked; error() why not.
  // nofile > 0: soft and hard RLIMIT_NOFILE both set to it before exec (through
  // `sh -c 'ulimit -n N && exec berth ...'`, so the process id is still berth's own).
  // extra_args follow "--config FILE" (e.g. {"--log-level", "debug"}).
  explicit Berth(const std::string& yaml, int nofile = 0, const std::vector<std::string>& extra_args = {});
  bool ok() const { return ready_; }
  const std::string& error() const { return error_; }
  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }
  const std::string& config_path() const { return config_path_; }
  Process& process() { return proc_; }
  pid_t pid() const { return proc_.pid(); }
  bool running() { return proc_.running(); }
  std::string log() const { return proc_.err() + proc_.out(); }
  // Waits until log() holds `text`. Berth writes its log lines in batches (every 25 ms), so a
  // line can come after the effect a test saw: a test looks for one with this, not with log().
  bool log_shows(std::string_view text, std::chrono::milliseconds timeout = 5s) const;
  bool rewrite_config(std::string_view yaml) { return write_file(config_path_, yaml); }

 private:
  TempDir dir_;
  std::string config_path_;
  Process proc_;
  bool ready_ = false;
  uint16_t port_ = 0;
  uint16_t admin_port_ = 0;
  std::string error_;
};

// Runs `berth args...` to completion (timeout 10 s). Returns the wait status (nullopt on
// timeout) and fills stdout/stderr.
std::optional<int> run_berth(const std::vector<std::string>& args, std::string* out,
                             std::string* err);

// A port on 127.0.0.1 where nothing listens now, drawn at random from
// 20000-32767, below the kernel's ephemeral range.
uint16_t unused_port();

// Reloads. Each worker of Berth takes a new snapshot (config reload, Docker change) on its own
// loop, a little after the control side has built it, which /api/routes already shows: one
// request answered from the new configuration says nothing of the other workers.
// The oldest route-table generation a worker still serves (/api/stats), 0 when unreadable. After
// a reload: take it before, then wait until it is above that.
uint64_t applied_generation(uint16_t admin_port);
// Waits until every worker serves the latest snapshot the control side has built.
bool workers_caught_up(uint16_t admin_port, std::chrono::milliseconds timeout = 5s);

// /proc/<pid>/status VmRSS in KiB (plus that of direct child processes); -1 if unreadable.
long vmrss_kb(pid_t pid);

// ---- HTTP client -----------------------------------------------------------------------------
struct Response {
  int status = 0;            // 0 = no (valid) response; see error
  std::string version;       // "HTTP/1.1"
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names as received
  std::string body;
  std::string raw_head;
  enum class Framing { None, Length, Chunked, Close } framing = Framing::None;
  std::string error;         // why status == 0 / why the body is incomplete
  bool body_complete = false;

  // First header value with this name (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
  size_t header_count(std::string_view name) const;
  bool ok() const { return status != 0 && error.empty(); }
};

// Builds a request. Adds Host (unless host is empty) and, when body is non-empty or the
// method is POST/PUT, Content-Length. extra_headers are "Name: value" lines without CRLF.
std::string make_request(std::string_view method, std::string_view target, std::string_view host,
                         const std::vector<std::string>& extra_headers = {},
                         std::string_view body = {});

class Client {
 public:
  explicit Client(uint16_t port, std::chrono::milliseconds timeout = 10s);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  int connect_errno() const { return connect_errno_; }
  int fd() const { return fd_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  const std::string& error() const { return error_; }

  bool send(std::string_view data);
  void shutdown_write();
  void close();

  // Reads the next response head. is_head: the request was HEAD (no body follows).
  Response read_head();
  // Reads the body of a response whose head read_head() returned, handing bytes to sink
  // (sink returns false to stop early). Sets r.body_complete / r.error.
  bool read_body(Response& r, bool is_head, const std::function<bool(std::string_view)>& sink);
  // Head + body (body accumulated in Response::body).
  Response read_response(bool is_head = false);
  // Sends a request and reads its response.
  Response request(std::string_view raw, bool is_head = false);
  Response get(std::string_view target, std::string_view host,
               const std::vector<std::string>& extra_headers = {});

  // Exactly n raw bytes (for tunnels), or fewer on timeout/EOF.
  std::string read_exact(size_t n);
  // Everything until the peer closes (or timeout).
  std::string read_until_close();
  // True when the peer closed (EOF or reset) within timeout; any data received meanwhile is
  // appended to *data (if given). False on timeout.
  bool wait_closed(std::chrono::milliseconds timeout, std::string* data = nullptr);
  // Bytes received but not consumed yet.
  const std::string& pending() const { return buf_; }

 private:
  // Reads more into buf_; false on EOF/error/timeout (sets eof_/error_).
  bool fill(Clock::time_point deadline);
  bool read_line(std::string& line, Clock::time_point deadline, size_t max = 65536);

  int fd_ = -1;
  int connect_errno_ = 0;
  std::chrono::milliseconds timeout_;
  std::string buf_;
  bool eof_ = false;
  std::string error_;
};

// Percent-encodes everything but unreserved characters (for query values).
std::string url_encode(std::string_view s);

// Standard padded base64, by OpenSSL (not by the code under test).
std::string base64(std::string_view bytes);

// How often `needle` occurs in `text` (occurrences that do not overlap).
inline size_t occurrences(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t p = 0; (p = text.find(needle, p)) != std::string_view::npos; p += needle.size()) ++n;
  return n;
}

// One-shot GET on a fresh connection.
Response http_get(uint16_t port, std::string_view target, std::string_view host,
                  const std::vector<std::string>& extra_headers = {});

// The origin's size=N pattern.
inline constexpr std::string_view kPattern =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
std::string pattern(uint64_t offset, size_t len);
// Sum of the pattern bytes [0, n) mod 2^32.
uint32_t pattern_sum(uint64_t n);
uint32_t byte_sum(std::string_view data, uint32_t start = 0);

// Splits the raw request head that /echo returns into (lower-case name, value) pairs.
std::vector<std::pair<std::string, std::string>> parse_echo_headers(std::string_view head);
std::string lower(std::string_view s);

}  // namespace it
