// A fake Docker Engine API (v1.41) on a Unix socket, for measuring and testing Berth's Docker
// discovery without a real engine: GET /_ping, /version, /containers/json,
// /containers/ID/json (404 {"message":"No such container: ID"} when unknown), and a streamed
// /events (chunked, one newline-terminated JSON event per chunk, in the format of
// ../shared/docker-api-notes.md §2-3, `since` replayed from a 256-event ring). Inspect and list
// answers are built from templates: by default a host-network busybox container, or answers
// recorded from a real engine, with Id, Name, State, Created and Config.Labels/Cmd replaced.
// Inspects can be held (answered only when the caller allows), to put events between a
// request and its answer. One thread per connection; everything is guarded by one mutex.
// Used by bench/discovery_churn.cc and tests/integration/docker_fake_engine_test.cc.
#pragma once

#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/propagation_util.h"

namespace fake_docker {

using ojson = nlohmann::ordered_json;


// Shape of a real docker 20.10 inspect of `docker run -d --network host bb:local httpd ...`
// (values shortened where they do not matter; the fields Berth reads are all present).
inline const char* const kInspectTemplate = R"JSON({
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

inline const char* const kListTemplate = R"JSON({
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

inline std::string rfc3339(int64_t ns) {
  time_t sec = static_cast<time_t>(ns / 1'000'000'000);
  tm t{};
  gmtime_r(&sec, &t);
  char b[64];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                t.tm_hour, t.tm_min, t.tm_sec, static_cast<long long>(ns % 1'000'000'000));
  return b;
}

inline std::string hex_id(uint64_t seed) {
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
  bool paused = false;
  int64_t created_ns = 0, started_ns = 0, finished_ns = 0;
  int pid = 0;
  // Empty: host networking (the template). Else the container is on this one network, where
  // its inspect shows `ip` while it runs and no address before (as an engine assigns it at start).
  std::string network, ip;
  // Not 200: its inspect is answered with this status and a docker error message, as an engine
  // does for a container it fails to describe.
  int inspect_status = 200;
  // Removed (remove_unseen): no longer listed, and its inspect is a 404.
  bool removed = false;
  // Not empty: the container has a HEALTHCHECK, and its inspect says this State.Health.Status.
  std::string health;
};

// A container whose labels route `host` to its `port` (berth.enable, berth.host, berth.port),
// created now and not started yet.
inline Container routed_container(uint64_t seed, std::string name, const std::string& host, int port) {
  Container c;
  c.id = hex_id(seed);
  c.name = std::move(name);
  c.port = port;
  c.labels = {{"berth.enable", "true"}, {"berth.host", host}, {"berth.port", std::to_string(port)}};
  c.running = false;
  c.created_ns = pb::realtime_ns();
  return c;
}

// A running container (created and started now) with exactly these labels, on `port`.
inline Container running_container(uint64_t seed, std::string name, int port, std::map<std::string, std::string> labels) {
  Container c;
  c.id = hex_id(seed);
  c.name = std::move(name);
  c.port = port;
  c.labels = std::move(labels);
  c.running = true;
  c.created_ns = c.started_ns = pb::realtime_ns();
  return c;
}

// routed_container's labels plus `extra`, running.
inline Container running_routed(uint64_t seed, std::string name, const std::string& host, int port,
                                std::map<std::string, std::string> extra = {}) {
  extra.insert({{"berth.enable", "true"}, {"berth.host", host}, {"berth.port", std::to_string(port)}});
  return running_container(seed, std::move(name), port, std::move(extra));
}

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
    {
      std::lock_guard lock(mu_);
      cv_.notify_all();  // held inspects are answered
    }
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
    } else if (action == "pause" || action == "unpause") {
      c.paused = action == "pause";
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

  // What `docker stop` makes the engine emit for container i: kill (signal 15), die (exit code
  // 143), stop; gap_us apart, and after the last.
  void emit_stop(size_t i, int64_t gap_us = 0) {
    emit(i, "kill", {{"signal", "15"}});
    pb::sleep_us(gap_us);
    emit(i, "die", {{"exitCode", "143"}});
    pb::sleep_us(gap_us);
    emit(i, "stop");
    pb::sleep_us(gap_us);
  }

  // Adds a container (not running unless c.running); returns its index. Emits no event.
  size_t add(Container c) {
    std::lock_guard lock(mu_);
    by_id_[c.id] = containers_.size();
    containers_.push_back(std::move(c));
    return containers_.size() - 1;
  }

  // Removes container i with no event, as when the engine dropped the events of its removal
  // (a subscriber that fell behind).
  void remove_unseen(size_t i) {
    std::lock_guard lock(mu_);
    containers_[i].removed = true;
    containers_[i].running = false;
  }

  // While held, a list's answer is built when it is asked and sent once the hold ends.
  void hold_lists(bool hold) {
    std::lock_guard lock(mu_);
    hold_lists_ = hold;
    cv_.notify_all();
  }

  // While held, an inspect's answer is built when it is asked (so it shows the container as it
  // was then) and sent only once a permit is given; each answer uses one permit.
  void hold_inspects(bool hold) {
    std::lock_guard lock(mu_);
    hold_ = hold;
    cv_.notify_all();
  }
  void allow_inspects(int count) {
    std::lock_guard lock(mu_);
    permits_ += count;
    cv_.notify_all();
  }
  // Inspects of container i asked so far (answered or not) reach at_least within the timeout.
  bool wait_asked(size_t i, uint64_t at_least, int timeout_ms) { return wait_count(asked_, i, at_least, timeout_ms); }

  // Number of inspects Berth made of container i so far (answers sent).
  uint64_t inspects_of(size_t i) {
    std::lock_guard lock(mu_);
    auto it = inspects_.find(containers_[i].id);
    return it == inspects_.end() ? 0 : it->second;
  }
  bool wait_inspects(size_t i, uint64_t at_least, int timeout_ms) {
    return wait_count(inspects_, i, at_least, timeout_ms);
  }
  std::map<std::string, uint64_t> request_counts() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  bool wait_count(const std::map<std::string, uint64_t>& counts, size_t i, uint64_t at_least, int timeout_ms) {
    std::unique_lock lock(mu_);
    const std::string& id = containers_[i].id;
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      auto it = counts.find(id);
      return it != counts.end() && it->second >= at_least;
    });
  }

  static std::string to_chunk(const std::string& data) {
    char h[32];
    std::snprintf(h, sizeof h, "%zx\r\n", data.size());
    return h + data + "\r\n";
  }

  static std::string response(int status, const std::string& body, bool may_chunk) {
    const char* reason = status == 200   ? "OK"
                         : status == 404 ? "Not Found"
                         : status == 500 ? "Internal Server Error"
                                         : "Bad Request";
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
    st["Paused"] = c.paused;
    st["Pid"] = c.running ? c.pid : 0;
    st["ExitCode"] = c.running ? 0 : 143;
    st["StartedAt"] = rfc3339(c.started_ns);
    st["FinishedAt"] = c.finished_ns ? rfc3339(c.finished_ns) : "0001-01-01T00:00:00Z";
    ojson labels = ojson::object();
    for (const auto& [k, v] : c.labels) labels[k] = v;
    j["Config"]["Labels"] = labels;
    j["Config"]["Cmd"] = {"httpd", "-f", "-p", "127.0.0.1:" + std::to_string(c.port), "-h", "/www"};
    if (!c.health.empty()) {
      j["Config"]["Healthcheck"] = {{"Test", {"CMD-SHELL", "true"}}};
      st["Health"] = {{"Status", c.health}, {"FailingStreak", 0}};
    }
    if (!c.network.empty()) {
      j["HostConfig"]["NetworkMode"] = c.network;
      ojson n = j["NetworkSettings"]["Networks"]["host"];
      n["IPAddress"] = c.running ? c.ip : "";
      j["NetworkSettings"]["Networks"] = ojson::object({{c.network, n}});
    }
    return j.dump();
  }

  // GET /containers/json: the running containers; with all=1, the stopped ones too (as the
  // engine does, State "exited").
  std::string list_json(bool all) {
    ojson arr = ojson::array();
    for (const Container& c : containers_) {
      if (c.removed || (!c.running && !all)) continue;
      ojson j = list_tpl_;
      j["Id"] = c.id;
      j["Names"] = {"/" + c.name};
      j["Command"] = "httpd -f -p 127.0.0.1:" + std::to_string(c.port) + " -h /www";
      j["Created"] = c.created_ns / 1'000'000'000;
      ojson labels = ojson::object();
      for (const auto& [k, v] : c.labels) labels[k] = v;
      j["Labels"] = labels;
      j["State"] = c.running ? "running" : "exited";
      j["Status"] = c.running ? "Up About a minute" : "Exited (143) 5 seconds ago";
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
        std::unique_lock lock(mu_);
        body = list_json(("&" + query + "&").find("&all=1&") != std::string::npos);
        cv_.notify_all();
        cv_.wait(lock, [&] { return !hold_lists_ || stopping_; });
      }
      pb::write_all(fd, response(200, body, true));
    } else if (kind == "inspect") {
      std::string id = rest.substr(12, rest.size() - 12 - 5);
      std::string body;
      int status = 200;
      {
        std::unique_lock lock(mu_);
        auto it = by_id_.find(id);
        if (it == by_id_.end() || containers_[it->second].removed) {
          status = 404;
          body = R"({"message":"No such container: )" + id + "\"}";
        } else if (const Container& c = containers_[it->second]; c.inspect_status != 200) {
          status = c.inspect_status;
          body = R"({"message":"cannot inspect container )" + id + "\"}";
        } else {
          body = inspect_json(c);
        }
        ++asked_[id];
        cv_.notify_all();
        cv_.wait(lock, [&] { return !hold_ || permits_ > 0 || stopping_; });
        if (hold_ && permits_ > 0) --permits_;
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
  std::map<std::string, uint64_t> asked_;
  bool hold_ = false;
  bool hold_lists_ = false;
  int permits_ = 0;
  uint64_t emitted_ = 0;
};

}  // namespace fake_docker
