// berth-bench-propagation: route propagation and churn cost of Berth's Docker discovery against a
// real Docker engine (driven by bench/propagation.sh, which starts the engine and Berth).
//
//   berth-bench-propagation starts --docker-host unix:///D/docker.sock --listen PORT --admin PORT
//       --berth-log FILE [--count 100] [--port-base 19200] [--prefix prop-] [--label benchprop]
//       [--image bb:local] [--poll-us 100] [--e2e-pause-us 200] [--tsv FILE]
//     Starts COUNT labelled busybox httpd containers one after another (`docker run -d --init
//     --network host`, each on its own 127.0.0.1 port and host name) and measures for each:
//       internal: the engine's `start` event (its timeNano) -> every Berth worker has applied the
//                 snapshot published for it (GET /api/stats, workers[].generation, polled from
//                 the moment this tool's own /events subscriber sees the start event);
//       internal from arrival: the same, from this tool's receipt of the event (a stand-in for
//                 Berth's receipt: same engine broadcast), without the engine's delivery delay;
//       e2e:      `docker run` returned -> first 200 through Berth's listener for that host
//                 (and, for context, when a direct connect to the container's port first worked).
//       exact:    the same spans ended by Berth's own clock instead of the poll: /api/stats gives
//                 each worker's applied_at_ns (CLOCK_REALTIME when it started serving its
//                 snapshot) and generation_event_received_ns (when Berth read the event that led
//                 to it), so "from Berth's receipt" is the span, without poll overhead.
//     Cross-checks: the `routes_updated` log line of that generation (ms resolution), the event
//     delivery delay to a plain subscriber, and a `GET /containers/ID/json` round trip (the
//     inspect Berth must do before it can publish).
//
//     With --front-admin PORT (a front door of the etcd registry, bench/registry.sh): --admin is
//     the sidecar's admin API, --listen the front door's listener, and each start is also followed
//     to the front door: its workers' generation is polled the same way, and by its own clocks
//     front_exact_* gives the start event -> every front-door worker serves it, the front door's
//     own share (watch message read -> every worker) and the sidecar's receipt of the engine event
//     -> the front door's receipt of the watch message (inspect, publication, etcd, watch).
//
//   berth-bench-propagation churn --docker-host ... --admin PORT --berth-pid PID --count N
//       [--cycles 50] [--prefix prop-] [--label benchprop]
//     With the N containers of `starts` running: CYCLES x (`docker stop`, `docker start`) of
//     distinct containers; Berth's CPU time (utime+stime, and the ns-exact schedstat sum over its
//     threads) divided by the container events the engine emitted meanwhile.
//
// Output: human-readable progress on stderr, `RESULT key=value ...` lines on stdout.
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "bench/propagation_util.h"

namespace {

using pb::fmt;

struct Args {
  std::map<std::string, std::string> kv;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second;
  }
  long num(const std::string& k, long def) const {
    auto it = kv.find(k);
    return it == kv.end() ? def : std::atol(it->second.c_str());
  }
  std::string need(const std::string& k) const {
    auto it = kv.find(k);
    if (it == kv.end()) pb::fail("missing --" + k);
    return it->second;
  }
};

// ---- a plain /events subscriber (the bench's own, next to Berth's) ----

struct SeenEvent {
  int64_t time_nano = 0;
  int64_t received_ns = 0;  // CLOCK_REALTIME when this subscriber parsed it
  std::string id;
};

class EventWatcher {
 public:
  EventWatcher(std::string socket_path, std::string label) : path_(std::move(socket_path)), label_(std::move(label)) {}
  ~EventWatcher() { stop(); }

  void start() {
    fd_ = pb::connect_unix(path_, 0);
    if (fd_ < 0) pb::fail("connect to " + path_ + ": " + std::strerror(errno));
    nlohmann::json filters = {{"type", {"container"}}, {"label", {label_ + "=1"}}};
    // `since` = now: closes the gap between the 200 head and the engine registering us (notes §0.1).
    int64_t now = pb::realtime_ns();
    char since[64];
    std::snprintf(since, sizeof since, "%lld.%09lld", static_cast<long long>(now / 1'000'000'000),
                  static_cast<long long>(now % 1'000'000'000));
    std::string req = "GET /v1.41/events?since=" + std::string(since) + "&filters=" + pb::url_encode(filters.dump()) +
                      " HTTP/1.1\r\nHost: docker\r\nUser-Agent: berth-bench\r\n\r\n";
    if (!pb::write_all(fd_, req)) pb::fail("events: write failed");
    // Read the head synchronously.
    std::string in;
    char buf[4096];
    size_t e;
    while ((e = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) pb::fail("events: no response head");
      in.append(buf, static_cast<size_t>(n));
    }
    if (in.compare(0, 12, "HTTP/1.1 200") != 0) pb::fail("events: " + in.substr(0, in.find("\r\n")));
    std::string rest = in.substr(e + 4);
    thread_ = std::thread([this, rest] { run(rest); });
  }

  void stop() {
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Waits for the `start` event of container `name`; nullopt after timeout_ms.
  std::optional<SeenEvent> wait_start(const std::string& name, int timeout_ms) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return starts_.count(name) > 0; });
    auto it = starts_.find(name);
    if (it == starts_.end()) return std::nullopt;
    return it->second;
  }
  uint64_t count() const { return total_.load(); }
  std::map<std::string, uint64_t> by_action() {
    std::lock_guard lock(mu_);
    return by_action_;
  }
  int64_t last_event_mono() const { return last_mono_.load(); }

 private:
  void run(std::string initial) {
    pb::Dechunker dechunk;
    std::string body, pending;
    auto consume = [&](std::string_view raw) {
      body.clear();
      if (!dechunk.feed(raw, &body)) return false;
      pending += body;
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        int64_t now = pb::realtime_ns();
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_object()) continue;
        std::string action = j.value("Action", "");
        std::string name;
        if (j.contains("Actor") && j["Actor"].contains("Attributes"))
          name = j["Actor"]["Attributes"].value("name", "");
        SeenEvent ev;
        ev.time_nano = j.value("timeNano", int64_t{0});
        ev.received_ns = now;
        ev.id = j.contains("Actor") ? j["Actor"].value("ID", "") : "";
        {
          std::lock_guard lock(mu_);
          ++by_action_[action.substr(0, action.find(':'))];
          if (action == "start") starts_[name] = ev;
        }
        total_.fetch_add(1);
        last_mono_.store(pb::mono_ns());
        cv_.notify_all();
      }
      return true;
    };
    if (!initial.empty()) consume(initial);
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (!consume(std::string_view(buf, static_cast<size_t>(n)))) break;
    }
  }

  std::string path_, label_;
  int fd_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, SeenEvent> starts_;  // latest start per container name
  std::map<std::string, uint64_t> by_action_;
  std::atomic<uint64_t> total_{0};
  std::atomic<int64_t> last_mono_{0};
};

std::string docker_id(const std::string& out) {
  std::string s = pb::trim(out);
  size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

// ---- starts ----

struct Sample {
  int index = 0;
  std::string name, id;
  uint64_t generation = 0;      // the generation that carries this container's route
  int64_t cmd_begin = 0, cmd_end = 0;  // realtime around `docker run`
  int64_t ev_time_nano = 0, ev_received = 0;
  int64_t applied_lo = 0, applied_hi = 0;  // realtime bounds of "every worker applied it"
  int64_t applied_exact = 0;    // realtime at which the last worker applied it (Berth's clock)
  int64_t berth_received = 0;   // realtime at which Berth received the event behind it
  int64_t first_200 = 0;
  int64_t port_ready = 0;  // realtime when a direct connect to the container's port first succeeded
  int attempts = 0;
  int first_status = 0;
  std::map<int, int> statuses;  // answers before the first 200, by status
  int64_t inspect_ns = 0;
  int64_t log_published_ms_ns = 0;  // routes_updated ts (ms resolution) of `generation`
  // With --front-admin: the same for the front door (its generation, poll bounds, own clocks).
  uint64_t front_generation = 0;
  int64_t front_applied_hi = 0, front_applied_exact = 0, front_received = 0;
  uint64_t extra_publishes = 0;
  std::string problem;
};

int cmd_starts(const Args& a) {
  const std::string docker_host = a.get("docker-host", getenv("DOCKER_HOST") ? getenv("DOCKER_HOST") : "");
  const std::string sock = pb::unix_path_of(docker_host);
  const auto listen = static_cast<uint16_t>(std::atoi(a.need("listen").c_str()));
  const auto admin = static_cast<uint16_t>(std::atoi(a.need("admin").c_str()));
  const std::string berth_log = a.need("berth-log");
  const int count = static_cast<int>(a.num("count", 100));
  const int port_base = static_cast<int>(a.num("port-base", 19200));
  const std::string prefix = a.get("prefix", "prop-");
  const std::string label = a.get("label", "benchprop");
  const std::string image = a.get("image", "bb:local");
  const int64_t poll_us = a.num("poll-us", 100);
  const int64_t e2e_pause_us = a.num("e2e-pause-us", 200);
  const std::string tsv = a.get("tsv");
  const auto front_admin = static_cast<uint16_t>(a.num("front-admin", 0));
  setenv("DOCKER_HOST", docker_host.c_str(), 1);

  EventWatcher watcher(sock, label);
  watcher.start();

  std::vector<Sample> samples;
  const int64_t t_all0 = pb::mono_ns();
  for (int i = 0; i < count; ++i) {
    Sample s;
    s.index = i;
    s.name = prefix + std::to_string(i);
    const int port = port_base + i;
    const std::string host = std::string("p") + std::to_string(i) + ".prop.test";

    pb::Gens g0 = pb::stats(admin);
    if (!g0.ok) pb::fail("GET /api/stats failed");
    if (g0.min_worker != g0.control) {
      pb::sleep_us(100'000);  // let the workers catch up before measuring the next one
      g0 = pb::stats(admin);
    }
    s.generation = g0.control + 1;
    if (front_admin) {
      pb::Gens f0 = pb::stats(front_admin);
      if (!f0.ok) pb::fail("GET /api/stats on the front door failed");
      if (f0.min_worker != f0.control) {
        pb::sleep_us(100'000);
        f0 = pb::stats(front_admin);
      }
      s.front_generation = f0.control + 1;
    }

    // Poller: from the moment our own subscriber sees the start event, poll /api/stats until
    // every worker serves generation >= s.generation.
    std::thread poller([&] {
      auto ev = watcher.wait_start(s.name, 30'000);
      if (!ev) return;
      s.ev_time_nano = ev->time_nano;
      s.ev_received = ev->received_ns;
      s.id = ev->id;
      int64_t lo = pb::realtime_ns();
      const int64_t deadline = pb::mono_ns() + 10'000'000'000LL;
      while (pb::mono_ns() < deadline) {
        int64_t sent = pb::realtime_ns();
        pb::Gens g = pb::stats(admin);
        int64_t got = pb::realtime_ns();
        if (g.ok && g.min_worker >= s.generation) {
          s.applied_lo = lo;
          s.applied_hi = got;
          if (g.control == s.generation) {  // no later snapshot: the apply times are this one's
            s.applied_exact = g.max_applied_ns;
            s.berth_received = g.event_received_ns;
          }
          return;
        }
        lo = sent;
        pb::sleep_us(poll_us);
      }
    });

    // The same for the front door, when there is one.
    std::thread front_poller([&] {
      if (!front_admin) return;
      auto ev = watcher.wait_start(s.name, 30'000);
      if (!ev) return;
      const int64_t deadline = pb::mono_ns() + 10'000'000'000LL;
      while (pb::mono_ns() < deadline) {
        pb::Gens g = pb::stats(front_admin);
        int64_t got = pb::realtime_ns();
        if (g.ok && g.min_worker >= s.front_generation) {
          s.front_applied_hi = got;
          if (g.control == s.front_generation) {
            s.front_applied_exact = g.max_applied_ns;
            s.front_received = g.event_received_ns;
          }
          return;
        }
        pb::sleep_us(poll_us);
      }
    });

    std::vector<std::string> argv = {"docker", "run", "-d", "--pull", "never", "--init", "--network", "host", "--name", s.name,
                                     "--label", label + "=1", "--label", "berth.enable=true",
                                     "--label", "berth.host=" + host, "--label", "berth.port=" + std::to_string(port),
                                     image, "httpd", "-f", "-p", "127.0.0.1:" + std::to_string(port), "-h", "/www"};
    s.cmd_begin = pb::realtime_ns();
    pb::CmdResult r = pb::run_cmd(argv, 60'000);
    s.cmd_end = pb::realtime_ns();
    if (r.status != 0) {
      s.problem = "docker run failed: " + pb::trim(r.err);
      poller.detach();  // bounded by its own 30 s + 10 s deadlines; the process exits below
      front_poller.detach();
      std::fprintf(stderr, "[%d] %s\n", i, s.problem.c_str());
      std::printf("RESULT kind=error what=\"docker run failed\" index=%d\n", i);
      std::_Exit(1);
    }
    if (s.id.empty()) s.id = docker_id(r.out);

    // End to end: from `docker run` returning, requests through Berth until the first 200
    // (E2E_PAUSE between attempts). Alongside, until it succeeds, a direct TCP connect to the
    // container's port: when the app itself became reachable (a bound no proxy can beat).
    const int64_t e2e_deadline = pb::mono_ns() + 10'000'000'000LL;
    while (pb::mono_ns() < e2e_deadline) {
      if (!s.port_ready) {
        int fd = pb::connect_tcp("127.0.0.1", static_cast<uint16_t>(port), 1000);
        if (fd >= 0) {
          s.port_ready = pb::realtime_ns();
          ::close(fd);
        }
      }
      pb::HttpResponse resp = pb::http_get_tcp("127.0.0.1", listen, host, "/", 2000);
      ++s.attempts;
      if (s.attempts == 1) s.first_status = resp.status;
      if (resp.status != 200) ++s.statuses[resp.status];
      if (resp.status == 200) {
        s.first_200 = pb::realtime_ns();
        if (!s.port_ready) s.port_ready = s.first_200;
        break;
      }
      pb::sleep_us(e2e_pause_us);
    }
    poller.join();
    front_poller.join();
    if (front_admin && !s.front_applied_hi) s.problem += "front door workers did not apply; ";
    if (!s.first_200) s.problem += "no 200 within 10 s; ";
    if (!s.applied_hi) s.problem += "workers did not apply (or no start event seen); ";
    pb::Gens g1 = pb::stats(admin);
    if (g1.control > s.generation) s.extra_publishes = g1.control - s.generation;

    // What one inspect of this container costs on the engine (Berth does one per start).
    int64_t t0 = pb::mono_ns();
    pb::HttpResponse ins = pb::http_get_unix(sock, "/v1.41/containers/" + s.id + "/json");
    s.inspect_ns = ins.status == 200 ? pb::mono_ns() - t0 : 0;

    std::string seen;
    for (const auto& [status, times] : s.statuses) {
      seen += ' ';
      seen += std::to_string(status);
      seen += 'x';
      seen += std::to_string(times);
    }
    std::fprintf(stderr, "[%3d] %s internal=%s ms e2e=%s ms (attempts %d, before 200:%s)%s%s\n", i, s.name.c_str(),
                 s.applied_hi ? fmt((s.applied_hi - s.ev_time_nano) / 1e6).c_str() : "-",
                 s.first_200 ? fmt((s.first_200 - s.cmd_end) / 1e6).c_str() : "-", s.attempts,
                 seen.empty() ? " none" : seen.c_str(),
                 s.problem.empty() ? "" : " PROBLEM: ", s.problem.c_str());
    samples.push_back(s);
    pb::sleep_us(20'000);
  }
  const double total_s = (pb::mono_ns() - t_all0) / 1e9;
  watcher.stop();

  // routes_updated lines: generation -> log timestamp (ms).
  std::map<uint64_t, int64_t> published;
  {
    std::istringstream in(pb::read_file(berth_log));
    std::string line;
    while (std::getline(in, line)) {
      if (line.find(" event=routes_updated") == std::string::npos) continue;
      std::string gen = pb::log_value(line, "generation");
      if (!gen.empty()) published[std::strtoull(gen.c_str(), nullptr, 10)] = pb::log_ts_ns(line);
    }
  }

  std::vector<double> exact_ms, exact_berth_ms, exact_arrival_ms;
  std::vector<double> front_exact_ms, front_own_ms, front_hop_ms, front_internal_ms;
  std::vector<double> internal_arrival, port_ready_ms, internal, internal_lo, e2e, e2e_from_begin, delivery, log_pub, run_ms, ev_vs_return, inspect_ms,
      resolution;
  int problems = 0;
  uint64_t extra = 0;
  std::map<int, int> total_before, samples_with;  // non-200 answers before the first 200
  FILE* out = tsv.empty() ? nullptr : std::fopen(tsv.c_str(), "w");
  if (out)
    std::fprintf(out,
                 "index\tname\tgeneration\tinternal_ms\tinternal_lo_ms\tinternal_from_arrival_ms\te2e_ms\tport_ready_ms\tdocker_run_ms\tstart_event_minus_"
                 "return_ms\tevent_delivery_ms\tlog_published_upper_ms\tinspect_ms\tattempts\tfirst_status\tbefore_200\tproblem\n");
  for (auto& s : samples) {
    auto it = published.find(s.generation);
    if (it != published.end()) s.log_published_ms_ns = it->second;
    extra += s.extra_publishes;
    double in_ms = s.applied_hi ? (s.applied_hi - s.ev_time_nano) / 1e6 : NAN;
    double in_lo = s.applied_hi ? (std::max(s.applied_lo, s.ev_time_nano) - s.ev_time_nano) / 1e6 : NAN;
    // From the event's arrival: our own subscriber's receipt stands in for Berth's (same engine
    // broadcast, same moment); the engine's own delivery delay is left out.
    double in_arr = s.applied_hi && s.ev_received ? (s.applied_hi - s.ev_received) / 1e6 : NAN;
    double pr = s.port_ready ? (s.port_ready - s.cmd_end) / 1e6 : NAN;
    double e_ms = s.first_200 ? (s.first_200 - s.cmd_end) / 1e6 : NAN;
    // The log's ts is truncated to the ms and taken after the publish: publication <= ts + 1 ms.
    double lp = s.log_published_ms_ns ? (s.log_published_ms_ns + 1'000'000 - s.ev_time_nano) / 1e6 : NAN;
    double dl = s.ev_received ? (s.ev_received - s.ev_time_nano) / 1e6 : NAN;
    double rm = (s.cmd_end - s.cmd_begin) / 1e6;
    double evr = s.ev_time_nano ? (s.ev_time_nano - s.cmd_end) / 1e6 : NAN;
    double ins = s.inspect_ns ? s.inspect_ns / 1e6 : NAN;
    if (!s.problem.empty()) ++problems;
    std::string before;
    for (const auto& [status, times] : s.statuses) {
      if (!before.empty()) before += ',';
      before += std::to_string(status);
      before += 'x';
      before += std::to_string(times);
      total_before[status] += times;
      ++samples_with[status];
    }
    if (s.applied_exact && s.ev_time_nano) exact_ms.push_back((s.applied_exact - s.ev_time_nano) / 1e6);
    if (s.applied_exact && s.berth_received) exact_berth_ms.push_back((s.applied_exact - s.berth_received) / 1e6);
    if (s.applied_exact && s.ev_received) exact_arrival_ms.push_back((s.applied_exact - s.ev_received) / 1e6);
    if (s.front_applied_exact && s.ev_time_nano) front_exact_ms.push_back((s.front_applied_exact - s.ev_time_nano) / 1e6);
    if (s.front_applied_exact && s.front_received) front_own_ms.push_back((s.front_applied_exact - s.front_received) / 1e6);
    if (s.front_received && s.berth_received) front_hop_ms.push_back((s.front_received - s.berth_received) / 1e6);
    if (s.front_applied_hi && s.ev_time_nano) front_internal_ms.push_back((s.front_applied_hi - s.ev_time_nano) / 1e6);
    if (!std::isnan(in_ms)) {
      internal.push_back(in_ms);
      internal_lo.push_back(in_lo);
      resolution.push_back(in_ms - in_lo);
    }
    if (!std::isnan(e_ms)) {
      e2e.push_back(e_ms);
      e2e_from_begin.push_back((s.first_200 - s.cmd_begin) / 1e6);
    }
    if (!std::isnan(lp)) log_pub.push_back(lp);
    if (!std::isnan(in_arr)) internal_arrival.push_back(in_arr);
    if (!std::isnan(pr)) port_ready_ms.push_back(pr);
    if (!std::isnan(dl)) delivery.push_back(dl);
    run_ms.push_back(rm);
    if (!std::isnan(evr)) ev_vs_return.push_back(evr);
    if (!std::isnan(ins)) inspect_ms.push_back(ins);
    if (out)
      std::fprintf(out, "%d\t%s\t%llu\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", s.index,
                   s.name.c_str(), static_cast<unsigned long long>(s.generation), fmt(in_ms, 3).c_str(),
                   fmt(in_lo, 3).c_str(), fmt(in_arr, 3).c_str(), fmt(e_ms, 3).c_str(), fmt(pr, 3).c_str(),
                   fmt(rm, 1).c_str(), fmt(evr, 3).c_str(), fmt(dl, 3).c_str(),
                   fmt(lp, 3).c_str(), fmt(ins, 3).c_str(), s.attempts, s.first_status, before.c_str(), s.problem.c_str());
  }
  if (out) std::fclose(out);

  auto row = [](const char* metric, const std::vector<double>& v) {
    std::printf("RESULT kind=dist metric=%s n=%zu p50=%s p99=%s max=%s min=%s\n", metric, v.size(),
                fmt(pb::percentile(v, 50), 3).c_str(), fmt(pb::percentile(v, 99), 3).c_str(),
                fmt(pb::percentile(v, 100), 3).c_str(), fmt(pb::percentile(v, 0), 3).c_str());
  };
  row("exact_from_berth_receipt_ms", exact_berth_ms);
  row("exact_from_timenano_ms", exact_ms);
  row("exact_from_arrival_ms", exact_arrival_ms);
  row("internal_ms", internal);
  row("internal_from_arrival_ms", internal_arrival);
  row("port_ready_ms", port_ready_ms);
  row("internal_lower_bound_ms", internal_lo);
  row("poll_resolution_ms", resolution);
  row("log_published_upper_ms", log_pub);
  row("e2e_ms", e2e);
  row("e2e_from_cmd_begin_ms", e2e_from_begin);
  row("docker_run_ms", run_ms);
  row("start_event_minus_cli_return_ms", ev_vs_return);
  row("event_delivery_ms", delivery);
  row("inspect_rtt_ms", inspect_ms);
  if (front_admin) {
    row("front_exact_from_timenano_ms", front_exact_ms);
    row("front_exact_from_front_receipt_ms", front_own_ms);
    row("front_receipt_from_sidecar_receipt_ms", front_hop_ms);
    row("front_internal_ms", front_internal_ms);
  }
  std::string before_summary;
  for (const auto& [status, times] : total_before)
  {
    if (!before_summary.empty()) before_summary += ',';
    before_summary += std::to_string(status);
    before_summary += ':';
    before_summary += std::to_string(times);
    before_summary += '/';
    before_summary += std::to_string(samples_with[status]);
  }
  std::printf("RESULT kind=starts count=%zu problems=%d extra_publishes=%llu total_s=%s before_200=%s\n", samples.size(),
              problems, static_cast<unsigned long long>(extra), fmt(total_s, 1).c_str(),
              before_summary.empty() ? "none" : before_summary.c_str());
  return problems ? 2 : 0;
}

// ---- churn on the real engine ----

int cmd_churn(const Args& a) {
  const std::string docker_host = a.get("docker-host", getenv("DOCKER_HOST") ? getenv("DOCKER_HOST") : "");
  const std::string sock = pb::unix_path_of(docker_host);
  const auto admin = static_cast<uint16_t>(std::atoi(a.need("admin").c_str()));
  const pid_t pid = static_cast<pid_t>(std::atol(a.need("berth-pid").c_str()));
  const int count = static_cast<int>(a.num("count", 100));
  const int cycles = static_cast<int>(a.num("cycles", 50));
  const std::string prefix = a.get("prefix", "prop-");
  const std::string label = a.get("label", "benchprop");
  setenv("DOCKER_HOST", docker_host.c_str(), 1);

  EventWatcher watcher(sock, label);
  watcher.start();
  pb::sleep_us(300'000);

  // Idle rate first (Berth's own timers: the 10 s engine ping).
  pb::CpuSample i0 = pb::read_cpu(pid);
  int64_t im0 = pb::mono_ns();
  pb::sleep_us(3'000'000);
  pb::CpuSample i1 = pb::read_cpu(pid);
  double idle_ns_per_s = (i1.schedstat_ns - i0.schedstat_ns) / ((pb::mono_ns() - im0) / 1e9);

  pb::Gens g0 = pb::stats(admin);
  uint64_t e0 = watcher.count();
  pb::CpuSample c0 = pb::read_cpu(pid);
  int64_t m0 = pb::mono_ns();
  int failures = 0;
  for (int k = 0; k < cycles; ++k) {
    std::string name = prefix + std::to_string((k * 37) % count);
    pb::CmdResult s1 = pb::run_cmd({"docker", "stop", "-t", "10", name}, 60'000);
    pb::CmdResult s2 = pb::run_cmd({"docker", "start", name}, 60'000);
    if (s1.status != 0 || s2.status != 0) {
      ++failures;
      std::fprintf(stderr, "churn: %s: %s %s\n", name.c_str(), pb::trim(s1.err).c_str(), pb::trim(s2.err).c_str());
    }
  }
  // Settle: no new event for 500 ms (at most 10 s).
  int64_t settle_deadline = pb::mono_ns() + 10'000'000'000LL;
  while (pb::mono_ns() < settle_deadline && pb::mono_ns() - watcher.last_event_mono() < 500'000'000LL) pb::sleep_us(50'000);
  pb::sleep_us(200'000);
  pb::CpuSample c1 = pb::read_cpu(pid);
  double window_s = (pb::mono_ns() - m0) / 1e9;
  pb::Gens g1 = pb::stats(admin);
  uint64_t events = watcher.count() - e0;
  auto actions = watcher.by_action();
  watcher.stop();

  double cpu_ns = static_cast<double>(c1.schedstat_ns - c0.schedstat_ns);
  double cpu_ns_net = cpu_ns - idle_ns_per_s * window_s;
  double ticks_us = static_cast<double>(c1.ticks_us - c0.ticks_us);
  std::string mix;
  for (auto& [k, v] : actions) {
    if (!mix.empty()) mix += ',';
    mix += k;
    mix += ':';
    mix += std::to_string(v);
  }
  std::printf(
      "RESULT kind=churn source=real n=%d cycles=%d events=%llu publishes=%llu window_s=%s cpu_ticks_us=%s "
      "cpu_sched_us=%s idle_us_per_s=%s per_event_ticks_us=%s per_event_sched_us=%s failures=%d mix=%s\n",
      count, cycles, static_cast<unsigned long long>(events), static_cast<unsigned long long>(g1.control - g0.control),
      fmt(window_s, 2).c_str(), fmt(ticks_us, 0).c_str(), fmt(cpu_ns / 1e3, 0).c_str(),
      fmt(idle_ns_per_s / 1e3, 1).c_str(), fmt(events ? ticks_us / events : NAN, 1).c_str(),
      fmt(events ? cpu_ns_net / 1e3 / events : NAN, 1).c_str(), failures, mix.c_str());
  return failures ? 2 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s starts|churn --key value ...\n", argv[0]);
    return 64;
  }
  signal(SIGPIPE, SIG_IGN);
  std::string cmd = argv[1];
  Args a;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) pb::fail("bad argument " + k);
    a.kv[k.substr(2)] = argv[i + 1];
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  if (cmd == "starts") return cmd_starts(a);
  if (cmd == "churn") return cmd_churn(a);
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 64;
}
