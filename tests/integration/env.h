// Catch2-aware helpers shared by the integration tests: a lazily started shared environment
// (two origins and one berth) and assertion helpers.
#pragma once

#include <memory>
#include <string>

#include "harness.h"

namespace it {

// Shared by the tests that do not need a berth of their own:
//   a.test, *.wild.test -> s-a (origin A)       b.test     -> s-b (origin B)
//   lb.test  -> s-ab (A weight 1, B weight 2)   empty.test -> s-empty (no endpoints)
//   dead.test -> s-dead (nothing listens)       small.test -> s-a, max_body_bytes 1KiB
// workers: 2, upstream_connect 2s, upstream_response 10s.
struct SharedEnv {
  std::unique_ptr<Origin> a, b;
  uint16_t dead_port = 0;
  std::unique_ptr<Berth> berth;
  std::string yaml;

  uint16_t port() const { return berth->port(); }
  uint16_t admin_port() const { return berth->admin_port(); }
};

// Starts the shared environment on first use (REQUIREs that it works). If berth died since
// the previous test, the failure is reported (with its log) and berth is restarted.
SharedEnv& shared();

// Call at the end of a test using shared(): CHECKs berth is still alive.
void check_alive(SharedEnv& env);

// One origin behind a Berth of its own. `config` is the config up to its services (config_head,
// top-level keys, routes); a service named `service` with the origin as its one endpoint is
// appended. The constructor REQUIREs that both start.
struct OriginEnv {
  Origin origin;
  std::unique_ptr<Berth> berth;
  OriginEnv(const std::string& origin_name, const std::string& config, const std::string& service = "s");
};

// Open descriptors of a process; -1 if unreadable.
int fd_count(pid_t pid);
// The peak resident set of a process (VmHWM), in KiB; -1 if unreadable.
long peak_rss_kib(pid_t pid);
// BERTH_SANITIZE=1: the binaries under test are ASan/UBSan builds (bigger, slower; their memory
// figures include the sanitizer's quarantine).
bool sanitized();

// A fresh marker, unique in this run (and never a substring of another one).
std::string marker(const std::string& prefix = "MK");

// The common head of a config: listener/admin on port 0, given workers and timeouts
// (a YAML flow mapping body, e.g. "upstream_response: 1s").
std::string config_head(int workers, const std::string& timeouts = "",
                        const std::string& limits = "");

// A counter from Berth's /api/stats (0 when absent).
uint64_t stats_counter(uint16_t admin_port, const std::string& name);

// The value of one series of Berth's /metrics, named exactly as written there
// (`name{label="v",...}`), or -1 when it is absent.
double metric_sample(uint16_t admin_port, const std::string& series);

// Why discovery rejected the container whose name contains `name` (its `rejected` entry in
// /api/routes), or "<not rejected>".
std::string rejected_reason(uint16_t admin_port, const std::string& name);

// CHECKs that r is a well-formed, short berth-generated error response.
void check_berth_error(const Response& r, int status, const std::string& code);
// The same for the answer to a HEAD: the head of that reply (its Content-Length too), no body.
void check_head_berth_error(const Response& r, int status, const std::string& code);

}  // namespace it
