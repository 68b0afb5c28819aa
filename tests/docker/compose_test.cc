// docker-compose itself (the Debian docker-compose package) against the private engine: the
// labels compose sets group a project's services under "<project>-<service>", and
// `docker-compose stop` / `up` / `down` move the routes. Host networking, 127.0.0.1 only.
#include <catch2/catch.hpp>

#include <fstream>

#include "engine.h"

using namespace dk;

namespace {

// The service name behind the route for `host` in /api/routes, "" when there is none.
std::string service_for(const nlohmann::json& routes, const std::string& host) {
  for (const auto& r : routes["routes"])
    if (r["host"] == host) return r["service"].get<std::string>();
  return {};
}

std::string compose_service(const std::string& name, uint16_t port, const std::string& body) {
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  return "  " + name + ":\n"
         "    image: " + engine().image + "\n"
         "    network_mode: host\n"
         "    init: true\n"
         "    entrypoint: [\"sh\", \"-c\", \"echo " + body + " > /www/index.html; exec httpd -f -p " + listen + " -h /www\"]\n"
         "    labels:\n"
         "      berth.enable: \"true\"\n"
         "      berth.host: \"" + name + ".compose.dk.test\"\n"
         "      berth.port: \"" + std::to_string(port) + "\"\n";
}

struct ComposeProject {
  std::string file, project;
  ~ComposeProject() { docker_compose({"-p", project, "-f", file, "down", "-t", "1"}); }
};

}  // namespace

TEST_CASE("docker: docker-compose projects are grouped by project and service, and follow stop/up/down",
          "[docker][compose]") {
  engine();
  auto berth = start_berth("", "1s");
  it::TempDir dir;
  const uint16_t web_port = fresh_port(), api_port = fresh_port();
  const std::string file = dir.file("docker-compose.yml");
  {
    std::ofstream f(file);
    f << "version: \"2.4\"\nservices:\n"
      << compose_service("web", web_port, "compose-web") << compose_service("api", api_port, "compose-api");
  }
  ComposeProject project{file, "dkcompose"};
  CmdResult up = docker_compose({"-p", project.project, "-f", file, "up", "-d"});
  INFO(up.text());
  REQUIRE(up.ok());
  REQUIRE(wait_listening(web_port));  // routed at `start`, which comes before httpd listens
  REQUIRE(wait_listening(api_port));

  INFO(berth->log());
  nlohmann::json t;
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "web.compose.dk.test") == std::vector<std::string>{addr(web_port)} &&
           endpoints_for(j, "api.compose.dk.test") == std::vector<std::string>{addr(api_port)};
  }, 20s, &t));
  // The default service name comes from the labels compose set on each container.
  CHECK(service_for(t, "web.compose.dk.test") == "dkcompose-web");
  CHECK(service_for(t, "api.compose.dk.test") == "dkcompose-api");
  it::Response r = get(berth->port(), "web.compose.dk.test");
  CHECK(r.status == 200);
  CHECK(r.body == "compose-web\n");
  CHECK(get(berth->port(), "api.compose.dk.test").body == "compose-api\n");

  // `docker-compose stop web`: that service leaves, the other one is untouched.
  REQUIRE(docker_compose({"-p", project.project, "-f", file, "stop", "-t", "1", "web"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "web.compose.dk.test").empty();
  }, 10s));
  CHECK(get(berth->port(), "api.compose.dk.test").status == 200);

  // `up -d` again starts the stopped container: routed again.
  REQUIRE(docker_compose({"-p", project.project, "-f", file, "up", "-d"}).ok());
  REQUIRE(wait_listening(web_port));
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "web.compose.dk.test") == std::vector<std::string>{addr(web_port)};
  }, 20s));
  CHECK(get(berth->port(), "web.compose.dk.test").body == "compose-web\n");

  // `down` removes both; after the grace period the routes are gone.
  REQUIRE(docker_compose({"-p", project.project, "-f", file, "down", "-t", "1"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return !has_route(j, "web.compose.dk.test") && !has_route(j, "api.compose.dk.test");
  }, 15s));
  CHECK(get(berth->port(), "web.compose.dk.test").status == 404);
}
