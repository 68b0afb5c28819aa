// Who may claim a route, against a real engine: container labels are not trusted. A running
// service keeps its host against newcomers (a name that sorts first, a huge priority, a
// catch-all path, a wildcard over its host, a config file's host, a replica of its service
// without its access labels), and serves every request while they try; the operator's policy (docker.allowed_hosts, max_priority, allow_any_host)
// refuses what labels may not ask for; when the incumbent's last instance leaves and its grace
// ends, the next claimant gets the route.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <thread>

#include "engine.h"

using namespace dk;

namespace {

// GETs `host` on Berth in a loop until stopped, counting answers that are not `body`.
class Traffic {
 public:
  Traffic(uint16_t port, std::string host, std::string body)
      : thread_([this, port, host = std::move(host), body = std::move(body)] {
          while (!stop_.load()) {
            it::Response r = get(port, host);
            ++total_;
            if (r.status != 200 || r.body != body) {
              ++bad_;
              std::lock_guard<std::mutex> lock(mu_);
              if (first_bad_.empty()) first_bad_ = std::to_string(r.status) + " " + r.body;
            }
          }
        }) {}
  ~Traffic() { finish(); }
  void finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t total() const { return total_.load(); }
  uint64_t bad() const { return bad_.load(); }
  std::string first_bad() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_bad_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> total_{0}, bad_{0};
  std::mutex mu_;
  std::string first_bad_;
  std::thread thread_;
};

std::map<std::string, std::string> rejected_by_name(const nlohmann::json& t) {
  std::map<std::string, std::string> out;
  for (const auto& r : t["rejected"]) {
    std::string container = r["container"].get<std::string>();
    out[container.substr(container.find('/') + 1)] = r["reason"].get<std::string>();
  }
  return out;
}

WebOptions labelled(std::vector<std::pair<std::string, std::string>> labels, uint16_t port) {
  WebOptions o;
  o.labels = std::move(labels);
  o.labels.emplace_back("berth.enable", "true");
  o.labels.emplace_back("berth.port", std::to_string(port));
  return o;
}

}  // namespace

TEST_CASE("docker: hijack attempts by labels fail, and the incumbent serves every request meanwhile", "[docker]") {
  engine();
  const uint16_t p_shop = fresh_port(), p_cfg = fresh_port(), p_name = fresh_port(), p_prio = fresh_port(),
                 p_any = fresh_port(), p_wild = fresh_port(), p_cfgclaim = fresh_port(), p_replica = fresh_port();
  // A config route on cfg.apps.dk.test, to an unlabelled container.
  std::string yaml = berth_yaml("allowed_hosts: [\"*.apps.dk.test\"]", "2s") +
                     "routes: [{host: cfg.apps.dk.test, service: cfgsvc}]\n"
                     "services: {cfgsvc: {endpoints: [\"" + addr(p_cfg) + "\"]}}\n";
  auto berth = std::make_unique<it::Berth>(yaml);
  INFO(berth->error());
  REQUIRE(berth->ok());
  REQUIRE(it::wait_until([&] { return berth->log().find("event=docker_synced") != std::string::npos; }, 20s));
  Cleanup cleanup{{"zz-shop", "cfg-origin", "aa-evil-name", "aa-evil-priority", "aa-evil-anyhost", "aa-evil-wildcard",
                   "aa-evil-config", "aa-evil-replica"}};

  // The incumbent: its name sorts last; it takes GET and HEAD only.
  const std::string shop_id = run_web("zz-shop", p_shop, "shop",
                                      labelled({{"berth.host", "shop.apps.dk.test"}, {"berth.service", "shop"},
                                                {"berth.access.methods", "GET, HEAD"}}, p_shop));
  REQUIRE(shop_id.size() >= 12);
  REQUIRE_FALSE(run_web("cfg-origin", p_cfg, "from-config", WebOptions{}).empty());
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "shop.apps.dk.test") == std::vector<std::string>{addr(p_shop)}; }, 10s));

  Traffic traffic(berth->port(), "shop.apps.dk.test", "shop\n");
  // 1. The same host, from a container whose name sorts first.
  REQUIRE_FALSE(run_web("aa-evil-name", p_name, "evil",
                        labelled({{"berth.host", "shop.apps.dk.test"}, {"berth.service", "evil"}}, p_name)).empty());
  // 2. The same host with a huge priority.
  REQUIRE_FALSE(run_web("aa-evil-priority", p_prio, "evil",
                        labelled({{"berth.host", "shop.apps.dk.test"}, {"berth.service", "evil-prio"},
                                  {"berth.priority", "1000000"}}, p_prio)).empty());
  // 3. Every host: a catch-all path and no host.
  REQUIRE_FALSE(run_web("aa-evil-anyhost", p_any, "evil",
                        labelled({{"berth.path", "/"}, {"berth.service", "evil-any"}}, p_any)).empty());
  // 4. A wildcard over the incumbent's host (allowed by the policy: it may have the others).
  REQUIRE_FALSE(run_web("aa-evil-wildcard", p_wild, "wild",
                        labelled({{"berth.host", "*.apps.dk.test"}, {"berth.service", "evil-wild"}}, p_wild)).empty());
  // 5. The config file's host.
  REQUIRE_FALSE(run_web("aa-evil-config", p_cfgclaim, "evil",
                        labelled({{"berth.host", "cfg.apps.dk.test"}, {"berth.service", "evil-cfg"}}, p_cfgclaim)).empty());
  // 6. A replica of the incumbent's service without its access label, whose name sorts first.
  REQUIRE_FALSE(run_web("aa-evil-replica", p_replica, "evil",
                        labelled({{"berth.host", "shop.apps.dk.test"}, {"berth.service", "shop"}}, p_replica)).empty());

  nlohmann::json t;
  const bool settled = wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return rejected_by_name(j).size() == 5 && !endpoints_for(j, "*.apps.dk.test").empty(); }, 15s, &t);
  INFO(t.dump(1));
  INFO(berth->log());
  REQUIRE(settled);
  auto why = rejected_by_name(t);
  CHECK(why["aa-evil-name"].find("already served by service 'shop' (the incumbent keeps it)") != std::string::npos);
  CHECK(why["aa-evil-priority"].find("above docker.max_priority (0)") != std::string::npos);
  CHECK(why["aa-evil-anyhost"].find("docker.allow_any_host is off") != std::string::npos);
  CHECK(why["aa-evil-replica"] == "route shop.apps.dk.test/ of service 'shop' is served by container " +
                                      shop_id.substr(0, 12) +
                                      "/zz-shop with other berth.access.* labels (the containers of a route "
                                      "must agree on them)");
  // Dropped for the config file's route, and said so.
  CHECK(why["aa-evil-config"].find("route cfg.apps.dk.test/ of service 'evil-cfg' is the config file's") !=
        std::string::npos);
  CHECK(berth->log().find("event=discovered_route_refused") != std::string::npos);
  CHECK(berth->log().find("event=docker_container_rejected") != std::string::npos);

  // Let the traffic run over the settled table too, then count.
  it::wait_until([] { return false; }, 1s);
  traffic.finish();
  INFO("first bad answer: " << traffic.first_bad());
  CHECK(traffic.total() > 50);
  CHECK(traffic.bad() == 0);

  CHECK(endpoints_for(t, "shop.apps.dk.test") == std::vector<std::string>{addr(p_shop)});
  CHECK(get(berth->port(), "shop.apps.dk.test").body == "shop\n");
  CHECK(get(berth->port(), "other.apps.dk.test").body == "wild\n");   // the wildcard's own hosts
  CHECK(get(berth->port(), "cfg.apps.dk.test").body == "from-config\n");  // the file's host stays the file's
  CHECK(get(berth->port(), "elsewhere.test").status == 404);           // no catch-all
  {
    it::Client c(berth->port());
    CHECK(c.request(it::make_request("POST", "/", "shop.apps.dk.test")).status == 405);  // the incumbent's labels
  }

  // The replica goes first (its labels would give it the route once the incumbent stops).
  REQUIRE(docker({"stop", "-t", "5", "aa-evil-replica"}).ok());

  // The incumbent leaves: its route answers 503 for the grace, then the next claimant has it.
  REQUIRE(docker({"stop", "-t", "5", "zz-shop"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return endpoints_for(j, "shop.apps.dk.test").empty(); }, 5s));
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "shop.apps.dk.test") == std::vector<std::string>{addr(p_name)}; }, 10s, &t));
  CHECK(get(berth->port(), "shop.apps.dk.test").body == "evil\n");
  // The policy's refusals stand.
  why = rejected_by_name(t);
  CHECK(why.count("aa-evil-priority") == 1);
  CHECK(why.count("aa-evil-anyhost") == 1);
  CHECK(berth->running());
}

TEST_CASE("docker: a resync keeps a stopped incumbent's claim; the newcomer waits out its grace and the incumbent returns",
          "[docker][slow]") {
  engine();
  // A grace that outlasts the engine's kill and restart (its restore stops and restarts the
  // running containers first).
  auto berth = start_berth("", "90s");
  Cleanup cleanup{{"zz-resync-incumbent", "aa-resync-newcomer"}};
  const uint16_t p_inc = fresh_port(), p_new = fresh_port();
  REQUIRE_FALSE(run_web("zz-resync-incumbent", p_inc, "incumbent",
                        labelled({{"berth.host", "resync.dk.test"}, {"berth.service", "incumbent"}}, p_inc)).empty());
  INFO(berth->log());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "resync.dk.test") == std::vector<std::string>{addr(p_inc)}; }, 10s));
  WebOptions newcomer = labelled({{"berth.host", "resync.dk.test"}, {"berth.service", "newcomer"}}, p_new);
  newcomer.restart = "always";  // runs again after the engine's restart
  REQUIRE_FALSE(run_web("aa-resync-newcomer", p_new, "newcomer", newcomer).empty());
  nlohmann::json t;
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) { return rejected_by_name(j).count("aa-resync-newcomer"); },
                      10s, &t));

  // The incumbent stops: its route answers 503 for the grace, the newcomer still waits.
  REQUIRE(docker({"stop", "-t", "5", "zz-resync-incumbent"}).ok());
  REQUIRE(it::wait_until([&] { return get(berth->port(), "resync.dk.test").status == 503; }, 5s));

  // The engine goes away and comes back: Berth resyncs, and what it knew of the stopped
  // incumbent (its claim) survives that.
  REQUIRE(kill_engine());
  REQUIRE(it::wait_until([&] { return berth->log().find("event=docker_disconnected") != std::string::npos; }, 5s));
  std::string error;
  INFO(error);
  REQUIRE(restart_engine(&error));
  REQUIRE(it::wait_until([&] { return berth->log().find("event=docker_resynced") != std::string::npos; }, 60s));
  // In sync, and the newcomer runs again (rejected, or, were the claim forgotten, routed).
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return j["discovery"][0]["in_sync"] == true &&
           (rejected_by_name(j).count("aa-resync-newcomer") || !endpoints_for(j, "resync.dk.test").empty()); },
                      60s, &t));
  it::wait_until([] { return false; }, 1s);  // anything the resync still had to publish
  t = routes(berth->admin_port());
  INFO(t.dump(1));
  CHECK(endpoints_for(t, "resync.dk.test").empty());
  CHECK(rejected_by_name(t)["aa-resync-newcomer"].find("the incumbent keeps it") != std::string::npos);
  it::Response held = get(berth->port(), "resync.dk.test");
  CHECK(held.status == 503);
  CHECK(held.body != "newcomer\n");

  // The incumbent starts again within its grace: the route is its own again.
  REQUIRE(docker({"start", "zz-resync-incumbent"}).ok());
  REQUIRE(wait_routes(berth->admin_port(), [&](const nlohmann::json& j) {
    return endpoints_for(j, "resync.dk.test") == std::vector<std::string>{addr(p_inc)}; }, 10s, &t));
  REQUIRE(it::wait_until([&] { return get(berth->port(), "resync.dk.test").body == "incumbent\n"; }, 10s));
  CHECK(rejected_by_name(t).count("aa-resync-newcomer") == 1);
  CHECK(berth->running());
}
