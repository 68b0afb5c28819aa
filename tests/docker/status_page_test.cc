// The status page against a real engine, in headless Chromium: it shows the routes and the
// container instances Docker discovery found, a container whose Docker healthcheck fails in red
// with Docker's reason, and a stopped container disappears from it (and its leaving is in the
// events). The test saves the screenshot the README shows.
#include <catch2/catch.hpp>

#include "chromium.h"
#include "engine.h"

using namespace dk;

TEST_CASE("docker: status page in headless Chromium shows discovered instances, and a stopped one disappears",
          "[docker][status][browser]") {
  engine();
  auto berth = start_berth("", "30s");
  Cleanup cleanup{{"dk-status-web-1", "dk-status-web-2", "dk-status-api", "dk-status-api-sick"}};
  const uint16_t p1 = fresh_port(), p2 = fresh_port(), p3 = fresh_port(), p4 = fresh_port();
  auto labels = [](const std::string& service, const std::string& host, uint16_t port) {
    return std::vector<std::pair<std::string, std::string>>{{"berth.enable", "true"},
                                                            {"berth.service", service},
                                                            {"berth.host", host},
                                                            {"berth.port", std::to_string(port)}};
  };
  WebOptions w1, w2, api, sick;
  w1.labels = labels("shop-web", "shop.dk.test", p1);
  w2.labels = labels("shop-web", "shop.dk.test", p2);
  api.labels = labels("shop-api", "api.shop.dk.test", p3);
  // Its Docker healthcheck (a GET of /) fails: the page has nothing to serve.
  sick.labels = labels("shop-api", "api.shop.dk.test", p4);
  sick.healthcheck = true;
  sick.extra_script = "rm /www/index.html";
  std::string error;
  INFO(error);
  REQUIRE_FALSE(run_web("dk-status-web-1", p1, "web-1", w1, &error).empty());
  REQUIRE_FALSE(run_web("dk-status-web-2", p2, "web-2", w2, &error).empty());
  REQUIRE_FALSE(run_web("dk-status-api", p3, "api", api, &error).empty());
  REQUIRE_FALSE(run_web("dk-status-api-sick", p4, "sick", sick, &error).empty());
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& t) {
    return endpoints_for(t, "shop.dk.test").size() == 2 && endpoints_for(t, "api.shop.dk.test").size() == 1;
  }, 15s));
  // The unhealthy one is not routed, and /api/status lists it with Docker's reason.
  auto sick_instance = [&]() -> nlohmann::json {
    auto status = nlohmann::json::parse(it::http_get(berth->admin_port(), "/api/status", "127.0.0.1").body, nullptr, false);
    if (!status.is_object()) return nullptr;
    for (const auto& s : status["services"])
      for (const auto& i : s["instances"])
        if (s["name"] == "shop-api" && i["address"] == addr(p4)) return i;
    return nullptr;
  };
  REQUIRE(it::wait_until([&] {
    nlohmann::json i = sick_instance();
    return i.is_object() && i["docker"] == "unhealthy (its healthcheck fails)";
  }, 15s));
  CHECK(sick_instance()["colour"] == "red");
  CHECK(sick_instance()["eligible"] == false);
  CHECK(endpoints_for(routes(berth->admin_port()), "api.shop.dk.test") == std::vector<std::string>{addr(p3)});
  // Some traffic, so that the page has something to show.
  for (int i = 0; i < 5; ++i) CHECK(get(berth->port(), "shop.dk.test").status == 200);

  const std::string url = "http://127.0.0.1:" + std::to_string(berth->admin_port()) + "/";
  it::BrowserRun dom = it::chromium_dom(url, 3000);
  INFO(dom.error << "\n" << dom.log);
  REQUIRE(dom.error.empty());
  CHECK(dom.output.find("data-updates=\"0\"") == std::string::npos);
  CHECK(dom.output.find("id=\"error\"></span>") != std::string::npos);  // no "update failed"
  CHECK(dom.output.find("data-service=\"shop-web\"") != std::string::npos);
  CHECK(dom.output.find("data-service=\"shop-api\"") != std::string::npos);
  CHECK(dom.output.find(">shop.dk.test<") != std::string::npos);
  CHECK(dom.output.find(">api.shop.dk.test<") != std::string::npos);
  for (const char* name : {"dk-status-web-1", "dk-status-web-2", "dk-status-api", "dk-status-api-sick"})
    CHECK(dom.output.find(std::string(">") + name + "<") != std::string::npos);
  CHECK(dom.output.find("data-address=\"" + addr(p1) + "\"") != std::string::npos);
  CHECK(dom.output.find("data-address=\"" + addr(p2) + "\"") != std::string::npos);
  CHECK(dom.output.find("Docker: running") != std::string::npos);
  CHECK(it::occurrences(dom.output, "class=\"dot green\"") == 3);
  CHECK(it::occurrences(dom.output, "class=\"dot red\"") == 1);
  CHECK(dom.output.find("Docker: unhealthy (its healthcheck fails)") != std::string::npos);
  CHECK(it::occurrences(dom.output, ">instance_joined<") >= 3);

  // The screenshot for the README, taken while all three run.
  const std::string png = it::screenshot_path("status-page.png");
  it::BrowserRun shot = it::chromium_screenshot(url, png, 1100, 640, 5000);
  INFO(shot.error << "\n" << shot.log);
  REQUIRE(shot.error.empty());
  const std::string bytes = it::read_file(png);
  CHECK(it::is_png(bytes));
  CHECK(it::png_size(bytes) == std::make_pair(1100u, 640u));

  // docker stop: the instance leaves the page (and the events say so).
  REQUIRE(docker({"stop", "-t", "5", "dk-status-web-2"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& t) {
    return endpoints_for(t, "shop.dk.test") == std::vector<std::string>{addr(p1)};
  }, 10s));
  it::BrowserRun after = it::chromium_dom(url, 3000);
  INFO(after.error << "\n" << after.log);
  REQUIRE(after.error.empty());
  CHECK(after.output.find("data-address=\"" + addr(p1) + "\"") != std::string::npos);
  CHECK(after.output.find("data-address=\"" + addr(p2) + "\"") == std::string::npos);
  CHECK(after.output.find(">dk-status-web-1<") != std::string::npos);
  CHECK(after.output.find(">dk-status-web-2<") == std::string::npos);
  CHECK(it::occurrences(after.output, "class=\"dot green\"") == 2);
  CHECK(after.output.find(">instance_left<") != std::string::npos);
  CHECK(after.output.find("container=dk-status-web-2") != std::string::npos);
  CHECK(berth->running());
}
