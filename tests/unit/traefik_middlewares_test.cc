// Traefik compatibility: the access and header middlewares (ipallowlist, basicauth, ratelimit,
// headers) a router names, mapped onto the container's access and header rules. No engine.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "discovery/docker_labels.h"

using namespace berth;
using namespace berth::discovery;
using Kind = ContainerSpec::Kind;

namespace {

constexpr const char* kAliceHash =
    "$6$berthlabels$C0Ei6f6mLrrfYrnRWbkMpscxY4.SDR.KbwfoDHSSmKjFyc.MTz4yzDoDHZ9jyKmpmr/CQmxpUZiHPbB.w1ThZ0";

ContainerSpec parse(std::map<std::string, std::string> labels, const std::string& files_dir = "") {
  ContainerFacts c;
  c.id = std::string(64, 't');
  c.name = "web-1";
  c.labels = std::move(labels);
  c.labels["traefik.http.routers.web.rule"] = "Host(`a.test`)";
  c.labels["traefik.http.services.web.loadbalancer.server.port"] = "80";
  c.network_mode = "host";
  c.running = true;
  LabelOptions options;
  options.traefik = true;
  options.access_files_dir = files_dir;
  return parse_container_labels(c, options);
}

}  // namespace

TEST_CASE("traefik middlewares: allow list, basic auth, rate limit and headers", "[docker][labels][traefik]") {
  ContainerSpec s = parse({{"traefik.http.routers.web.middlewares", "ips@docker,auth,limit,hdr"},
                           {"traefik.http.middlewares.ips.ipallowlist.sourcerange", "127.0.0.1/32, 10.0.0.0/8"},
                           {"traefik.http.middlewares.auth.basicauth.users", std::string("alice:") + kAliceHash},
                           {"traefik.http.middlewares.auth.basicauth.realm", "team"},
                           {"traefik.http.middlewares.limit.rateLimit.average", "20"},
                           {"traefik.http.middlewares.limit.rateLimit.burst", "40"},
                           {"traefik.http.middlewares.hdr.headers.customRequestHeaders.X-Team", "blue"},
                           {"traefik.http.middlewares.hdr.headers.customRequestHeaders.X-Drop", ""},
                           {"traefik.http.middlewares.hdr.headers.customResponseHeaders.X-Served-By", "berth"}});
  INFO(s.reason);
  REQUIRE(s.kind == Kind::kRouted);
  REQUIRE(s.access.allow.size() == 2);
  CHECK(s.access.allow[0].text == "127.0.0.1/32");
  REQUIRE(s.access.basic_auth.users.size() == 1);
  CHECK(s.access.basic_auth.users[0].first == "alice");
  CHECK(s.access.basic_auth.realm == "team");
  CHECK(s.access.basic_auth.enabled());
  CHECK(s.access.rate_limit.per_second == 20);
  CHECK(s.access.rate_limit.burst == 40);
  REQUIRE(s.request_headers.set.size() == 1);
  CHECK(s.request_headers.set[0] == std::pair<std::string, std::string>{"X-Team", "blue"});  // the label's case
  REQUIRE(s.request_headers.remove.size() == 1);
  CHECK(s.request_headers.remove[0] == "X-Drop");
  REQUIRE(s.response_headers.set.size() == 1);
  CHECK(s.response_headers.set[0].first == "X-Served-By");

  // The older ipwhitelist name, a usersfile under access_files_dir, burst's default of 1.
  s = parse({{"traefik.http.routers.web.middlewares", "w,f,l"},
             {"traefik.http.middlewares.w.ipwhitelist.sourcerange", "::1"},
             {"traefik.http.middlewares.f.basicauth.usersfile", "/srv/access/team.htpasswd"},
             {"traefik.http.middlewares.l.ratelimit.average", "5"}},
            "/srv/access");
  INFO(s.reason);
  REQUIRE(s.kind == Kind::kRouted);
  CHECK(s.access.allow.size() == 1);
  CHECK(s.access.basic_auth.htpasswd == "/srv/access/team.htpasswd");
  CHECK(s.access.rate_limit.per_second == 5);
  CHECK(s.access.rate_limit.burst == 1);

  // Defined but not named by the router: nothing.
  s = parse({{"traefik.http.middlewares.ips.ipallowlist.sourcerange", "10.0.0.0/8"}});
  REQUIRE(s.kind == Kind::kRouted);
  CHECK(s.access.empty());
}

TEST_CASE("traefik middlewares: what Berth cannot honour rejects the container with the label",
          "[docker][labels][traefik]") {
  struct Bad {
    std::map<std::string, std::string> labels;
    std::string label, reason;
  };
  std::vector<Bad> bad = {
      {{{"traefik.http.routers.web.middlewares", "m"}, {"traefik.http.middlewares.m.ipallowlist.sourcerange", "nowhere"}},
       "traefik.http.middlewares.m.ipallowlist.sourcerange", "not a numeric IPv4 or IPv6 address"},
      {{{"traefik.http.routers.web.middlewares", "m"},
        {"traefik.http.middlewares.m.basicauth.users", "bob:$apr1$abc$0123456789012345678901"}},
       "traefik.http.middlewares.m.basicauth.users", "bob"},
      {{{"traefik.http.routers.web.middlewares", "m"},
        {"traefik.http.middlewares.m.basicauth.usersfile", "/etc/shadow"}},
       "traefik.http.middlewares.m.basicauth.usersfile", "access_files_dir"},
      {{{"traefik.http.routers.web.middlewares", "m"}, {"traefik.http.middlewares.m.ratelimit.average", "10"},
        {"traefik.http.middlewares.m.ratelimit.period", "1m"}},
       "traefik.http.middlewares.m.ratelimit.period", "per second"},
      {{{"traefik.http.routers.web.middlewares", "m"},
        {"traefik.http.middlewares.m.headers.customrequestheaders.Bad Name", "x"}},
       "traefik.http.middlewares.m.headers.customrequestheaders.Bad Name", "not a valid header name"},
      {{{"traefik.http.routers.web.middlewares", "m"}, {"traefik.http.routers.two.rule", "Host(`b.test`)"},
        {"traefik.http.routers.two.middlewares", "n"}, {"traefik.http.middlewares.m.ratelimit.average", "10"},
        {"traefik.http.middlewares.n.ratelimit.average", "20"}},
       "traefik.http.routers.web.middlewares", "different ipallowlist/basicauth/ratelimit/headers"},
      {{{"traefik.http.routers.web.middlewares", "m"}, {"traefik.http.middlewares.m.ratelimit.average", "10"},
        {"berth.access.allow", "10.0.0.0/8"}},
       "traefik.http.routers.web.middlewares", "both berth.access.* labels and Traefik middlewares"},
  };
  // Headers that carry framing or that Berth sets itself, refused as in the config file.
  for (const auto& [kind, name] : {std::pair{"customrequestheaders", "Transfer-Encoding"},
                                   {"customrequestheaders", "Host"},
                                   {"customRequestHeaders", "X-Forwarded-For"},
                                   {"customresponseheaders", "Content-Length"}}) {
    const std::string label = std::string("traefik.http.middlewares.m.headers.") + kind + "." + name;
    bad.push_back({{{"traefik.http.routers.web.middlewares", "m"}, {label, "x"}}, label,
                   label + ": '" + name + "' is managed by Berth"});
  }
  for (const Bad& b : bad) {
    ContainerSpec s = parse(b.labels, "/srv/access");
    INFO(b.label << ": " << s.reason);
    CHECK(s.kind == Kind::kRejected);
    CHECK(s.reason.find(b.reason) != std::string::npos);
  }
}

TEST_CASE("traefik middlewares: encodedcharacters maps onto the container's encoded_characters",
          "[docker][labels][traefik]") {
  ContainerSpec s = parse({{"traefik.http.routers.web.middlewares", "enc@docker"},
                           {"traefik.http.middlewares.enc.encodedcharacters.allowEncodedSlash", "true"},
                           {"traefik.http.middlewares.enc.encodedCharacters.allowEncodedNullCharacter", "false"},
                           {"traefik.http.middlewares.enc.encodedcharacters.allowEncodedQuestionMark", "true"}});
  INFO(s.reason);
  REQUIRE(s.kind == Kind::kRouted);
  CHECK(s.encoded_characters.allows(config::EncodedCharacter::kSlash));
  CHECK(s.encoded_characters.allows(config::EncodedCharacter::kQuestionMark));
  CHECK_FALSE(s.encoded_characters.allows(config::EncodedCharacter::kNullCharacter));
  CHECK(s.encoded_characters.given == ((1u << 0) | (1u << 2) | (1u << 5)));

  ContainerSpec bad = parse({{"traefik.http.routers.web.middlewares", "enc"},
                             {"traefik.http.middlewares.enc.encodedcharacters.allowEncodedHash", "perhaps"}});
  CHECK(bad.kind == Kind::kRejected);
  CHECK(bad.reason.find("allowEncodedHash") != std::string::npos);

  ContainerSpec both = parse({{"traefik.http.routers.web.middlewares", "enc"},
                              {"traefik.http.middlewares.enc.encodedcharacters.allowEncodedSlash", "true"},
                              {"berth.encoded_characters.allow_encoded_percent", "true"}});
  CHECK(both.kind == Kind::kRejected);
  CHECK(both.reason.find("use one of the two") != std::string::npos);
}
