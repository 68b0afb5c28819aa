// berth-bench-discovery_churn: Berth's CPU cost per Docker event with N containers known, against
// a replayer — a fake Docker Engine API (v1.41) on a Unix socket in a temp dir — so that N can be
// 1,000 without starting 1,000 real containers. Used by bench/propagation.sh.
//
//   berth-bench-discovery_churn --berth build-bench/berth [--n 100,1000] [--phase-seconds 8]
//       [--cycles 1000] [--noise 3000] [--gap-us 0] [--workers 0] [--inspect-template FILE]
//       [--list-template FILE] [--latency-samples 50] [--tmp DIR] [--keep 0|1]
//
// The fake engine (bench/fake_docker_engine.h) answers GET /_ping, /version, /v1.41/containers/json, /v1.41/containers/ID/json
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
//   layout:    cycles of (create, start, kill 15, die, stop, destroy) of new containers, GAP
//              apart, closed loop on Berth's inspects: create and destroy change the route
//              layout (a full build), the others change one service.
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

#include "bench/fake_docker_engine.h"
#include "bench/propagation_util.h"

namespace {

using pb::fmt;
using ojson = nlohmann::ordered_json;
using fake_docker::Container;
using fake_docker::FakeEngine;
using fake_docker::hex_id;
using fake_docker::kInspectTemplate;
using fake_docker::kListTemplate;

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
      size_t i = (next_container++ * stride) % static_cast<size_t>(n);
      engine.emit_stop(i, gap_us);
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

  // Layout changes: a new container is created (inspected), started, stopped and removed. Its
  // create and its destroy change the route layout (a full build and a new route index); the
  // events between change its service only. GAP between events, closed loop on the inspects.
  Phase layout{"layout"};
  run_phase(layout, [&] {
    uint64_t events = 0;
    const int layout_cycles = std::max(20, cycles / 2);
    for (int k = 0; k < layout_cycles; ++k) {
      Container c;
      c.id = hex_id(0xC000000ULL + static_cast<uint64_t>(n) * 100000 + static_cast<uint64_t>(k));
      const std::string number = std::to_string(k);
      c.name = std::string("layout-").append(number);
      c.port = 40000 + k % 20000;
      c.labels = {{"berth.enable", "true"},
                  {"berth.host", std::string("l").append(number).append(".layout.test")},
                  {"berth.port", std::to_string(c.port)},
                  {"com.example.bench", "discovery_churn"}};
      c.running = false;
      c.created_ns = pb::realtime_ns();
      size_t i = engine.add(std::move(c));
      engine.emit(i, "create");
      if (!engine.wait_inspects(i, 1, 5000)) ++timeouts;
      pb::sleep_us(gap_us);
      engine.emit(i, "start");
      if (!engine.wait_inspects(i, 2, 5000)) ++timeouts;
      pb::sleep_us(gap_us);
      engine.emit_stop(i, gap_us);
      engine.emit(i, "destroy");
      pb::sleep_us(gap_us);
      events += 6;
    }
    return events;
  });

  // Health-check noise: exec_create / exec_start / exec_die of routed containers.
  Phase noise{"noise"};
  run_phase(noise, [&] {
    uint64_t events = 0;
    for (int k = 0; k < noise_events; ++k) {
      size_t i = (static_cast<size_t>(k / 3) * stride) % static_cast<size_t>(n);
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
      size_t i = (next_container++ * stride) % static_cast<size_t>(n);
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
