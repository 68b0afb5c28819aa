#include "env.h"

#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace it {

namespace {

std::unique_ptr<SharedEnv> g_env;
bool g_env_failed = false;

std::string shared_yaml(const SharedEnv& e) {
  std::string pa = e.a->address(), pb = e.b->address();
  std::string pd = "127.0.0.1:" + std::to_string(e.dead_port);
  return config_head(2, "upstream_connect: 2s, upstream_response: 10s") +
         "routes:\n"
         "  - {name: r-a, host: [\"a.test\", \"*.wild.test\"], service: s-a}\n"
         "  - {name: r-b, host: \"b.test\", service: s-b}\n"
         "  - {name: r-lb, host: \"lb.test\", service: s-ab}\n"
         "  - {name: r-empty, host: \"empty.test\", service: s-empty}\n"
         "  - {name: r-dead, host: \"dead.test\", service: s-dead}\n"
         "  - {name: r-small, host: \"small.test\", service: s-a, max_body_bytes: 1KiB}\n"
         "services:\n"
         "  s-a: {endpoints: [\"" + pa + "\"]}\n"
         "  s-b: {endpoints: [\"" + pb + "\"]}\n"
         "  s-ab: {endpoints: [\"" + pa + "\", {address: \"" + pb + "\", weight: 2}]}\n"
         "  s-empty: {endpoints: []}\n"
         "  s-dead: {endpoints: [\"" + pd + "\"]}\n";
}

}  // namespace

std::string config_head(int workers, const std::string& timeouts, const std::string& limits) {
  std::string y = "listeners: [\"127.0.0.1:0\"]\n";
  y += "workers: " + std::to_string(workers) + "\n";
  y += "admin: {address: \"127.0.0.1:0\"}\n";
  if (!timeouts.empty()) y += "timeouts: {" + timeouts + "}\n";
  if (!limits.empty()) y += "limits: {" + limits + "}\n";
  return y;
}

OriginEnv::OriginEnv(const std::string& origin_name, const std::string& config, const std::string& service)
    : origin(origin_name) {
  REQUIRE(origin.ok());
  berth = std::make_unique<Berth>(config + "services:\n  " + service + ": {endpoints: [\"" + origin.address() + "\"]}\n");
  INFO(berth->error());
  REQUIRE(berth->ok());
}

SharedEnv& shared() {
  if (g_env_failed) FAIL("shared environment failed to start earlier");
  if (!g_env) {
    g_env_failed = true;
    auto e = std::make_unique<SharedEnv>();
    e->a = std::make_unique<Origin>("A");
    e->b = std::make_unique<Origin>("B");
    REQUIRE(e->a->ok());
    REQUIRE(e->b->ok());
    e->dead_port = unused_port();
    e->yaml = shared_yaml(*e);
    e->berth = std::make_unique<Berth>(e->yaml);
    INFO(e->berth->error());
    REQUIRE(e->berth->ok());
    g_env = std::move(e);
    g_env_failed = false;
  }
  if (!g_env->berth->running()) {
    std::string log = g_env->berth->log();
    auto st = g_env->berth->process().exit_status();
    g_env->berth.reset();
    g_env->berth = std::make_unique<Berth>(g_env->yaml);
    FAIL_CHECK("shared berth died before this test ("
               << (st ? describe_status(*st) : "?") << "); its log:\n"
               << tail(log));
    INFO(g_env->berth->error());
    REQUIRE(g_env->berth->ok());
  }
  return *g_env;
}

void check_alive(SharedEnv& env) {
  bool alive = env.berth->running();
  if (!alive) {
    auto st = env.berth->process().exit_status();
    FAIL_CHECK("berth died during this test (" << (st ? describe_status(*st) : "?")
                                               << "); log:\n" << tail(env.berth->log()));
  }
}

std::string marker(const std::string& prefix) {
  static std::atomic<int> n{0};
  // The trailing letter keeps "x1" from matching inside "x12".
  return prefix + std::to_string(::getpid()) + "x" + std::to_string(++n) + "q";
}

uint64_t stats_counter(uint16_t admin_port, const std::string& name) {
  Response r = http_get(admin_port, "/api/stats", "localhost");
  size_t p = r.body.find("\"" + name + "\":");
  return p == std::string::npos ? 0 : std::stoull(r.body.substr(p + name.size() + 3));
}

double metric_sample(uint16_t admin_port, const std::string& series) {
  const std::string text = http_get(admin_port, "/metrics", "127.0.0.1").body;
  const std::string start = series + " ";
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (text.compare(pos, start.size(), start) == 0) return std::stod(text.substr(pos + start.size(), end - pos - start.size()));
    pos = end + 1;
  }
  return -1;
}

std::string rejected_reason(uint16_t admin_port, const std::string& name) {
  auto j = nlohmann::json::parse(http_get(admin_port, "/api/routes", "127.0.0.1").body, nullptr, false);
  if (!j.is_object()) return "<no /api/routes>";
  for (const auto& r : j["rejected"])
    if (r.value("container", "").find(name) != std::string::npos) return r.value("reason", "");
  return "<not rejected>";
}

void check_berth_error(const Response& r, int status, const std::string& code) {
  INFO("response head:\n" << r.raw_head << "error: " << r.error);
  CHECK(r.ok());
  CHECK(r.status == status);
  CHECK(r.body_complete);
  CHECK(r.body.size() < 4096);
  CHECK((r.framing == Response::Framing::Length || r.framing == Response::Framing::Chunked));
  auto e = r.header("x-berth-error");
  CHECK(e.has_value());
  if (e && !code.empty()) CHECK(*e == code);
}

void check_head_berth_error(const Response& r, int status, const std::string& code) {
  INFO("response head:\n" << r.raw_head << "error: " << r.error);
  CHECK(r.status == status);
  CHECK(r.body.empty());
  CHECK(r.header("content-length").value_or("0") != "0");  // the length a GET's reply has
  CHECK(r.header("x-berth-error").value_or("") == code);
}

int fd_count(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

bool sanitized() {
  const char* s = std::getenv("BERTH_SANITIZE");
  return s && *s && std::string_view(s) != "0";
}

long peak_rss_kib(pid_t pid) {
  const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  const size_t p = status.find("VmHWM:");
  if (p == std::string::npos) return -1;
  return std::strtol(status.c_str() + p + 6, nullptr, 10);
}

}  // namespace it
