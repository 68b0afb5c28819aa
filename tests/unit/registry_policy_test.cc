// A container's route policy through the registry: the sidecar publishes the facts its labels
// are made of, the front door rebuilds its routes from them with Docker discovery's label code
// (filters, redirects, encodings), under its own operator policy; labels that do not parse
// refuse the key instead of routing it without its policy. And the watch stream reader that
// skips a line over its cap. No etcd, no engine.
#include <catch2/catch.hpp>

#include <functional>
#include <map>
#include <string>

#include "discovery/label_builder.h"
#include "discovery/registry/etcd_client.h"
#include "discovery/registry/registry_codec.h"
#include "discovery/registry/registry_table.h"

using namespace berth;
using namespace berth::discovery;
using namespace berth::discovery::registry;

namespace {

const std::string kRoot = "/berth/v1/instances/";
const std::string kHtpasswdPath = "/srv/access/team.htpasswd";
// "alice" / "opensesame", SHA-512 crypt (openssl passwd -6).
const std::string kAliceLine =
    "alice:$6$berthlabels$C0Ei6f6mLrrfYrnRWbkMpscxY4.SDR.KbwfoDHSSmKjFyc.MTz4yzDoDHZ9jyKmpmr/CQmxpUZiHPbB.w1ThZ0\n";

// A running container on network "net" with these labels over the usual berth.* ones.
ContainerFacts container(const std::string& name, char id, std::map<std::string, std::string> labels) {
  ContainerFacts c;
  c.id = std::string(64, id);
  c.name = name;
  c.labels = {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "8080"},
              {"com.docker.compose.project", "shop"}, {"com.docker.compose.service", "web"},
              {"org.opencontainers.image.title", "not route policy"}};
  for (auto& [k, v] : labels) c.labels[k] = v;
  c.env = {"SECRET=hunter2", "VIRTUAL_HOST=ignored.test"};
  c.network_mode = "net";
  c.networks = {ContainerNetwork{"net", "172.18.0.5", ""}};
  c.running = true;
  c.revision = 1;
  return c;
}

// The sidecar's Docker discovery options: htpasswd files under /srv/access, read from a map.
BuilderOptions sidecar_options() {
  BuilderOptions o;
  o.network = "net";
  o.labels.access_files_dir = "/srv/access";
  o.publish_policies = true;
  o.read_access_file = [](const std::string& path, std::string* problem) -> std::optional<std::string> {
    if (path == kHtpasswdPath) return kAliceLine;
    *problem = "No such file or directory";
    return std::nullopt;
  };
  return o;
}

// What a sidecar on host-1 publishes for these containers.
std::map<std::string, std::string> published(const std::vector<ContainerFacts>& containers) {
  ContainerCache cache;
  for (const ContainerFacts& c : containers) cache[c.id] = c;
  DiscoveredSet set = build_discovered_set(cache, sidecar_options());
  return publication_from_set(set, "/berth/v1", "host-1", "10.0.0.12").kvs;
}

std::map<std::string, std::string> rejections(const DiscoveredSet& set) {
  return {set.rejected.begin(), set.rejected.end()};
}

}  // namespace

TEST_CASE("registry policy: the value's policy round trips; a value without one decodes as before",
          "[registry]") {
  auto policy = std::make_shared<PublishedPolicy>();
  policy->labels = {{"berth.host", "a.test"}, {"berth.access.basic_auth", kHtpasswdPath}};
  policy->env = {{"VIRTUAL_HOST", "v.test"}};
  policy->exposed_ports = {80, 8080};
  policy->files = {{kHtpasswdPath, kAliceLine}};
  policy->traefik = true;
  policy->access_files_dir = "/srv/access";
  Instance in;
  in.service = "web";
  in.routes = {RegistryRoute{{"a.test"}, "/", 0}};
  in.address = "10.0.0.12:8080";
  in.policy = policy;
  std::string problem;
  auto out = decode_instance(encode_instance(in), &problem);
  INFO(problem);
  REQUIRE(out);
  REQUIRE(out->policy);
  CHECK(*out->policy == *policy);

  // A value of an older sidecar: no policy, its routes as listed.
  out = decode_instance(R"({"service":"web","routes":[{"hosts":["a.test"]}],"address":"10.0.0.1:80"})", &problem);
  REQUIRE(out);
  CHECK_FALSE(out->policy);
  CHECK(out->routes == std::vector<RegistryRoute>{RegistryRoute{{"a.test"}, "/", 0}});

  const std::vector<std::string> malformed = {
      R"("policy":[])",
      R"("policy":{})",
      R"("policy":{"labels":{"berth.host":1}})",
      R"("policy":{"labels":{},"exposed_ports":[0]})",
      R"("policy":{"labels":{},"files":{"/x":false}})",
      R"("policy":{"labels":{},"traefik":"yes"})",
  };
  for (const std::string& field : malformed) {
    INFO(field);
    CHECK_FALSE(decode_instance(R"({"service":"web","routes":[{}],"address":"10.0.0.1:80",)" + field + "}", &problem));
    CHECK(problem.find("'policy'") != std::string::npos);
  }
}

TEST_CASE("registry policy: a sidecar publishes the route-relevant labels and the files they name", "[registry]") {
  auto kvs = published({container("web-1", 'a', {{"berth.access.basic_auth", kHtpasswdPath}})});
  REQUIRE(kvs.size() == 1);
  std::string problem;
  auto instance = decode_instance(kvs.begin()->second, &problem);
  INFO(problem);
  REQUIRE(instance);
  REQUIRE(instance->policy);
  const PublishedPolicy& p = *instance->policy;
  CHECK(p.labels.count("berth.access.basic_auth"));
  CHECK(p.labels.count("com.docker.compose.project"));  // the default service name is made of it
  CHECK_FALSE(p.labels.count("org.opencontainers.image.title"));
  CHECK(p.env.empty());  // not in nginx-proxy mode: no environment at all
  CHECK(p.files == std::map<std::string, std::string>{{kHtpasswdPath, kAliceLine}});
  CHECK(p.access_files_dir == "/srv/access");
}

TEST_CASE("registry policy: a value over 1 MiB is not published, the other containers' are", "[registry]") {
  ContainerCache cache;
  for (const ContainerFacts& c : {container("web-1", 'a', {{"traefik.note", std::string(kMaxValueBytes, 'x')}}),
                                  container("api-1", 'b', {{"berth.host", "api.test"}, {"berth.service", "api"}})})
    cache[c.id] = c;
  Publication publication =
      publication_from_set(build_discovered_set(cache, sidecar_options()), "/berth/v1", "host-1", "10.0.0.12");
  CHECK(publication.too_large == std::vector<std::string>{kRoot + "host-1/aaaaaaaaaaaa/0"});
  REQUIRE(publication.kvs.size() == 1);
  CHECK(publication.kvs.begin()->first == kRoot + "host-1/bbbbbbbbbbbb/0");
}

TEST_CASE("registry policy: containers of one service with more routes than one value may list are routed", "[registry]") {
  // Two containers of one service, 600 paths each: the service has 1201 routes, more than a value
  // lists (kMaxListItems). A front door routes each container's own labels; the list, for front
  // doors without policies, holds the first 1000.
  std::vector<ContainerFacts> containers;
  for (char id : {'a', 'b'}) {
    std::map<std::string, std::string> labels;
    for (int i = 0; i < 600; ++i) {
      const std::string route = std::string("berth.routes.r") + std::to_string(i);
      labels[route + ".path"] = std::string("/") + id + std::to_string(i);
      labels[route + ".service"] = "shop-web";
    }
    labels["berth.port"] = id == 'a' ? "8080" : "8081";  // one address each, as published
    containers.push_back(container(std::string("web-") + id, id, labels));
  }
  auto kvs = published(containers);
  REQUIRE(kvs.size() == 2);
  for (const auto& [key, value] : kvs) {
    std::string problem;
    auto instance = decode_instance(value, &problem);
    INFO(problem);
    REQUIRE(instance);
    CHECK(instance->routes.size() == kMaxListItems);
    CHECK(front_door_problem(key, value, "/berth/v1").empty());
  }
  DiscoveredSet set = build_registry_set(kvs, "/berth/v1", TablePolicy{});
  CHECK(set.rejected.empty());
  REQUIRE(set.services.size() == 1);
  CHECK(set.services[0]->endpoints.size() == 2);
  CHECK(set.routes->size() == 1201);
}

TEST_CASE("registry policy: the front door routes a published container with its labels' policy", "[registry]") {
  auto kvs = published({container("web-1", 'a',
                                  {{"berth.access.basic_auth", kHtpasswdPath},
                                   {"berth.tls.redirect", "true"},
                                   {"berth.encoded_characters.allow_encoded_slash", "true"}}),
                        container("plain-1", 'b', {{"berth.host", "plain.test"}, {"berth.service", "plain"}})});
  DiscoveredSet set = build_registry_set(kvs, "/berth/v1", TablePolicy{});
  INFO(set.rejected.size());
  CHECK(set.rejected.empty());
  REQUIRE(set.services.size() == 2);
  REQUIRE(set.routes->size() == 2);
  const Route* web = nullptr;
  const Route* plain = nullptr;
  for (const Route& r : *set.routes) (r.host == "a.test" ? web : plain) = &r;
  REQUIRE(web);
  REQUIRE(plain);
  CHECK(set.services[web->service]->name == "shop-web");
  REQUIRE(set.services[web->service]->endpoints.size() == 1);
  CHECK(set.services[web->service]->endpoints[0].key == "10.0.0.12:8080");  // the published address
  REQUIRE(web->filters);
  CHECK_FALSE(web->filters->empty());
  CHECK(web->https_redirect);
  CHECK(web->allow_encodings != 0);
  CHECK(plain->host == "plain.test");
  CHECK_FALSE(plain->filters);
  CHECK_FALSE(plain->https_redirect);
}

TEST_CASE("registry policy: berth.tls.acme asks a front door for the certificate, not another host's sidecar",
          "[registry]") {
  auto kvs = published({container("web-1", 'a', {{"berth.tls.acme", "true"}})});
  DiscoveredSet front = build_registry_set(kvs, "/berth/v1", TablePolicy{});
  REQUIRE(front.routes->size() == 1);
  CHECK((*front.routes)[0].acme);
  TablePolicy sidecar;
  sidecar.local_host_id = "host-2";
  DiscoveredSet east_west = build_registry_set(kvs, "/berth/v1", sidecar);
  REQUIRE(east_west.routes->size() == 1);
  CHECK_FALSE((*east_west.routes)[0].acme);
  CHECK(east_west.services[0]->endpoints[0].remote);
}

TEST_CASE("registry policy: labels that do not make the route refuse the key, never route it bare", "[registry]") {
  auto good = published({container("web-1", 'a', {{"berth.access.basic_auth", kHtpasswdPath}})});
  REQUIRE(good.size() == 1);
  const std::string key = good.begin()->first;
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = nlohmann::json::parse(good.begin()->second);
    edit(j);
    return std::map<std::string, std::string>{{key, j.dump()}};
  };
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
      {with([](nlohmann::json& j) { j["policy"]["labels"]["berth.port"] = "eighty"; }),
       "its published labels: berth.port=\"eighty\" is not a port number"},
      {with([](nlohmann::json& j) { j["policy"]["files"] = nlohmann::json::object(); }),
       "cannot read '/srv/access/team.htpasswd': not published with the instance"},
      {with([](nlohmann::json& j) { j["policy"]["files"][kHtpasswdPath] = "alice:plaintext\n"; }),
       "its published labels: berth.access.basic_auth"},
      {with([](nlohmann::json& j) { j["policy"]["labels"]["berth.service"] = "other"; }),
       "declare no route for service shop-web"},
      {with([](nlohmann::json& j) { j["policy"]["labels"]["berth.enable"] = "false"; }),
       "its published labels route nothing: berth.enable is false"},
      // An earlier sidecar published a container whose traefik.enable Traefik cannot read.
      {with([](nlohmann::json& j) {
         j["policy"]["traefik"] = true;
         j["policy"]["labels"] = {{"traefik.enable", "tRuE"},
                                  {"traefik.http.routers.web.rule", "Host(`a.test`)"},
                                  {"traefik.http.services.web.loadbalancer.server.port", "8080"}};
       }),
       "its published labels route nothing: traefik.enable=\"tRuE\" is not true as Traefik reads it"},
      {with([](nlohmann::json& j) { j["policy"]["labels"]["berth.access.allow"] = "not-a-cidr"; }),
       "its published labels: berth.access.allow"},
  };
  for (const auto& [kvs, reason] : cases) {
    DiscoveredSet set = build_registry_set(kvs, "/berth/v1", TablePolicy{});
    INFO(kvs.begin()->second);
    CHECK(set.services.empty());
    CHECK(set.routes->empty());
    auto rejected = rejections(set);
    REQUIRE(rejected.size() == 1);
    INFO(rejected.begin()->second);
    CHECK(rejected.begin()->second.find(reason) != std::string::npos);
  }
}

TEST_CASE("registry policy: the front door's operator policy applies to the rebuilt routes", "[registry]") {
  auto kvs = published({container("web-1", 'a', {{"berth.host", "bank.test"}, {"berth.priority", "5"}})});
  TablePolicy policy;
  policy.allowed_hosts = {"*.apps.test"};
  DiscoveredSet set = build_registry_set(kvs, "/berth/v1", policy);
  CHECK(set.services.empty());
  auto rejected = rejections(set);
  REQUIRE(rejected.size() == 1);
  CHECK(rejected.begin()->second == "refused by policy: host bank.test is not under docker.allowed_hosts");
  policy.allowed_hosts.clear();
  policy.max_priority = 0;
  rejected = rejections(build_registry_set(kvs, "/berth/v1", policy));
  REQUIRE(rejected.size() == 1);
  CHECK(rejected.begin()->second.find("priority 5 is above docker.max_priority") != std::string::npos);
}

TEST_CASE("registry policy: a key whose value changes but not its policy keeps its filters", "[registry]") {
  auto kvs = published({container("web-1", 'a', {{"berth.access.basic_auth", kHtpasswdPath}})});
  const std::string key = kvs.begin()->first;
  RegistryTable table("/berth/v1", TablePolicy{});
  table.reset(kvs);
  auto first = table.next();
  REQUIRE(first->routes->size() == 1);
  auto filters = (*first->routes)[0].filters;
  REQUIRE(filters);
  nlohmann::json j = nlohmann::json::parse(kvs.begin()->second);
  j["weight"] = 7;
  REQUIRE(table.put(key, j.dump()));
  auto second = table.next();
  REQUIRE(second);
  CHECK(second->services[0]->endpoints[0].weight == 7);
  CHECK(second->routes == first->routes);  // the same route list object: nothing to rebuild
  // Its labels change: a new parse, new filters.
  j["policy"]["labels"]["berth.access.allow"] = "10.0.0.0/8";
  REQUIRE(table.put(key, j.dump()));
  auto third = table.next();
  REQUIRE(third);
  REQUIRE(third->routes->size() == 1);
  CHECK((*third->routes)[0].filters != filters);
}

TEST_CASE("registry policy: a watch line over the cap is skipped, the lines around it read", "[registry]") {
  LineSplitter splitter(64, /*skip_long=*/true);
  std::vector<std::string> results;
  auto on_result = [&](const nlohmann::json& r) {
    results.push_back(r.value("n", std::string()));
    return true;
  };
  bool skipped = false;
  std::string end = read_watch_bytes(splitter, "{\"result\":{\"n\":\"1\"}}\n{\"result\":{\"n\":\"", on_result, &skipped);
  CHECK(end.empty());
  CHECK_FALSE(skipped);
  end = read_watch_bytes(splitter, std::string(100, 'x') + "\"}}\n{\"result\":{\"n\":\"3\"}}\n", on_result, &skipped);
  CHECK(end.empty());  // the watch goes on
  CHECK(skipped);      // and its owner learns a line was lost
  CHECK(results == std::vector<std::string>{"1", "3"});
  end = read_watch_bytes(splitter, "{\"result\":{\"n\":\"4\"}}\n", on_result, &skipped);
  CHECK_FALSE(skipped);
  CHECK(results.size() == 3);

  CHECK(read_watch_bytes(splitter, "not json\n", on_result, &skipped) == "watch sent a line that is not JSON");
  CHECK(read_watch_bytes(splitter, "{\"error\":{\"message\":\"etcdserver: no leader\"}}\n", on_result, &skipped) ==
        "watch error: etcdserver: no leader");
  // A watch gone meanwhile: the lines after are not handed on.
  results.clear();
  read_watch_bytes(splitter, "{\"result\":{\"n\":\"5\"}}\n{\"result\":{\"n\":\"6\"}}\n",
                   [&](const nlohmann::json& r) {
                     results.push_back(r.value("n", std::string()));
                     return false;
                   },
                   &skipped);
  CHECK(results == std::vector<std::string>{"5"});
}
