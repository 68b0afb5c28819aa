// berth-bench-discovery_churn: Berth's CPU cost per Docker event with N containers known, against
// a replayer — a fake Docker Engine API (v1.41) on a Unix socket in a temp dir — so that N can be
// 1,000 without starting 1,000 real containers. Used by bench/propagation.sh.
//
//   berth-bench-discovery_churn --berth build-bench/berth [--n 100,1000] [--phase-seconds 8]
//       [--cycles 1000] [--noise 3000] [--gap-us 0] [--workers 0] [--inspect-template FILE]
//       [--list-template FILE] [--latency-samples 50] [--tmp DIR] [--keep 0|1]
//
// The fake engine answers GET /_ping, /version, /v1.41/containers/json, /v1.41/containers/ID/json
// (404 {"message":"No such container: ID"} when unknown) and streams /v1.41/events (chunked, one
// event per chunk, newline-terminated JSON in the format of ../shared/docker-api-notes.md §2-3,
// `since` replayed from a 256-event ring). Inspect and list answers are built from templates: by
// default a built-in host-network busybox container, or one recorded from a real engine
// (bench/propagation.sh records one) with Id, Name, State, Created, Config.Labels/Cmd replaced.
//
// For each N: start Berth (docker discovery pointed at the fake), wait for docker_synced with N
// routes, measure idle CPU, then three phases, each bracketed by CPU samples of Berth's process
// (utime+stime from /proc/PID/stat, and the ns-exact sum of /proc/PID/task/*/schedstat):
//   calibration: 10 slow lifecycle cycles (30 ms apart) measure the control thread's CPU per
//              event; GAP = 3x that (at least 2 ms) unless --gap-us is given, so that each event
//              is read and handled on its own. Phases last about --phase-seconds (at most
//              --cycles cycles / --noise events, at least 50 / 150).
//   lifecycle: cycles of (kill signal 15, die exitCode 143, stop, start) on distinct containers,
//              GAP between events; after `start` the tool waits for Berth's inspect of that
//              container (closed loop), answers it `running` with a new StartedAt.
//   noise:     health-check exec_create/exec_start/exec_die events of routed containers, GAP
//              apart (events Berth must read and ignore).
//   relist:    the event stream is ended (EOF, as when the daemon restarts); Berth reconnects and
//              re-lists + inspects all N containers: the cost a "re-list on every event" design
//              would pay per event.
//   latency:   (not a CPU phase) SAMPLES x: `die` (wait until applied), pause, `start`; time from
//              writing the start event to every worker serving the instance (/api/stats polled).
// Output: `RESULT kind=replay ...` lines on stdout, progress on stderr.
#include <nlohmann/json.hpp>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "bench/propagation_util.h"

namespace {

using pb::fmt;
using ojson = nlohmann::ordered_json;

// ---- templates ----

// Shape of a real docker 20.10 inspect of `docker run -d --network host bb:local httpd ...`
// (values shortened where they do not matter; the fields Berth reads are all present).
const char* kInspectTemplate = R"JSON({
 "Id": "0", "Created": "2026-11-27T16:44:48.012345678Z", "Path": "httpd",
 "Args": ["-f", "-p", "127.0.0.1:18000", "-h", "/www"],
 "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false, "OOMKilled": false,
           "Dead": false, "Pid": 14654, "ExitCode": 0, "Error": "", "StartedAt": "2026-11-27T16:44:48.192501272Z",
           "FinishedAt": "0001-01-01T00:00:00Z"},
 "Image": "sha256:5b0f34a0e4f3a8cbbc2cb2b9ab2a6b8e1c1f0a4fd4c0c7a8b8e8d8c8b8a89f0e",
 "ResolvConfPath": "/tmp/dk/root/containers/0/resolv.conf", "HostnamePath": "/tmp/dk/root/containers/0/hostname",
 "HostsPath": "/tmp/dk/root/containers/0/hosts", "LogPath": "/tmp/dk/root/containers/0/0-json.log",
 "Name": "/x", "RestartCount": 0, "Driver": "vfs", "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
 "AppArmorProfile": "", "ExecIDs": null,
 "HostConfig": {"Binds": null, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
   "NetworkMode": "host", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
   "AutoRemove": false, "VolumeDriver": "", "VolumesFrom": null, "CapAdd": null, "CapDrop": null,
   "CgroupnsMode": "host", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": null, "GroupAdd": null,
   "IpcMode": "private", "Cgroup": "", "Links": null, "OomScoreAdj": 0, "PidMode": "", "Privileged": false,
   "PublishAllPorts": false, "ReadonlyRootfs": false, "SecurityOpt": null, "UTSMode": "", "UsernsMode": "",
   "ShmSize": 67108864, "Runtime": "runc", "ConsoleSize": [0, 0], "Init": true, "Isolation": "", "CpuShares": 0,
   "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
   "BlkioDeviceReadBps": null, "BlkioDeviceWriteBps": null, "BlkioDeviceReadIOps": null,
   "BlkioDeviceWriteIOps": null, "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
   "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": null, "DeviceRequests": null,
   "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": null,
   "OomKillDisable": false, "PidsLimit": null, "Ulimits": null, "CpuCount": 0, "CpuPercent": 0,
   "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
   "MaskedPaths": ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                   "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
   "ReadonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]},
 "GraphDriver": {"Data": null, "Name": "vfs"}, "Mounts": [],
 "Config": {"Hostname": "vm", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
   "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false,
   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
   "Cmd": ["httpd", "-f", "-p", "127.0.0.1:18000", "-h", "/www"], "Image": "bb:local", "Volumes": null,
   "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": {}},
 "NetworkSettings": {"Bridge": "", "SandboxID": "6c1e0f6ab1e1d5d4b8a3a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3",
   "HairpinMode": false, "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
   "SandboxKey": "/tmp/dk/exec/netns/default", "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
   "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
   "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
   "Networks": {"host": {"IPAMConfig": null, "Links": null, "Aliases": null,
     "NetworkID": "83e47fbc61d07b379cfba146f873195a68a09bc74f736d06876768b773a27421",
     "EndpointID": "84a5822540fa1c3b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4", "Gateway": "",
     "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
     "MacAddress": "", "DriverOpts": null}}}
})JSON";

const char* kListTemplate = R"JSON({
 "Id": "0", "Names": ["/x"], "Image": "bb:local",
 "ImageID": "sha256:5b0f34a0e4f3a8cbbc2cb2b9ab2a6b8e1c1f0a4fd4c0c7a8b8e8d8c8b8a89f0e",
 "Command": "httpd -f -p 127.0.0.1:18000 -h /www", "Created": 1795797888, "Ports": [], "Labels": {},
 "State": "running", "Status": "Up 2 seconds", "HostConfig": {"NetworkMode": "host"},
 "NetworkSettings": {"Networks": {"host": {"IPAMConfig": null, "Links": null, "Aliases": null,
   "NetworkID": "83e47fbc61d07b379cfba146f873195a68a09bc74f736d06876768b773a27421",
   "EndpointID": "84a5822540fa1c3b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4", "Gateway": "",
   "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
   "MacAddress": "", "DriverOpts": null}}},
 "Mounts": []
})JSON";

std::string rfc3339(int64_t ns) {
  time_t sec = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&sec, &t);
  char b[64];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<long long>(ns % 1'000'000'000));
  return b;
}

std::string hex_id(uint64_t seed) {
  // Deterministic 64-hex id (splitmix64 stream).
  std::string out;
  uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 0x1234567;
  char b[17];
  for (int i = 0; i < 4; ++i) {
    x += 0x9E3779B97F4A7C15ULL;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(z));
    out += b;
  }
  return out;
}

// ---- the fake engine ----

struct Container {
  std::string id, name;
  int port = 0;
  std::map<std::string, std::string> labels;
  bool running = true;
  int64_t created_ns = 0, started_ns = 0, finished_ns = 0;
  int pid = 0;
};

class FakeEngine {
 public:
  FakeEngine(std::string socket_path, int n, ojson inspect_tpl, ojson list_tpl)
      : path_(std::move(socket_path)), inspect_tpl_(std::move(inspect_tpl)), list_tpl_(std::move(list_tpl)) {
    int64_t now = pb::realtime_ns();
    for (int i = 0; i < n; ++i) {
      Container c;
      c.id = hex_id(static_cast<uint64_t>(i) + 1);
      c.name = "churn-" + std::to_string(i);
      c.port = 20000 + i;
      c.labels = {{"berth.enable", "true"},
                  {"berth.host", std::string("c") + std::to_string(i) + ".churn.test"},
                  {"berth.port", std::to_string(c.port)},
                  {"com.example.bench", "discovery_churn"}};
      c.created_ns = now - 60'000'000'000LL;
      c.started_ns = now - 59'000'000'000LL;
      c.pid = 10000 + i;
      by_id_[c.id] = containers_.size();
      containers_.push_back(std::move(c));
    }
  }
  ~FakeEngine() { stop(); }

  void start() {
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path_.size() >= sizeof a.sun_path) pb::fail("socket path too long: " + path_);
    std::memcpy(a.sun_path, path_.c_str(), path_.size() + 1);
    ::unlink(path_.c_str());
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 256) != 0)
      pb::fail("fake engine: bind/listen " + path_ + ": " + std::strerror(errno));
    accept_thread_ = std::thread([this] { accept_loop(); });
  }

  void stop() {
    if (stopping_.exchange(true)) return;
    ::shutdown(listen_fd_, SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    ::close(listen_fd_);
    end_streams();
    // Connection threads end once their peer is gone (Berth is stopped before this).
    int64_t deadline = pb::mono_ns() + 5'000'000'000LL;
    while (active_.load() > 0 && pb::mono_ns() < deadline) {
      end_streams();
      pb::sleep_us(10'000);
    }
    ::unlink(path_.c_str());
  }

  // Ends every open event stream with a bare EOF (what a dying daemon does).
  void end_streams() {
    std::lock_guard lock(mu_);
    for (int fd : subscribers_) ::shutdown(fd, SHUT_RDWR);
    subscribers_.clear();
  }
  size_t subscribers() {
    std::lock_guard lock(mu_);
    return subscribers_.size();
  }

  size_t size() const { return containers_.size(); }
  const Container& at(size_t i) const { return containers_[i]; }

  // Emits one container event for container i.
  void emit(size_t i, const std::string& action, const std::map<std::string, std::string>& extra = {}) {
    std::lock_guard lock(mu_);
    Container& c = containers_[i];
    int64_t t = pb::realtime_ns();
    if (action == "start") {
      c.running = true;
      c.started_ns = t;
      c.pid += 1;
    } else if (action == "die") {
      c.running = false;
      c.finished_ns = t;
    }
    std::map<std::string, std::string> attrs = c.labels;
    attrs["image"] = "bb:local";
    attrs["name"] = c.name;
    for (const auto& [k, v] : extra) attrs[k] = v;
    ojson attributes = ojson::object();
    for (const auto& [k, v] : attrs) attributes[k] = v;
    ojson ev;
    ev["status"] = action;
    ev["id"] = c.id;
    ev["from"] = "bb:local";
    ev["Type"] = "container";
    ev["Action"] = action;
    ev["Actor"] = {{"ID", c.id}, {"Attributes", attributes}};
    ev["scope"] = "local";
    ev["time"] = t / 1'000'000'000;
    ev["timeNano"] = t;
    std::string line = ev.dump() + "\n";
    ring_.emplace_back(t, line);
    if (ring_.size() > 256) ring_.pop_front();
    std::string chunk = to_chunk(line);
    for (int fd : subscribers_) pb::write_all(fd, chunk);
    ++emitted_;
  }

  // Number of inspects Berth made of container i so far.
  uint64_t inspects_of(size_t i) {
    std::lock_guard lock(mu_);
    auto it = inspects_.find(containers_[i].id);
    return it == inspects_.end() ? 0 : it->second;
  }
  bool wait_inspects(size_t i, uint64_t at_least, int timeout_ms) {
    std::unique_lock lock(mu_);
    const std::string& id = containers_[i].id;
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      auto it = inspects_.find(id);
      return it != inspects_.end() && it->second >= at_least;
    });
  }
  std::map<std::string, uint64_t> request_counts() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  static std::string to_chunk(const std::string& data) {
    char h[32];
    std::snprintf(h, sizeof h, "%zx\r\n", data.size());
    return h + data + "\r\n";
  }

  static std::string response(int status, const std::string& body, bool may_chunk) {
    const char* reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request";
    time_t now = time(nullptr);
    tm t{};
    gmtime_r(&now, &t);
    char date[64];
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &t);
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                    "\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\n"
                    "Ostype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: " +
                    date + "\r\n";
    // Go's net/http sends Content-Length when the handler's output fits its 2 KiB buffer,
    // chunked otherwise.
    if (may_chunk && body.size() > 2048) {
      r += "Transfer-Encoding: chunked\r\n\r\n";
      for (size_t p = 0; p < body.size(); p += 4096) r += to_chunk(body.substr(p, 4096));
      r += "0\r\n\r\n";
    } else {
      r += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    }
    return r;
  }

  void accept_loop() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      if (stopping_) {
        ::close(fd);
        return;
      }
      active_.fetch_add(1);
      std::thread([this, fd] {
        serve(fd);
        active_.fetch_sub(1);
      }).detach();
    }
  }

  std::string inspect_json(const Container& c) {
    ojson j = inspect_tpl_;
    j["Id"] = c.id;
    j["Name"] = "/" + c.name;
    j["Created"] = rfc3339(c.created_ns);
    j["Path"] = "httpd";
    j["Args"] = {"-f", "-p", "127.0.0.1:" + std::to_string(c.port), "-h", "/www"};
    ojson& st = j["State"];
    st["Status"] = c.running ? "running" : "exited";
    st["Running"] = c.running;
    st["Pid"] = c.running ? c.pid : 0;
    st["ExitCode"] = c.running ? 0 : 143;
    st["StartedAt"] = rfc3339(c.started_ns);
    st["FinishedAt"] = c.finished_ns ? rfc3339(c.finished_ns) : "0001-01-01T00:00:00Z";
    ojson labels = ojson::object();
    for (const auto& [k, v] : c.labels) labels[k] = v;
    j["Config"]["Labels"] = labels;
    j["Config"]["Cmd"] = {"httpd", "-f", "-p", "127.0.0.1:" + std::to_string(c.port), "-h", "/www"};
    return j.dump();
  }

  std::string list_json() {
    ojson arr = ojson::array();
    for (const Container& c : containers_) {
      if (!c.running) continue;
      ojson j = list_tpl_;
      j["Id"] = c.id;
      j["Names"] = {"/" + c.name};
      j["Command"] = "httpd -f -p 127.0.0.1:" + std::to_string(c.port) + " -h /www";
      j["Created"] = c.created_ns / 1'000'000'000;
      ojson labels = ojson::object();
      for (const auto& [k, v] : c.labels) labels[k] = v;
      j["Labels"] = labels;
      j["State"] = "running";
      j["Status"] = "Up About a minute";
      arr.push_back(std::move(j));
    }
    return arr.dump();
  }

  void serve(int fd) {
    std::string in;
    char buf[8192];
    size_t head_end;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        return;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    std::string line = in.substr(0, in.find("\r\n"));
    size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
    std::string target = sp1 == std::string::npos ? "" : line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string path = target.substr(0, target.find('?'));
    std::string query = target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1);
    // Strip an API version prefix (/v1.41/...).
    std::string rest = path;
    if (rest.size() > 2 && rest[1] == 'v' && std::isdigit(static_cast<unsigned char>(rest[2]))) {
      size_t slash = rest.find('/', 1);
      rest = slash == std::string::npos ? "/" : rest.substr(slash);
    }
    std::string kind = rest == "/_ping" ? "ping"
                       : rest == "/version" ? "version"
                       : rest == "/events" ? "events"
                       : rest == "/containers/json" ? "list"
                       : (rest.rfind("/containers/", 0) == 0 && rest.size() > 17 &&
                          rest.compare(rest.size() - 5, 5, "/json") == 0)
                           ? "inspect"
                           : "other";
    {
      std::lock_guard lock(mu_);
      ++requests_[kind];
    }
    if (kind == "ping") {
      std::string r = response(200, "OK", false);
      r.replace(r.find("application/json"), 16, "text/plain; charset=utf-8");
      pb::write_all(fd, r);
    } else if (kind == "version") {
      pb::write_all(fd, response(200,
                                 R"({"Platform":{"Name":""},"Version":"20.10.24+dfsg1","ApiVersion":"1.41",)"
                                 R"("MinAPIVersion":"1.12","GitCommit":"5d6db84","GoVersion":"go1.19.8","Os":"linux",)"
                                 R"("Arch":"amd64","KernelVersion":"6.1.0","BuildTime":"2023-05-18T08:38:34.000000000+00:00"})",
                                 false));
    } else if (kind == "list") {
      std::string body;
      {
        std::lock_guard lock(mu_);
        body = list_json();
      }
      pb::write_all(fd, response(200, body, true));
    } else if (kind == "inspect") {
      std::string id = rest.substr(12, rest.size() - 12 - 5);
      std::string body;
      int status = 200;
      {
        std::lock_guard lock(mu_);
        auto it = by_id_.find(id);
        if (it == by_id_.end()) {
          status = 404;
          body = R"({"message":"No such container: )" + id + "\"}";
        } else {
          body = inspect_json(containers_[it->second]);
        }
      }
      pb::write_all(fd, response(status, body, true));
      {
        std::lock_guard lock(mu_);
        ++inspects_[id];
      }
      cv_.notify_all();
    } else if (kind == "events") {
      // Head now, then one chunk per event; replay the ring from `since` (inclusive, ns).
      int64_t since = 0;
      size_t p = query.find("since=");
      if (p != std::string::npos) {
        std::string v = query.substr(p + 6, query.find('&', p) == std::string::npos ? std::string::npos
                                                                                     : query.find('&', p) - p - 6);
        size_t dot = v.find('.');
        since = std::atoll(v.substr(0, dot).c_str()) * 1'000'000'000LL;
        if (dot != std::string::npos) {
          std::string frac = (v.substr(dot + 1) + "000000000").substr(0, 9);
          since += std::atoll(frac.c_str());
        }
      }
      time_t now = time(nullptr);
      tm t{};
      gmtime_r(&now, &t);
      char date[64];
      strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &t);
      std::string head = std::string("HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n") +
                         "Docker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\n" +
                         "Date: " + date + "\r\nTransfer-Encoding: chunked\r\n\r\n";
      {
        std::lock_guard lock(mu_);
        pb::write_all(fd, head);
        for (const auto& [tn, l] : ring_)
          if (since && tn >= since) pb::write_all(fd, to_chunk(l));
        subscribers_.push_back(fd);
      }
      // Hold the stream until the client goes away or we end it.
      while (!stopping_) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
      }
      std::lock_guard lock(mu_);
      subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), fd), subscribers_.end());
    } else {
      pb::write_all(fd, response(404, R"({"message":"page not found"})", false));
    }
    ::close(fd);
  }

  std::string path_;
  ojson inspect_tpl_, list_tpl_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> active_{0};
  std::vector<int> subscribers_;
  std::vector<Container> containers_;
  std::map<std::string, size_t> by_id_;
  std::deque<std::pair<int64_t, std::string>> ring_;
  std::map<std::string, uint64_t> inspects_;
  std::map<std::string, uint64_t> requests_;
  uint64_t emitted_ = 0;
};

// ---- Berth as a child ----

pid_t spawn_berth(const std::string& berth, const std::string& config, const std::string& log) {
  pid_t pid = fork();
  if (pid < 0) pb::fail("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench tool
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = ::open("/dev/null", O_RDWR);
    if (fd < 0 || null < 0) _exit(127);
    dup2(null, 0);
    dup2(null, 1);
    dup2(fd, 2);
    execl(berth.c_str(), berth.c_str(), "--config", config.c_str(), "--log-level", "info", static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

void stop_berth(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  int64_t deadline = pb::mono_ns() + 10'000'000'000LL;
  int st = 0;
  while (pb::mono_ns() < deadline) {
    if (waitpid(pid, &st, WNOHANG) == pid) return;
    pb::sleep_us(20'000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &st, 0);
}

uint16_t port_from_log(const std::string& log, const std::string& event, const std::string& key) {
  std::istringstream in(pb::read_file(log));
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" event=" + event + " ") == std::string::npos) continue;
    std::string v = pb::log_value(line, key);
    size_t colon = v.rfind(':');
    if (colon != std::string::npos) return static_cast<uint16_t>(std::atoi(v.c_str() + colon + 1));
  }
  return 0;
}

uint64_t generation(uint16_t admin) {
  pb::HttpResponse r = pb::http_get_tcp("127.0.0.1", admin, "127.0.0.1", "/api/stats");
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  return j.is_object() ? j.value("generation", uint64_t{0}) : 0;
}

struct Phase {
  std::string name;
  uint64_t events = 0;
  double wall_s = 0;
  pb::CpuSample c0, c1;
  uint64_t publishes = 0;
  double idle_ns_per_s = 0;
  std::string note;
  void report(int n, int workers) const {
    double sched_ns = static_cast<double>(c1.schedstat_ns - c0.schedstat_ns) - idle_ns_per_s * wall_s;
    double ticks_us = static_cast<double>(c1.ticks_us - c0.ticks_us);
    double per = events ? sched_ns / 1e3 / static_cast<double>(events) : NAN;
    double per_ticks = events ? ticks_us / static_cast<double>(events) : NAN;
    std::printf(
        "RESULT kind=replay n=%d workers=%d phase=%s events=%llu publishes=%llu wall_s=%s cpu_ticks_us=%s "
        "cpu_sched_us=%s control_thread_us=%s per_event_ticks_us=%s per_event_sched_us=%s%s%s\n",
        n, workers, name.c_str(), static_cast<unsigned long long>(events), static_cast<unsigned long long>(publishes),
        fmt(wall_s, 2).c_str(), fmt(ticks_us, 0).c_str(), fmt(sched_ns / 1e3, 0).c_str(),
        fmt((c1.main_thread_ns - c0.main_thread_ns) / 1e3, 0).c_str(), fmt(per_ticks, 1).c_str(),
        fmt(per, 1).c_str(), note.empty() ? "" : " ", note.c_str());
  }
};

struct Options {
  std::string berth;
  int cycles = 1000;  // at most
  int noise = 3000;   // at most
  int64_t gap_us = 0;          // 0 = calibrated per N
  double phase_seconds = 8;    // target length of the lifecycle and noise phases
  int workers = 0;
  bool keep = false;
  std::string tmp = "/tmp";    // where the per-run temp dir (socket, config, log) goes
  int latency_samples = 50;    // start -> workers serve it, with N known
  ojson inspect_tpl, list_tpl;
};

int run_one(int n, const Options& o) {
  std::string tmpl = o.tmp + "/berth-churn.XXXXXX";
  if (!mkdtemp(tmpl.data())) pb::fail("mkdtemp in " + o.tmp);
  const std::string dir = tmpl;
  const std::string sock = dir + "/docker.sock", config = dir + "/berth.yaml", log = dir + "/berth.log";
  FakeEngine engine(sock, n, o.inspect_tpl, o.list_tpl);
  engine.start();
  {
    std::ofstream y(config);
    y << "listeners: [\"127.0.0.1:0\"]\nworkers: " << o.workers << "\nadmin: {address: \"127.0.0.1:0\"}\n"
      << "docker: {enabled: true, endpoint: \"unix://" << sock << "\", empty_route_grace: 1h, reconnect_max: 1s}\n";
  }
  pid_t pid = spawn_berth(o.berth, config, log);
  auto bail = [&](const std::string& why) {
    std::fprintf(stderr, "discovery_churn n=%d: %s\n--- berth log (tail) ---\n", n, why.c_str());
    std::string l = pb::read_file(log);
    std::fprintf(stderr, "%s\n", l.substr(l.size() > 4000 ? l.size() - 4000 : 0).c_str());
    stop_berth(pid);
    engine.stop();
    std::printf("RESULT kind=error n=%d what=\"%s\"\n", n, why.c_str());
    return 1;
  };
  if (!pb::wait_log(log, "event=docker_synced", 1, 60'000)) return bail("berth did not sync with the fake engine in 60 s");
  uint16_t admin = port_from_log(log, "admin_listening", "address");
  if (!admin) return bail("no admin port in berth's log");
  int workers = 0;
  {
    pb::HttpResponse r = pb::http_get_tcp("127.0.0.1", admin, "127.0.0.1", "/api/routes", 10'000);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    size_t routes = j.is_object() && j.contains("routes") ? j["routes"].size() : 0;
    if (routes != static_cast<size_t>(n))
      return bail("expected " + std::to_string(n) + " routes after sync, /api/routes has " + std::to_string(routes));
    pb::HttpResponse s = pb::http_get_tcp("127.0.0.1", admin, "127.0.0.1", "/api/stats");
    auto js = nlohmann::json::parse(s.body, nullptr, false);
    workers = js.is_object() && js.contains("workers") ? static_cast<int>(js["workers"].size()) : 0;
  }
  std::fprintf(stderr, "discovery_churn n=%d: berth pid %d synced (%d routes, %d workers)\n", n, pid, n, workers);
  pb::sleep_us(500'000);

  // Idle.
  double idle_ns_per_s;
  {
    pb::CpuSample a = pb::read_cpu(pid);
    int64_t t = pb::mono_ns();
    pb::sleep_us(2'000'000);
    pb::CpuSample b = pb::read_cpu(pid);
    idle_ns_per_s = (b.schedstat_ns - a.schedstat_ns) / ((pb::mono_ns() - t) / 1e9);
  }
  std::printf("RESULT kind=replay_idle n=%d idle_us_per_s=%s\n", n, fmt(idle_ns_per_s / 1e3, 1).c_str());

  const size_t stride = 37;  // distinct containers in turn (37 is coprime with 100 and 1000)
  auto run_phase = [&](Phase& ph, const std::function<uint64_t()>& body) {
    ph.idle_ns_per_s = idle_ns_per_s;
    uint64_t g0 = generation(admin);
    ph.c0 = pb::read_cpu(pid);
    int64_t t0 = pb::mono_ns();
    ph.events = body();
    pb::sleep_us(300'000);  // let the last publication reach the workers
    ph.c1 = pb::read_cpu(pid);
    ph.wall_s = (pb::mono_ns() - t0) / 1e9;
    ph.publishes = generation(admin) - g0;
    ph.report(n, workers);
  };

  // Lifecycle: kill(15) -> die(143) -> stop -> start, closed loop on Berth's inspect.
  int timeouts = 0;
  size_t next_container = 0;
  auto lifecycle = [&](int cycles, int64_t gap_us) {
    uint64_t events = 0;
    for (int k = 0; k < cycles; ++k) {
      size_t i = (next_container++ * stride) % engine.size();
      engine.emit(i, "kill", {{"signal", "15"}});
      pb::sleep_us(gap_us);
      engine.emit(i, "die", {{"exitCode", "143"}});
      pb::sleep_us(gap_us);
      engine.emit(i, "stop");
      pb::sleep_us(gap_us);
      uint64_t before = engine.inspects_of(i);
      engine.emit(i, "start");
      events += 4;
      if (!engine.wait_inspects(i, before + 1, 5000)) ++timeouts;
      pb::sleep_us(gap_us);
    }
    return events;
  };

  // Calibration: a few slow cycles tell how long Berth's control thread needs per event; the
  // measured phases then space events 3x that (at least 2 ms) so that each event is read and
  // handled on its own (a burst would be read in one go and handled with one rebuild).
  Phase calib{"calibration"};
  run_phase(calib, [&] { return lifecycle(10, 30'000); });
  double ctl_us = (calib.c1.main_thread_ns - calib.c0.main_thread_ns) / 1e3 / static_cast<double>(calib.events);
  int64_t gap_us = o.gap_us > 0 ? o.gap_us : std::clamp<int64_t>(static_cast<int64_t>(3 * ctl_us), 2000, 60'000);
  int cycles = std::min(o.cycles, std::max(50, static_cast<int>(o.phase_seconds * 1e6 / (4.0 * static_cast<double>(gap_us)))));
  int noise_events = std::min(o.noise, std::max(150, static_cast<int>(o.phase_seconds * 1e6 / static_cast<double>(gap_us))));
  std::printf("RESULT kind=replay_pacing n=%d control_us_per_event=%s gap_us=%lld cycles=%d noise=%d\n", n,
              fmt(ctl_us, 1).c_str(), static_cast<long long>(gap_us), cycles, noise_events);

  Phase life{"lifecycle"};
  run_phase(life, [&] { return lifecycle(cycles, gap_us); });
  if (timeouts) std::fprintf(stderr, "discovery_churn n=%d: %d starts were not inspected within 5 s\n", n, timeouts);

  // Health-check noise: exec_create / exec_start / exec_die of routed containers.
  Phase noise{"noise"};
  run_phase(noise, [&] {
    uint64_t events = 0;
    for (int k = 0; k < noise_events; ++k) {
      size_t i = (static_cast<size_t>(k / 3) * stride) % engine.size();
      const Container& c = engine.at(i);
      std::string cmd = "/bin/sh -c wget -q -O- http://127.0.0.1:" + std::to_string(c.port) + "/ || exit 1";
      std::string exec_id = hex_id(0xE000000ULL + static_cast<uint64_t>(k / 3));
      switch (k % 3) {
        case 0: engine.emit(i, "exec_create: " + cmd, {{"execID", exec_id}}); break;
        case 1: engine.emit(i, "exec_start: " + cmd, {{"execID", exec_id}}); break;
        default: engine.emit(i, "exec_die", {{"execID", exec_id}, {"exitCode", "0"}}); break;
      }
      ++events;
      pb::sleep_us(gap_us);
    }
    return events;
  });

  // Full re-list: end the stream; Berth reconnects, lists and inspects all N.
  Phase relist{"relist"};
  size_t resynced_before = pb::count_occurrences(pb::read_file(log), "event=docker_resynced");
  auto req0 = engine.request_counts();
  bool resynced = false;
  int64_t resync_wall_ns = 0;
  run_phase(relist, [&] {
    int64_t t = pb::mono_ns();
    engine.end_streams();
    resynced = pb::wait_log(log, "event=docker_resynced", resynced_before + 1, 60'000);
    resync_wall_ns = pb::mono_ns() - t;
    return uint64_t{1};
  });
  auto req1 = engine.request_counts();
  std::printf("RESULT kind=replay_relist n=%d ok=%d wall_ms=%s inspects=%llu lists=%llu\n", n, resynced ? 1 : 0,
              fmt(resync_wall_ns / 1e6, 1).c_str(),
              static_cast<unsigned long long>(req1["inspect"] - req0["inspect"]),
              static_cast<unsigned long long>(req1["list"] - req0["list"]));

  // Propagation with N known: a `start` written to the stream (it arrives at once over the
  // Unix socket) -> every worker serves the snapshot with that instance (GET /api/stats polled
  // every 100 µs). Each sample first removes the instance with a `die` and waits until that is
  // applied, then pauses GAP so the control thread is idle when the start arrives.
  if (o.latency_samples > 0) {
    std::vector<double> lat, exact, from_receipt;
    int failed = 0;
    for (int k = 0; k < o.latency_samples; ++k) {
      size_t i = (next_container++ * stride) % engine.size();
      pb::Gens g0 = pb::stats(admin);
      engine.emit(i, "die", {{"exitCode", "137"}});
      if (!pb::wait_workers(admin, g0.control + 1, 10'000)) {
        ++failed;
        continue;
      }
      pb::sleep_us(std::max<int64_t>(gap_us, 20'000));
      pb::Gens g1 = pb::stats(admin);
      int64_t t0 = pb::mono_ns();
      int64_t w0 = pb::realtime_ns();
      engine.emit(i, "start");
      pb::Gens seen;
      int64_t t1 = pb::wait_workers(admin, g1.control + 1, 10'000, 100, &seen);
      if (!t1) {
        ++failed;
        continue;
      }
      lat.push_back((t1 - t0) / 1e6);
      // Exact, from Berth's own clocks: the last worker's apply time, from the write of the
      // event and from Berth's receipt of it (only when that generation is the one seen).
      if (seen.control == g1.control + 1 && seen.max_applied_ns > w0) {
        exact.push_back((seen.max_applied_ns - w0) / 1e6);
        if (seen.event_received_ns > 0) from_receipt.push_back((seen.max_applied_ns - seen.event_received_ns) / 1e6);
      }
      pb::sleep_us(std::max<int64_t>(gap_us, 20'000));
    }
    std::printf("RESULT kind=replay_latency n=%d samples=%zu failed=%d p50=%s p99=%s max=%s min=%s\n", n, lat.size(),
                failed, fmt(pb::percentile(lat, 50), 3).c_str(), fmt(pb::percentile(lat, 99), 3).c_str(),
                fmt(pb::percentile(lat, 100), 3).c_str(), fmt(pb::percentile(lat, 0), 3).c_str());
    for (auto [kind, v] : {std::pair{"replay_latency_exact", &exact}, std::pair{"replay_latency_berth_receipt", &from_receipt}})
      std::printf("RESULT kind=%s n=%d samples=%zu p50=%s p99=%s max=%s min=%s\n", kind, n, v->size(),
                  fmt(pb::percentile(*v, 50), 3).c_str(), fmt(pb::percentile(*v, 99), 3).c_str(),
                  fmt(pb::percentile(*v, 100), 3).c_str(), fmt(pb::percentile(*v, 0), 3).c_str());
  }

  // Anything odd in Berth's log?
  {
    std::istringstream in(pb::read_file(log));
    std::string line;
    size_t warn = 0;
    while (std::getline(in, line)) {
      if (line.find("level=warn") == std::string::npos && line.find("level=error") == std::string::npos) continue;
      if (line.find("event=docker_disconnected") != std::string::npos && line.find("event stream") != std::string::npos)
        continue;  // the one the relist phase causes on purpose
      if (warn++ < 5) std::fprintf(stderr, "discovery_churn n=%d: berth log: %s\n", n, line.c_str());
    }
    std::printf("RESULT kind=replay_log n=%d warnings=%zu\n", n, warn);
  }
  {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) {
      pid = -1;
      return bail("berth exited during the run");
    }
  }
  stop_berth(pid);
  engine.stop();
  if (o.keep) std::fprintf(stderr, "discovery_churn n=%d: kept %s\n", n, dir.c_str());
  else std::filesystem::remove_all(dir);
  return (timeouts || !resynced) ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, nullptr, _IOLBF, 0);
  Options o;
  std::vector<int> ns = {100, 1000};
  std::string inspect_file, list_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--berth") o.berth = v;
    else if (k == "--n") {
      ns.clear();
      std::stringstream ss(v);
      std::string x;
      while (std::getline(ss, x, ',')) ns.push_back(std::atoi(x.c_str()));
    } else if (k == "--cycles") o.cycles = std::atoi(v.c_str());
    else if (k == "--noise") o.noise = std::atoi(v.c_str());
    else if (k == "--gap-us") o.gap_us = std::atoll(v.c_str());
    else if (k == "--phase-seconds") o.phase_seconds = std::atof(v.c_str());
    else if (k == "--workers") o.workers = std::atoi(v.c_str());
    else if (k == "--keep") o.keep = v == "1";
    else if (k == "--tmp") o.tmp = v;
    else if (k == "--latency-samples") o.latency_samples = std::atoi(v.c_str());
    else if (k == "--inspect-template") inspect_file = v;
    else if (k == "--list-template") list_file = v;
    else pb::fail("unknown argument " + k);
  }
  if (o.berth.empty()) pb::fail("--berth PATH is required");
  auto load = [](const std::string& file, const char* builtin, const char* what) {
    ojson j = ojson::parse(file.empty() ? std::string(builtin) : pb::read_file(file), nullptr, false);
    if (j.is_array() && !j.empty()) j = j[0];  // a recorded /containers/json answer
    if (!j.is_object()) pb::fail(std::string("bad ") + what + " template " + file);
    std::fprintf(stderr, "discovery_churn: %s template: %s\n", what, file.empty() ? "built-in" : file.c_str());
    return j;
  };
  o.inspect_tpl = load(inspect_file, kInspectTemplate, "inspect");
  o.list_tpl = load(list_file, kListTemplate, "list");
  int rc = 0;
  for (int n : ns) rc = std::max(rc, run_one(n, o));
  return rc;
}
