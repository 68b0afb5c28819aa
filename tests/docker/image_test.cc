// Berth shipped as a container image, used the way operators run Traefik: the image built
// offline by scripts/image.sh (docker import), Berth run from it as a non-root container with
// host networking and the engine's socket mounted read-only, in front of labelled containers on
// the private engine. Also examples/compose.yaml, run as shipped (ports and images swapped in).
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "engine.h"
#include "load.h"

using namespace dk;
using it::Response;

namespace {

const std::string kImage = "berth:test";

// scripts/image.sh into the private engine (once per test process: each has its own engine).
void build_image() {
  static bool built = false;
  if (built) return;
  engine();
  CmdResult r = run_command({"/bin/bash", std::string(BERTH_SOURCE_DIR) + "/scripts/image.sh", kImage, BERTH_BINARY}, 180s);
  INFO("scripts/image.sh: " << r.text());
  REQUIRE(r.ok());
  built = true;
}

std::string socket_path() { return engine().dir + "/docker.sock"; }

std::string socket_gid() {
  struct stat st {};
  REQUIRE(::stat(socket_path().c_str(), &st) == 0);
  return std::to_string(st.st_gid);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// A directory the container's non-root user can read (TempDir is 0700).
void open_up(const it::TempDir& dir) { ::chmod(dir.path().c_str(), 0755); }

// Under -DBERTH_SANITIZE the image carries the sanitizer runtimes; LeakSanitizer cannot stop
// the world inside a container without ptrace, so leaks are checked by the other suites.
std::vector<std::string> sanitizer_env() {
#ifdef BERTH_SANITIZE
  return {"-e", "ASAN_OPTIONS=detect_leaks=0"};
#else
  return {};
#endif
}

std::string container_log(const std::string& name) { return docker({"logs", name}).text(); }

}  // namespace

TEST_CASE("docker: the offline image has the Dockerfile's entrypoint, user, ports and config", "[docker][image]") {
  build_image();
  CmdResult cfg = docker({"image", "inspect", "-f", "{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.User}} {{json .Config.ExposedPorts}}", kImage});
  INFO(cfg.text());
  REQUIRE(cfg.ok());
  CHECK(trim(cfg.out) == "[\"/usr/bin/berth\"] [\"--config\",\"/etc/berth/berth.yaml\"] 10001:10001 {\"8080/tcp\":{}}");

  // The entrypoint runs, with nothing but the image's own files (no host mounts).
  CmdResult version = docker({"run", "--rm", "--pull", "never", kImage, "--version"});
  INFO(version.text());
  CHECK(version.ok());
  it::TempDir dir;
  std::string host_version;
  it::run_berth({"--version"}, &host_version, nullptr);
  CHECK(version.out == host_version);
  CmdResult check = docker({"run", "--rm", "--pull", "never", kImage, "--check-config", "/etc/berth/berth.yaml"});
  INFO(check.text());
  CHECK(check.ok());
  CHECK(check.out.find("/etc/berth/berth.yaml: ok") != std::string::npos);
}

TEST_CASE("docker: Berth as a non-root container routes labelled containers, drains at docker stop, skips itself",
          "[docker][image]") {
  build_image();
  const uint16_t port = fresh_port(), admin = fresh_port(), pa = fresh_port(), pb = fresh_port();
  Cleanup cleanup{{"dk-img-berth", "dk-img-a", "dk-img-b"}};

  it::TempDir conf;
  open_up(conf);
  REQUIRE(it::write_file(conf.file("berth.yaml"),
                         "listeners: [\"127.0.0.1:" + std::to_string(port) + "\"]\nworkers: 2\n"
                         "admin: {address: \"127.0.0.1:" + std::to_string(admin) + "\"}\n"
                         "docker: {enabled: true, endpoint: \"unix:///var/run/docker.sock\", empty_route_grace: 1s}\n"));
  ::chmod(conf.file("berth.yaml").c_str(), 0644);

  // Berth's own container carries berth labels pointing at its own listener: routing them would
  // loop. It must recognise itself and skip them.
  std::vector<std::string> run{"run", "-d", "--pull", "never", "--name", "dk-img-berth", "--network", "host",
                               "--group-add", socket_gid(),
                               "-v", socket_path() + ":/var/run/docker.sock:ro",
                               "-v", conf.path() + ":/etc/berth:ro",
                               "--label", "berth.enable=true", "--label", "berth.host=self.img.dk.test",
                               "--label", "berth.port=" + std::to_string(port)};
  for (const auto& e : sanitizer_env()) run.push_back(e);
  run.push_back(kImage);
  CmdResult started = docker(run);
  INFO(started.text());
  REQUIRE(started.ok());
  const std::string berth_id = trim(started.out);
  bool synced = it::wait_until([&] { return container_log("dk-img-berth").find("event=docker_synced") != std::string::npos; }, 30s, 100ms);
  INFO("berth container log:\n" << container_log("dk-img-berth"));
  REQUIRE(synced);

  // Not root, and it reads the socket through the socket's group only.
  std::string pid = trim(docker({"inspect", "-f", "{{.State.Pid}}", "dk-img-berth"}).out);
  std::string status = it::read_file("/proc/" + pid + "/status");
  INFO(status);
  CHECK(status.find("\nUid:\t10001\t10001\t10001\t10001\n") != std::string::npos);
  CHECK(status.find("\nGroups:\t" + socket_gid()) != std::string::npos);
  // It knew its own container.
  std::string log = container_log("dk-img-berth");
  CHECK(log.find("event=docker_own_container container=" + berth_id.substr(0, 12)) != std::string::npos);

  auto options = [](uint16_t p) {
    WebOptions o;
    o.labels = {{"berth.enable", "true"}, {"berth.host", "img.dk.test"}, {"berth.service", "img"},
                {"berth.port", std::to_string(p)}};
    o.drain_seconds = 3;  // keeps serving for 3 s after SIGTERM, then exits
    return o;
  };
  REQUIRE_FALSE(run_web("dk-img-a", pa, "A", options(pa)).empty());
  REQUIRE_FALSE(run_web("dk-img-b", pb, "B", options(pb)).empty());
  nlohmann::json t;
  REQUIRE(wait_routes(admin, [&](const nlohmann::json& j) { return endpoints_for(j, "img.dk.test").size() == 2; }, 20s, &t));
  CHECK_FALSE(has_route(t, "self.img.dk.test"));
  CHECK(get(port, "self.img.dk.test").status == 404);
  std::map<std::string, int> seen;
  for (int i = 0; i < 20; ++i) ++seen[get(port, "img.dk.test").body];
  CHECK(seen["A\n"] > 0);
  CHECK(seen["B\n"] > 0);
  CHECK(seen["A\n"] + seen["B\n"] == 20);

  // docker stop of a backend under load: it leaves selection at its kill event and keeps
  // serving what it has; no request fails.
  {
    Load load(port, "img.dk.test", 2, 10ms);  // ~100 requests/s per thread
    it::wait_until([] { return false; }, 500ms);
    CmdResult stopped = docker({"stop", "-t", "10", "dk-img-a"});
    INFO(stopped.text());
    CHECK(stopped.ok());
    it::wait_until([] { return false; }, 500ms);
    load.finish();
    const long total = load.total();
    INFO("failures:\n" << load.failures());
    CHECK(load.statuses()[200] == total);
    CHECK(total > 50);
    CHECK(load.bodies()["B\n"] > 0);
  }
  CHECK(endpoints_for(routes(admin), "img.dk.test") == std::vector<std::string>{addr(pb)});
  CHECK(get(port, "img.dk.test").body == "B\n");

  // docker stop of Berth itself: SIGTERM drains and it exits 0.
  CmdResult stopped = docker({"stop", "-t", "20", "dk-img-berth"});
  INFO(stopped.text());
  CHECK(stopped.ok());
  CHECK(trim(docker({"inspect", "-f", "{{.State.ExitCode}}", "dk-img-berth"}).out) == "0");
  CHECK(container_log("dk-img-berth").find("event=draining signal=SIGTERM") != std::string::npos);
}

TEST_CASE("docker: examples/compose.yaml runs Berth from the image in front of its two services", "[docker][image][compose]") {
  build_image();
  const uint16_t port = fresh_port(), admin = fresh_port(), hello = fresh_port(), world = fresh_port();
  // The shipped files, with this run's ports (the example listens on 8080 / 9901).
  it::TempDir dir;
  open_up(dir);
  std::string compose = it::read_file(std::string(BERTH_SOURCE_DIR) + "/examples/compose.yaml");
  std::string yaml = it::read_file(std::string(BERTH_SOURCE_DIR) + "/examples/berth.yaml");
  REQUIRE(yaml.find("0.0.0.0:8080") != std::string::npos);
  REQUIRE(yaml.find("127.0.0.1:9901") != std::string::npos);
  yaml.replace(yaml.find("0.0.0.0:8080"), 12, "127.0.0.1:" + std::to_string(port));
  yaml.replace(yaml.find("127.0.0.1:9901"), 14, "127.0.0.1:" + std::to_string(admin));
  REQUIRE(it::write_file(dir.file("compose.yaml"), compose));
  REQUIRE(it::write_file(dir.file("berth.yaml"), yaml));
  ::chmod(dir.file("berth.yaml").c_str(), 0644);

  for (auto [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"BERTH_IMAGE", kImage}, {"EXAMPLE_IMAGE", engine().image}, {"DOCKER_GID", socket_gid()},
           {"DOCKER_SOCKET", socket_path()}, {"HELLO_PORT", std::to_string(hello)}, {"WORLD_PORT", std::to_string(world)}})
    ::setenv(k.c_str(), v.c_str(), 1);
  const std::string file = dir.file("compose.yaml");
  struct Down {
    std::string file;
    ~Down() { docker_compose({"-p", "dkexample", "-f", file, "down", "-t", "5"}); }
  } down{file};
  CmdResult up = docker_compose({"-p", "dkexample", "-f", file, "up", "-d"});
  INFO(up.text());
  REQUIRE(up.ok());
  REQUIRE(wait_listening(hello));
  REQUIRE(wait_listening(world));
  nlohmann::json t;
  bool routed = wait_routes(admin, [&](const nlohmann::json& j) {
    return endpoints_for(j, "hello.localhost") == std::vector<std::string>{addr(hello)} &&
           endpoints_for(j, "world.localhost") == std::vector<std::string>{addr(world)};
  }, 30s, &t);
  INFO("routes: " << t.dump() << "\nberth log:\n" << docker_compose({"-p", "dkexample", "-f", file, "logs", "berth"}).text());
  REQUIRE(routed);
  CHECK(get(port, "hello.localhost").body == "hello from hello\n");
  CHECK(get(port, "world.localhost").body == "hello from world\n");
  CmdResult ps = docker({"inspect", "-f", "{{.Config.User}} {{range .Mounts}}{{.Destination}}:{{.RW}} {{end}}", "dkexample_berth_1"});
  INFO(ps.text());
  CHECK(ps.out.find("10001:10001") == 0);
  CHECK(ps.out.find("/var/run/docker.sock:false") != std::string::npos);  // read-only
}
