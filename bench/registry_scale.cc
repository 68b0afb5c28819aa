// berth-bench-registry_scale: a stand-in for many sidecars of Berth's etcd registry, to measure a
// front door at scale (driven by bench/registry.sh, which starts etcd and the front door).
//
//   berth-bench-registry_scale load --etcd PORT --hosts H --per-host P [--services S]
//       [--service-hosts G] [--prefix /berth/v1] [--ttl 600] [--leases FILE]
//     Writes H x P instance keys into etcd through its v3 JSON gateway, as H sidecars would: one
//     lease per host (TTL seconds), then one transaction per host with its P puts (keys
//     <prefix>/instances/host-NNN/cNNN/0, values from Berth's own encoder). Container c of every
//     host serves service s<c mod S> (host s<c mod S>.scale.test, path /), so a service has an
//     instance on every host; with G, hosts are taken G at a time and each group serves services
//     of its own (s<group * S + c mod S>): G instances per service whatever H. Addresses are
//     10.<h/256>.<h%256>.1:<8000+c>, never connected to (the front door runs no health checks).
//     The lease IDs go to FILE, for `clear`.
//   berth-bench-registry_scale clear --etcd PORT [--prefix /berth/v1] [--leases FILE]
//     Deletes every key under <prefix>/instances/ and revokes the leases listed in FILE.
//   berth-bench-registry_scale ready --admin PORT --pid PID --expect N --start-ns T
//       [--timeout-ms 60000] [--poll-us 2000]
//     Waits until the front door (started at CLOCK_REALTIME T) serves a table with exactly N
//     registry endpoints, none ejected (GET /api/routes services[].endpoints; polled once /api/stats shows every worker on
//     a generation published from the registry) and reports the time from T to the moment its
//     last worker applied that table (its own applied_at_ns), and its RSS.
//   berth-bench-registry_scale changes --etcd PORT --admin PORT --pid PID [--count 200]
//       [--prefix /berth/v1] [--poll-us 200] [--gap-ms 0] [--lease ID]
//     COUNT single-key changes, alternately a put of a new instance (service s0, host-000) and its
//     delete. Phase 1 (latency), one change at a time: put/delete sent -> every front-door worker
//     serves the table with it (polled /api/stats, and exact by the front door's clocks:
//     generation_event_received_ns = watch message read, applied_at_ns = last worker). Phase 2
//     (CPU), the same COUNT changes without polling, GAP ms apart (0: 3x phase 1's p99, at least
//     10 ms): the front door's CPU (utime+stime, and the schedstat sum over its threads, its idle
//     rate measured for 2 s before subtracted) per change.
//   berth-bench-registry_scale codec --hosts H --per-host P [--reps 20]
//     In process, no etcd: times what the front door's registry table does for one changed value
//     among the H x P keys of `load` (RegistryTable put + next: that key decoded, its service made
//     again; build_cached_ms); for comparison the whole set built from scratch and, of that,
//     decoding the JSON values alone (decode_instance); thread CPU time, the median and minimum
//     of REPS runs.
//
// Output: progress on stderr, `RESULT key=value ...` lines on stdout.
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "bench/propagation_util.h"
#include "discovery/registry/registry_codec.h"
#include "discovery/registry/registry_table.h"
#include "proxy/base/base64.h"

namespace {

using pb::fmt;
namespace reg = berth::discovery::registry;

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

// One keep-alive connection to etcd's JSON gateway. Closes and reconnects after anything but a
// 200 with a Content-Length body (error replies carry trailers; notes §0.5).
class Gateway {
 public:
  explicit Gateway(uint16_t port) : port_(port) {}
  ~Gateway() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  pb::HttpResponse post(const std::string& path, const nlohmann::json& body) {
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (fd_ < 0) fd_ = pb::connect_tcp("127.0.0.1", port_, 10000);
      if (fd_ < 0) pb::fail("connect to etcd :" + std::to_string(port_) + ": " + std::strerror(errno));
      std::string b = body.dump();
      std::string req = "POST /v3/" + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" +
                        "Grpc-Metadata-hasleader: true\r\nContent-Length: " + std::to_string(b.size()) + "\r\n\r\n" + b;
      if (!pb::write_all(fd_, req)) {
        close();
        continue;
      }
      pb::HttpResponse r = read_response();
      if (r.status < 0 && attempt == 0) {  // a stale keep-alive connection: once more
        close();
        continue;
      }
      return r;
    }
    pb::HttpResponse r;
    r.error = "no response";
    return r;
  }

  // POST that must succeed; the parsed JSON reply.
  nlohmann::json call(const std::string& path, const nlohmann::json& body) {
    pb::HttpResponse r = post(path, body);
    if (r.status != 200) pb::fail("etcd " + path + ": " + std::to_string(r.status) + " " + r.error + " " + r.body);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_discarded()) pb::fail("etcd " + path + ": bad JSON " + r.body.substr(0, 200));
    return j;
  }

 private:
  pb::HttpResponse read_response() {
    pb::HttpResponse r;
    std::string in;
    char buf[16384];
    size_t head_end = std::string::npos;
    long content_length = -1;
    bool chunked = false;
    pb::Dechunker dechunk;
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        r.error = n == 0 ? "closed" : std::string("recv: ") + std::strerror(errno);
        r.status = -1;
        close();
        return r;
      }
      in.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos) {
        size_t e = in.find("\r\n\r\n");
        if (e == std::string::npos) continue;
        head_end = e + 4;
        r.head = in.substr(0, e);
        if (r.head.size() > 12) r.status = std::atoi(r.head.c_str() + 9);
        std::string lh = pb::lower(r.head);
        size_t cl = lh.find("\r\ncontent-length:");
        if (cl != std::string::npos) content_length = std::atol(lh.c_str() + cl + 17);
        chunked = lh.find("\r\ntransfer-encoding: chunked") != std::string::npos;
      }
      if (chunked) {
        std::string tail = in.substr(head_end);
        in.resize(head_end);
        if (!dechunk.feed(tail, &r.body)) {
          r.status = -1;
          close();
          return r;
        }
        if (dechunk.done()) {
          close();  // trailers may follow the last chunk: do not reuse the connection
          return r;
        }
      } else if (content_length >= 0 && in.size() - head_end >= static_cast<size_t>(content_length)) {
        r.body = in.substr(head_end, static_cast<size_t>(content_length));
        if (r.status != 200) close();
        return r;
      }
    }
  }

  uint16_t port_;
  int fd_ = -1;
};

std::string b64(std::string_view s) { return berth::base64_encode(s); }

std::string host_id(int h) {
  char b[32];
  std::snprintf(b, sizeof b, "host-%03d", h);
  return b;
}

// group_hosts > 0: a service spans that many hosts (hosts 0..G-1 serve s0..s<S-1>, the next G
// hosts s<S>..s<2S-1>, ...), so every service has G instances however many hosts there are.
std::string instance_value(int h, int c, int services, int port, int group_hosts = 0) {
  reg::Instance in;
  in.service = "s" + std::to_string((group_hosts > 0 ? h / group_hosts * services : 0) + c % services);
  in.routes.push_back({{in.service + ".scale.test"}, "/", 0});
  char address[48];
  std::snprintf(address, sizeof address, "10.%d.%d.1:%d", h / 256, h % 256, port);
  in.address = address;
  in.host_id = host_id(h);
  in.container = "c" + std::to_string(c);
  return reg::encode_instance(in);
}

std::string key_of(const std::string& prefix, int h, const std::string& container) {
  return reg::host_prefix(prefix, host_id(h)) + container + "/0";
}

int64_t rss_kb(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  return -1;
}

// ---- load / clear ----

int cmd_load(const Args& a) {
  Gateway gw(static_cast<uint16_t>(std::atoi(a.need("etcd").c_str())));
  const int hosts = static_cast<int>(a.num("hosts", 100));
  const int per_host = static_cast<int>(a.num("per-host", 50));
  const int services = static_cast<int>(a.num("services", per_host));
  const int group_hosts = static_cast<int>(a.num("service-hosts", 0));
  const long ttl = a.num("ttl", 600);
  const std::string prefix = a.get("prefix", "/berth/v1");
  const std::string leases_file = a.get("leases");
  std::ofstream leases;
  if (!leases_file.empty()) leases.open(leases_file, std::ios::app);
  const int64_t t0 = pb::mono_ns();
  int64_t bytes = 0;
  for (int h = 0; h < hosts; ++h) {
    auto grant = gw.call("lease/grant", {{"TTL", ttl}});
    std::string lease = grant.value("ID", "");
    if (lease.empty()) pb::fail("lease/grant: no ID: " + grant.dump());
    if (leases) leases << lease << "\n";
    nlohmann::json success = nlohmann::json::array();
    for (int c = 0; c < per_host; ++c) {
      std::string v = instance_value(h, c, services, 8000 + c, group_hosts);
      bytes += static_cast<int64_t>(v.size());
      success.push_back({{"request_put",
                          {{"key", b64(key_of(prefix, h, "c" + std::to_string(c)))}, {"value", b64(v)}, {"lease", lease}}}});
    }
    auto txn = gw.call("kv/txn", {{"success", success}});
    if (!txn.value("succeeded", false)) pb::fail("txn for " + host_id(h) + " did not succeed: " + txn.dump().substr(0, 300));
  }
  const double secs = (pb::mono_ns() - t0) / 1e9;
  std::printf("RESULT kind=load hosts=%d per_host=%d keys=%d services=%d value_bytes_avg=%s seconds=%s requests=%d\n", hosts,
              per_host, hosts * per_host, services, fmt(hosts * per_host > 0 ? static_cast<double>(bytes) / (hosts * per_host) : 0.0, 0).c_str(),
              fmt(secs, 2).c_str(), 2 * hosts);
  return 0;
}

int cmd_clear(const Args& a) {
  Gateway gw(static_cast<uint16_t>(std::atoi(a.need("etcd").c_str())));
  const std::string root = reg::instances_prefix(a.get("prefix", "/berth/v1"));
  auto del = gw.call("kv/deleterange", {{"key", b64(root)}, {"range_end", b64(reg::prefix_range_end(root))}});
  int revoked = 0;
  std::string leases_file = a.get("leases");
  if (!leases_file.empty()) {
    std::ifstream in(leases_file);
    std::string id;
    while (std::getline(in, id)) {
      if (id.empty()) continue;
      pb::HttpResponse r = gw.post("lease/revoke", {{"ID", id}});
      revoked += r.status == 200;
    }
    std::ofstream(leases_file, std::ios::trunc);
  }
  std::printf("RESULT kind=clear deleted=%s leases_revoked=%d\n", del.value("deleted", "0").c_str(), revoked);
  return 0;
}

// ---- ready ----

// Registry endpoints (source registry:...) not ejected in GET /api/routes; -1 when it did not answer.
long registry_instances(uint16_t admin) {
  pb::HttpResponse r = pb::http_get_tcp("127.0.0.1", admin, "127.0.0.1", "/api/routes", 10000);
  if (r.status != 200) return -1;
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("services")) return -1;
  long n = 0;
  for (const auto& s : j["services"])
    for (const auto& e : s.value("endpoints", nlohmann::json::array()))
      if (e.value("source", "").rfind("registry:", 0) == 0 && !e.value("ejected", false)) ++n;
  return n;
}

int cmd_ready(const Args& a) {
  const auto admin = static_cast<uint16_t>(std::atoi(a.need("admin").c_str()));
  const pid_t pid = static_cast<pid_t>(std::atol(a.need("pid").c_str()));
  const long expect = a.num("expect", 0);
  const int64_t start_ns = std::atoll(a.need("start-ns").c_str());
  const int64_t timeout_ms = a.num("timeout-ms", 60000);
  const int64_t poll_us = a.num("poll-us", 2000);
  const int64_t deadline = pb::mono_ns() + timeout_ms * 1'000'000;
  long seen = -1;
  int route_checks = 0;
  while (pb::mono_ns() < deadline) {
    pb::Gens g = pb::stats(admin);
    // A generation published from the registry carries the watch/range reply's receipt time.
    if (g.ok && g.event_received_ns != 0 && g.min_worker == g.control) {
      ++route_checks;
      seen = registry_instances(admin);
      pb::Gens g2 = pb::stats(admin);
      if (seen == expect && g2.ok && g2.control == g.control) {
        int64_t rss = rss_kb(pid);
        pb::CpuSample cpu = pb::read_cpu(pid);
        std::printf(
            "RESULT kind=ready expect=%ld instances=%ld generation=%llu to_received_ms=%s to_applied_ms=%s "
            "rss_kb=%lld cpu_ticks_us=%lld route_checks=%d\n",
            expect, seen, static_cast<unsigned long long>(g.control), fmt((g.event_received_ns - start_ns) / 1e6, 1).c_str(),
            fmt((g.max_applied_ns - start_ns) / 1e6, 1).c_str(), static_cast<long long>(rss),
            static_cast<long long>(cpu.ticks_us), route_checks);
        return 0;
      }
    }
    pb::sleep_us(poll_us);
  }
  std::printf("RESULT kind=ready expect=%ld instances=%ld error=timeout\n", expect, seen);
  return 1;
}

// ---- changes ----

int cmd_changes(const Args& a) {
  const auto etcd = static_cast<uint16_t>(std::atoi(a.need("etcd").c_str()));
  const auto admin = static_cast<uint16_t>(std::atoi(a.need("admin").c_str()));
  const pid_t pid = static_cast<pid_t>(std::atol(a.need("pid").c_str()));
  const int count = static_cast<int>(a.num("count", 200));
  const std::string prefix = a.get("prefix", "/berth/v1");
  const int64_t poll_us = a.num("poll-us", 200);
  long gap_ms = a.num("gap-ms", 0);
  const std::string lease = a.get("lease");
  const long n_known = a.num("known", 0);  // for the RESULT lines only
  Gateway gw(etcd);

  // The changing key: a new instance of service s0 on host-000, put and deleted in turn.
  auto change = [&](int k) {
    std::string key = b64(key_of(prefix, 0, "chg"));
    if (k % 2 == 0) {
      nlohmann::json put = {{"key", key}, {"value", b64(instance_value(0, 0, 1, 7000 + (k / 2) % 1000))}};
      if (!lease.empty()) put["lease"] = lease;
      gw.call("kv/put", put);
    } else {
      gw.call("kv/deleterange", {{"key", key}});
    }
  };

  // Phase 1: latency, one change at a time.
  std::vector<double> sent_to_applied, received_to_applied, sent_to_received, poll_ms;
  int coalesced = 0, timeouts = 0;
  for (int k = 0; k < count; ++k) {
    pb::Gens g0 = pb::stats(admin);
    if (!g0.ok) pb::fail("GET /api/stats failed");
    const uint64_t want = g0.control + 1;
    const int64_t sent = pb::realtime_ns();
    change(k);
    const int64_t deadline = pb::mono_ns() + 10'000'000'000LL;
    bool done = false;
    while (pb::mono_ns() < deadline) {
      pb::Gens g = pb::stats(admin);
      if (g.ok && g.min_worker >= want) {
        const int64_t got = pb::realtime_ns();
        poll_ms.push_back((got - sent) / 1e6);
        if (g.control == want && g.event_received_ns) {
          sent_to_applied.push_back((g.max_applied_ns - sent) / 1e6);
          received_to_applied.push_back((g.max_applied_ns - g.event_received_ns) / 1e6);
          sent_to_received.push_back((g.event_received_ns - sent) / 1e6);
        } else {
          ++coalesced;
        }
        done = true;
        break;
      }
      pb::sleep_us(poll_us);
    }
    if (!done) ++timeouts;
    pb::sleep_us(2'000);
  }
  auto row = [&](const char* metric, const std::vector<double>& v) {
    std::printf("RESULT kind=change_dist known=%ld metric=%s n=%zu p50=%s p99=%s max=%s min=%s\n", n_known, metric, v.size(),
                fmt(pb::percentile(v, 50), 3).c_str(), fmt(pb::percentile(v, 99), 3).c_str(),
                fmt(pb::percentile(v, 100), 3).c_str(), fmt(pb::percentile(v, 0), 3).c_str());
  };
  row("received_to_applied_ms", received_to_applied);
  row("sent_to_applied_ms", sent_to_applied);
  row("sent_to_received_ms", sent_to_received);
  row("sent_to_poll_seen_ms", poll_ms);

  // Phase 2: CPU per change, no polling during the window.
  if (gap_ms <= 0) gap_ms = std::max<long>(10, static_cast<long>(3 * pb::percentile(sent_to_applied, 99) + 1));
  pb::sleep_us(500'000);
  pb::CpuSample i0 = pb::read_cpu(pid);
  int64_t im0 = pb::mono_ns();
  pb::sleep_us(2'000'000);
  pb::CpuSample i1 = pb::read_cpu(pid);
  const double idle_ns_per_s = (i1.schedstat_ns - i0.schedstat_ns) / ((pb::mono_ns() - im0) / 1e9);

  pb::Gens g0 = pb::stats(admin);
  pb::CpuSample c0 = pb::read_cpu(pid);
  const int64_t m0 = pb::mono_ns();
  for (int k = 0; k < count; ++k) {
    const int64_t due = m0 + static_cast<int64_t>(k) * gap_ms * 1'000'000;
    const int64_t now = pb::mono_ns();
    if (due > now) pb::sleep_us((due - now) / 1000);
    change(k);
  }
  // Settle: the last change applied (or 10 s), then a quiet 300 ms.
  const uint64_t want = g0.control + static_cast<uint64_t>(count);
  const int64_t settle_deadline = pb::mono_ns() + 10'000'000'000LL;
  pb::Gens g1;
  while (pb::mono_ns() < settle_deadline) {
    pb::sleep_us(50'000);
    g1 = pb::stats(admin);
    if (g1.ok && g1.min_worker >= want) break;
  }
  pb::sleep_us(300'000);
  pb::CpuSample c1 = pb::read_cpu(pid);
  const double window_s = (pb::mono_ns() - m0) / 1e9;
  g1 = pb::stats(admin);
  const uint64_t generations = g1.control - g0.control;
  const double cpu_ns = static_cast<double>(c1.schedstat_ns - c0.schedstat_ns);
  const double cpu_ns_net = cpu_ns - idle_ns_per_s * window_s;
  const double ticks_us = static_cast<double>(c1.ticks_us - c0.ticks_us);
  const double main_ns = static_cast<double>(c1.main_thread_ns - c0.main_thread_ns);
  std::printf(
      "RESULT kind=change_cpu known=%ld changes=%d generations=%llu gap_ms=%ld window_s=%s cpu_ticks_us=%s cpu_sched_us=%s "
      "idle_us_per_s=%s per_change_ticks_us=%s per_change_sched_us=%s per_change_main_thread_us=%s coalesced_phase1=%d "
      "timeouts_phase1=%d rss_kb=%lld\n",
      n_known, count, static_cast<unsigned long long>(generations), gap_ms, fmt(window_s, 2).c_str(), fmt(ticks_us, 0).c_str(),
      fmt(cpu_ns / 1e3, 0).c_str(), fmt(idle_ns_per_s / 1e3, 1).c_str(), fmt(ticks_us / count, 1).c_str(),
      fmt(cpu_ns_net / 1e3 / count, 1).c_str(), fmt(main_ns / 1e3 / count, 1).c_str(), coalesced, timeouts,
      static_cast<long long>(rss_kb(pid)));
  return timeouts ? 2 : 0;
}

// ---- codec: the front door's table build alone, in process ----

// CPU time of the calling thread: on a machine shared with other work, what the build costs
// rather than how long it waited for a core.
int64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int cmd_codec(const Args& a) {
  const int hosts = static_cast<int>(a.num("hosts", 100));
  const int per_host = static_cast<int>(a.num("per-host", 50));
  const int services = static_cast<int>(a.num("services", per_host));
  const int reps = static_cast<int>(a.num("reps", 20));
  const std::string prefix = a.get("prefix", "/berth/v1");
  std::map<std::string, std::string> kvs;
  for (int h = 0; h < hosts; ++h)
    for (int c = 0; c < per_host; ++c) kvs[key_of(prefix, h, "c" + std::to_string(c))] = instance_value(h, c, services, 8000 + c);
  // What the registry watch does for every change it applies: build the whole set from every key.
  std::vector<double> build_ms, decode_ms;
  size_t endpoints = 0;
  for (int r = 0; r < reps; ++r) {
    int64_t t0 = thread_cpu_ns();
    berth::discovery::DiscoveredSet set = reg::build_registry_set(kvs, prefix, reg::TablePolicy{});
    build_ms.push_back((thread_cpu_ns() - t0) / 1e6);
    endpoints = 0;
    for (const auto& s : set.services) endpoints += s->endpoints.size();
    // Of which: decoding the JSON values alone.
    int64_t t1 = thread_cpu_ns();
    size_t ok = 0;
    for (const auto& [key, value] : kvs) {
      std::string problem;
      ok += reg::decode_instance(value, &problem).has_value();
    }
    decode_ms.push_back((thread_cpu_ns() - t1) / 1e6);
    if (ok != kvs.size()) pb::fail("decode failed");
  }
  // What the watch does now for one changed key: the table it keeps decodes the changed value
  // and makes that key's service again.
  std::vector<double> cached_ms;
  reg::RegistryTable table(prefix, reg::TablePolicy{});
  table.reset(kvs);
  table.next();
  const std::string changed = kvs.begin()->first;
  for (int r = 0; r < reps; ++r) {
    std::string value = instance_value(0, 0, services, 9000 + r % 2);
    int64_t t0 = thread_cpu_ns();
    table.put(changed, std::move(value));
    auto set = table.next();
    cached_ms.push_back((thread_cpu_ns() - t0) / 1e6);
    if (!set) pb::fail("the table saw no change");
  }
  std::printf("RESULT kind=codec keys=%zu endpoints=%zu reps=%d build_set_ms_p50=%s build_set_ms_min=%s decode_values_ms_p50=%s "
              "decode_values_ms_min=%s build_cached_ms_p50=%s\n",
              kvs.size(), endpoints, reps, fmt(pb::percentile(build_ms, 50), 3).c_str(), fmt(pb::percentile(build_ms, 0), 3).c_str(),
              fmt(pb::percentile(decode_ms, 50), 3).c_str(), fmt(pb::percentile(decode_ms, 0), 3).c_str(),
              fmt(pb::percentile(cached_ms, 50), 3).c_str());
  return endpoints == kvs.size() ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s load|clear|ready|changes|codec --key value ...\n", argv[0]);
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
  if (cmd == "load") return cmd_load(a);
  if (cmd == "clear") return cmd_clear(a);
  if (cmd == "ready") return cmd_ready(a);
  if (cmd == "changes") return cmd_changes(a);
  if (cmd == "codec") return cmd_codec(a);
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 64;
}
