// berth.access.* labels -> the route access they ask for, the access_files_dir rule, and the
// filters the builder attaches to the container's routes. No engine.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "config_helpers.h"
#include "discovery/docker_labels.h"
#include "discovery/label_builder.h"

using namespace berth;
using namespace berth::discovery;
using Kind = ContainerSpec::Kind;

namespace {

ContainerFacts labelled(std::map<std::string, std::string> access) {
  ContainerFacts c;
  c.id = std::string(64, 'a');
  c.name = "web-1";
  c.labels = {{"berth.enable", "true"}, {"berth.host", "a.test"}, {"berth.port", "8080"}};
  for (auto& [k, v] : access) c.labels[k] = v;
  c.network_mode = "host";
  c.running = true;
  c.revision = 1;
  return c;
}

LabelOptions with_dir(const std::string& dir) {
  LabelOptions o;
  o.access_files_dir = dir;
  return o;
}

// "alice" / "opensesame", SHA-512 crypt (openssl passwd -6).
constexpr const char* kAliceLine =
    "alice:$6$berthlabels$C0Ei6f6mLrrfYrnRWbkMpscxY4.SDR.KbwfoDHSSmKjFyc.MTz4yzDoDHZ9jyKmpmr/CQmxpUZiHPbB.w1ThZ0\n";

}  // namespace

TEST_CASE("access labels: each key in its one-line form", "[docker][labels][access]") {
  ContainerSpec s = parse_container_labels(
      labelled({{"berth.access.allow", "10.0.0.0/8, 2001:db8::/32"},
                {"berth.access.deny", "10.1.2.0/24"},
                {"berth.access.methods", "get, POST,GET"},
                {"berth.access.rate_limit", "20/s burst=40 key=header:X-Api-Key table_size=1000 ipv6_prefix=48"},
                {"berth.access.basic_auth", "/srv/access/admin.htpasswd realm=admin forward_authorization=true"},
                {"berth.access.forward_auth", "http://127.0.0.1:9100/check?x=1 copy_headers=X-User,X-Email timeout=2s"}}),
      with_dir("/srv/access"));
  INFO(s.reason);
  REQUIRE(s.kind == Kind::kRouted);
  const config::RouteAccess& a = s.access;
  REQUIRE(a.allow.size() == 2);
  CHECK(a.allow[0].text == "10.0.0.0/8");
  CHECK(a.allow[1].ipv6);
  REQUIRE(a.deny.size() == 1);
  CHECK(a.deny[0].prefix == 24);
  CHECK(a.methods == std::vector<std::string>{"GET", "POST"});
  CHECK(a.rate_limit.per_second == 20);
  CHECK(a.rate_limit.burst == 40);
  CHECK(a.rate_limit.header == "X-Api-Key");
  CHECK(a.rate_limit.table_size == 1024);
  CHECK(a.rate_limit.ipv6_prefix == 48);
  CHECK(a.basic_auth.htpasswd == "/srv/access/admin.htpasswd");
  CHECK(a.basic_auth.realm == "admin");
  CHECK(a.basic_auth.forward_authorization);
  CHECK(a.forward_auth.url == "http://127.0.0.1:9100/check?x=1");
  CHECK(a.forward_auth.target == "/check?x=1");
  CHECK(a.forward_auth.copy_headers == std::vector<std::string>{"X-User", "X-Email"});
  CHECK(a.forward_auth.timeout == std::chrono::milliseconds(2000));

  // Defaults: burst = rate, key = the client address.
  s = parse_container_labels(labelled({{"berth.access.rate_limit", "5/s"}}), {});
  REQUIRE(s.kind == Kind::kRouted);
  CHECK(s.access.rate_limit.burst == 5);
  CHECK(s.access.rate_limit.header.empty());
  CHECK(s.access.rate_limit.ipv6_prefix == 64);
  s = parse_container_labels(labelled({{"berth.access.rate_limit", "5/s key=client_ip"}}), {});
  CHECK(s.kind == Kind::kRouted);
}

TEST_CASE("access labels: malformed values reject the container with the reason", "[docker][labels][access]") {
  struct Case {
    const char* label;
    const char* value;
    const char* reason_part;
  };
  const Case cases[] = {
      {"berth.access.allow", "10.0.0.0/33", "'10.0.0.0/33' is not a numeric IPv4 or IPv6 address"},
      {"berth.access.allow", "10.0.0.0/8,,::1", "expected address ranges"},
      {"berth.access.deny", "example.com", "'example.com' is not a numeric"},
      {"berth.access.methods", "GET, PO ST", "'PO ST' is not an HTTP method"},
      {"berth.access.rate_limit", "20", "expected RATE/s first"},
      {"berth.access.rate_limit", "0/s", "the rate must be"},
      {"berth.access.rate_limit", "20/s burst=0", "burst must be"},
      {"berth.access.rate_limit", "20/s key=cookie:x", "key must be client_ip or header:NAME"},
      {"berth.access.rate_limit", "20/s window=5", "unknown option 'window'"},
      {"berth.access.rate_limit", "20/s ipv6_prefix=0", "ipv6_prefix must be 1 to 128"},
      {"berth.access.rate_limit", "20/s burst", "'burst' is not an option NAME=VALUE"},
      {"berth.access.forward_auth", "https://auth.example/check", "expected an http:// URL"},
      {"berth.access.forward_auth", "http://auth.example:80/check", "names other than localhost are not resolved"},
      {"berth.access.forward_auth", "http://127.0.0.1:9100/check copy_headers=Host", "is managed by Berth"},
      {"berth.access.forward_auth", "http://127.0.0.1:9100/check timeout=soon", "timeout must be"},
      {"berth.access.basic_auth", "/srv/access/a.htpasswd realm=\"x\"", "realm must be"},
      {"berth.access.basic_auth", "", "expected an htpasswd file path"},
      {"berth.access.cors", "x", "unknown label berth.access.cors"},
  };
  for (const Case& c : cases) {
    INFO(c.label << "=" << c.value);
    ContainerSpec s = parse_container_labels(labelled({{c.label, c.value}}), with_dir("/srv/access"));
    REQUIRE(s.kind == Kind::kRejected);
    CHECK(s.label == c.label);
    INFO(s.reason);
    CHECK(s.reason.find(c.reason_part) != std::string::npos);
  }
}

TEST_CASE("access labels: files only under docker.access_files_dir", "[docker][labels][access]") {
  const auto reason = [](const std::string& dir, const std::string& value) {
    ContainerSpec s = parse_container_labels(labelled({{"berth.access.basic_auth", value}}), with_dir(dir));
    return s.kind == Kind::kRejected ? s.reason : std::string("routed");
  };
  CHECK(reason("/srv/access", "/srv/access/team/a.htpasswd") == "routed");
  CHECK(reason("/", "/etc/any.htpasswd") == "routed");
  CHECK(reason("", "/srv/access/a.htpasswd").find("labels may not name files: docker.access_files_dir is not set") !=
        std::string::npos);
  CHECK(reason("/srv/access", "/etc/shadow").find("'/etc/shadow' is not under docker.access_files_dir (/srv/access)") !=
        std::string::npos);
  CHECK(reason("/srv/access", "/srv/access-other/a").find("is not under docker.access_files_dir") != std::string::npos);
  CHECK(reason("/srv/access", "/srv/access/../../etc/shadow").find("'..' part") != std::string::npos);
  CHECK(reason("/srv/access", "/srv/access//a").find("empty") != std::string::npos);
  CHECK(reason("/srv/access", "a.htpasswd").find("not an absolute path") != std::string::npos);
}

TEST_CASE("access labels: the builder reads the file and attaches one filter chain", "[docker][builder][access]") {
  BuilderOptions options;
  options.labels.access_files_dir = "/srv/access";
  std::map<std::string, std::string> files = {{"/srv/access/ok.htpasswd", kAliceLine},
                                              {"/srv/access/md5.htpasswd", "bob:$apr1$abc$def\n"}};
  options.read_access_file = [&](const std::string& path, std::string* problem) -> std::optional<std::string> {
    auto f = files.find(path);
    if (f == files.end()) {
      *problem = "No such file or directory";
      return std::nullopt;
    }
    return f->second;
  };

  ParsedContainer p = parse_container(labelled({{"berth.access.basic_auth", "/srv/access/ok.htpasswd"},
                                                {"berth.access.allow", "10.0.0.0/8"}}),
                                      options);
  INFO(p.spec.reason);
  REQUIRE(p.spec.kind == Kind::kRouted);
  REQUIRE(p.filters != nullptr);
  CHECK_FALSE(p.filters->empty());

  ContainerCache cache;
  ContainerFacts c = labelled({{"berth.access.methods", "GET"}});
  cache[c.id] = c;
  DiscoveredSet set = build_discovered_set(cache, options);
  REQUIRE(set.routes->size() == 1);
  CHECK((*set.routes)[0].filters != nullptr);
  // Without access labels, no chain.
  cache[c.id] = labelled({});
  set = build_discovered_set(cache, options);
  REQUIRE(set.routes->size() == 1);
  CHECK((*set.routes)[0].filters == nullptr);

  p = parse_container(labelled({{"berth.access.basic_auth", "/srv/access/missing.htpasswd"}}), options);
  CHECK(p.spec.kind == Kind::kRejected);
  CHECK(p.spec.reason == "berth.access.basic_auth: cannot read '/srv/access/missing.htpasswd': No such file or directory");
  p = parse_container(labelled({{"berth.access.basic_auth", "/srv/access/md5.htpasswd"}}), options);
  CHECK(p.spec.kind == Kind::kRejected);
  CHECK(p.spec.reason.find("berth.access.basic_auth: /srv/access/md5.htpasswd:1") != std::string::npos);
}

TEST_CASE("access labels: a symbolic link out of the directory is refused", "[docker][access]") {
  char dir_template[] = "/tmp/berth-access-XXXXXX";
  REQUIRE(mkdtemp(dir_template) != nullptr);
  const std::string dir = dir_template;
  const std::string inside = dir + "/ok.htpasswd", link = dir + "/escape.htpasswd";
  char outside_template[] = "/tmp/berth-outside-XXXXXX";
  const int fd = mkstemp(outside_template);
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    FILE* f = std::fopen(inside.c_str(), "w");
    REQUIRE(f);
    std::fputs("alice:x\n", f);
    std::fclose(f);
  }
  REQUIRE(::symlink(outside_template, link.c_str()) == 0);
  std::string problem;
  CHECK(read_file_under(dir, inside, &problem) == std::optional<std::string>("alice:x\n"));
  CHECK_FALSE(read_file_under(dir, link, &problem).has_value());
  CHECK(problem.find("outside docker.access_files_dir") != std::string::npos);
  CHECK_FALSE(read_file_under(dir, dir + "/none", &problem).has_value());
  ::unlink(link.c_str());
  ::unlink(inside.c_str());
  ::unlink(outside_template);
  ::rmdir(dir.c_str());
}

TEST_CASE("config: docker.access_files_dir", "[config][access]") {
  using berth::config::testing::all_errors;
  using berth::config::testing::load;
  auto ok = load("listeners: [\"127.0.0.1:0\"]\ndocker: {enabled: true, access_files_dir: /srv/access/}\n");
  INFO(all_errors(ok));
  REQUIRE(ok.ok());
  CHECK(ok.config->docker.access_files_dir == "/srv/access");
  auto none = load("listeners: [\"127.0.0.1:0\"]\ndocker: {enabled: true}\n");
  REQUIRE(none.ok());
  CHECK(none.config->docker.access_files_dir.empty());
  for (const char* bad : {"relative/dir", "/srv/../etc", "/srv/./x"}) {
    auto r = load(std::string("listeners: [\"127.0.0.1:0\"]\ndocker:\n  enabled: true\n  access_files_dir: ") + bad + "\n");
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(all_errors(r).find("t.yaml:4:21: docker.access_files_dir: expected an absolute directory path") !=
          std::string::npos);
  }
}
