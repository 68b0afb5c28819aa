// Docker API plumbing without an engine: the /events byte stream (HTTP chunking + newline-
// delimited JSON, split at every possible byte), event decoding, inspect parsing, endpoints,
// TLS settings.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.h"
#include "discovery/container_facts.h"
#include "discovery/docker_endpoint.h"
#include "discovery/docker_event.h"
#include "discovery/http_response_parser.h"
#include "discovery/line_splitter.h"
#include "discovery/self_container.h"
#include "discovery/tls_layer.h"

using namespace berth::discovery;

namespace {

const std::string kEvent1 =
    R"({"status":"create","id":"8f9f8e85a1b53d9432bfdba839101ae83a51a410e698287fd6d24db1e231d6aa","from":"bb:local","Type":"container","Action":"create","Actor":{"ID":"8f9f8e85a1b53d9432bfdba839101ae83a51a410e698287fd6d24db1e231d6aa","Attributes":{"app":"web","image":"bb:local","name":"probe-ev","probe":"1","router.port":"18010"}},"scope":"local","time":1795797754,"timeNano":1795797754789079218})";
const std::string kEvent2 =
    R"({"status":"health_status: healthy","Type":"container","Action":"health_status: healthy","Actor":{"ID":"8f9f","Attributes":{"name":"probe-ev"}},"scope":"local","time":1795797755,"timeNano":1795797755930984941})";
const std::string kEvent3 =
    R"({"Type":"container","Action":"kill","Actor":{"ID":"8f9f","Attributes":{"name":"probe-ev2","signal":"15"}},"scope":"local","time":1795797783,"timeNano":1795797783297739674})";

std::string hex(size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%zx", n);
  return buf;
}

// The /events response as the engine sends it: one chunk per event, ended by a bare EOF.
std::string events_response(const std::vector<std::string>& events) {
  std::string wire =
      "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\n"
      "Date: Fri, 27 Nov 2026 16:41:43 GMT\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (const std::string& e : events) wire += hex(e.size() + 1) + "\r\n" + e + "\n\r\n";
  return wire;
}

// Feeds `wire` split at the given points and returns the lines that came out.
std::vector<std::string> lines_from(const std::string& wire, const std::vector<size_t>& cuts, int* status) {
  std::vector<std::string> lines;
  LineSplitter splitter;
  HttpResponseParser parser({[&](const ResponseHead& h) { *status = h.status; },
                             [&](std::string_view body) {
                               splitter.feed(body, [&](std::string_view l) { lines.emplace_back(l); });
                             },
                             nullptr});
  size_t from = 0;
  for (size_t cut : cuts) {
    REQUIRE(parser.feed(std::string_view(wire).substr(from, cut - from)));
    from = cut;
  }
  REQUIRE(parser.feed(std::string_view(wire).substr(from)));
  return lines;
}

}  // namespace

TEST_CASE("docker stream: every single split point of a chunked event stream", "[docker][stream]") {
  const std::vector<std::string> events = {kEvent1, kEvent2, kEvent3};
  const std::string wire = events_response(events);
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    int status = 0;
    auto lines = lines_from(wire, {cut}, &status);
    INFO("split at byte " << cut);
    CHECK(status == 200);
    REQUIRE(lines == events);
  }
}

TEST_CASE("docker stream: byte by byte, and pairs of split points", "[docker][stream]") {
  const std::vector<std::string> events = {kEvent2, kEvent3, kEvent1, kEvent2};
  const std::string wire = events_response(events);
  std::vector<size_t> every;
  for (size_t i = 1; i < wire.size(); ++i) every.push_back(i);
  int status = 0;
  CHECK(lines_from(wire, every, &status) == events);
  for (size_t a = 150; a < wire.size(); a += 37) {
    for (size_t b = a + 1; b < wire.size(); b += 53) {
      auto lines = lines_from(wire, {a, b}, &status);
      INFO("splits at " << a << " and " << b);
      REQUIRE(lines == events);
    }
  }
}

TEST_CASE("docker stream: one JSON object spread over several chunks, several in one chunk", "[docker][stream]") {
  // Chunk boundaries need not match event boundaries.
  const std::string body = kEvent1 + "\n" + kEvent2 + "\n" + kEvent3 + "\n";
  std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (size_t at = 0; at < body.size(); at += 100) {
    std::string piece = body.substr(at, 100);
    wire += hex(piece.size()) + "\r\n" + piece + "\r\n";
  }
  int status = 0;
  auto lines = lines_from(wire, {7, 60, 61, 400, 401, 402}, &status);
  CHECK(lines == std::vector<std::string>{kEvent1, kEvent2, kEvent3});
}

TEST_CASE("docker stream: a 120 KB event arriving in two reads", "[docker][stream]") {
  std::string big = R"({"Type":"container","Action":"create","Actor":{"ID":"x","Attributes":{"big":")" +
                    std::string(120'000, 'a') + R"("}},"timeNano":1795798451344595692})";
  const std::string wire = events_response({big, kEvent3});
  int status = 0;
  auto lines = lines_from(wire, {65536}, &status);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == big);
  auto e = parse_event(lines[0], nullptr);
  REQUIRE(e);
  CHECK(e->attribute("big").size() == 120'000);
}

TEST_CASE("docker stream: a bare EOF ends the stream unfinished, a full response completes", "[docker][stream]") {
  HttpResponseParser stream({nullptr, nullptr, nullptr});
  REQUIRE(stream.feed(events_response({kEvent1})));
  CHECK_FALSE(stream.complete());
  CHECK_FALSE(stream.finish());
  CHECK_FALSE(stream.error().empty());

  std::string body;
  bool completed = false;
  HttpResponseParser full({nullptr, [&](std::string_view b) { body.append(b); }, [&] { completed = true; }});
  const std::string message = "{\"message\":\"No such container: nonexistent\"}";
  REQUIRE(full.feed("HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(message.size()) + "\r\n\r\n" + message));
  CHECK(completed);
  CHECK(body == "{\"message\":\"No such container: nonexistent\"}");

  HttpResponseParser garbage({nullptr, nullptr, nullptr});
  CHECK_FALSE(garbage.feed("SSH-2.0-OpenSSH\r\n"));
  CHECK_FALSE(garbage.error().empty());
}

TEST_CASE("docker stream: LineSplitter keeps partial lines and caps their size", "[docker][stream]") {
  LineSplitter s(10);
  std::vector<std::string> out;
  auto sink = [&](std::string_view l) { out.emplace_back(l); };
  CHECK(s.feed("ab", sink));
  CHECK(s.feed("c\r\n\nde", sink));
  CHECK(out == std::vector<std::string>{"abc"});
  CHECK(s.pending() == 2);
  CHECK_FALSE(s.feed("0123456789", sink));
  CHECK(s.skipped() == 1);
}

TEST_CASE("docker stream: a line too long is skipped, and the lines after it go on", "[docker][stream]") {
  // Reconnecting from `since` would replay such an event for ever: it is dropped instead. Lines
  // arrive over several reads (as a 16 MiB event does); one read's whole line is never partial.
  const std::string stream = "one\n" + std::string(25, 'x') + "\ntwo\n" + std::string(11, 'y') + "\nthree\n";
  for (size_t piece = 1; piece <= 4; ++piece) {
    INFO("reads of " << piece << " bytes");
    LineSplitter s(10, /*skip_long=*/true);
    std::vector<std::string> out;
    auto sink = [&](std::string_view l) { out.emplace_back(l); };
    for (size_t at = 0; at < stream.size(); at += piece) CHECK(s.feed(std::string_view(stream).substr(at, piece), sink));
    CHECK(out == std::vector<std::string>{"one", "two", "three"});
    CHECK(s.skipped() == 2);
    CHECK(s.pending() == 0);
  }
}

TEST_CASE("docker events: decoding", "[docker][events]") {
  auto e = parse_event(kEvent1, nullptr);
  REQUIRE(e);
  CHECK(e->type == "container");
  CHECK(e->action == "create");
  CHECK(e->detail.empty());
  CHECK(e->id == "8f9f8e85a1b53d9432bfdba839101ae83a51a410e698287fd6d24db1e231d6aa");
  CHECK(e->attribute("name") == "probe-ev");
  CHECK(e->attribute("router.port") == "18010");
  // int64 beyond 2^53: a double would round this.
  CHECK(e->time_nano == 1795797754789079218LL);

  auto h = parse_event(kEvent2, nullptr);
  REQUIRE(h);
  CHECK(h->action == "health_status");
  CHECK(h->detail == "healthy");

  auto exec = parse_event(
      R"({"Type":"container","Action":"exec_start: /bin/sh -c wget -q -O- http://127.0.0.1:18010/ || exit 1","Actor":{"ID":"x"},"timeNano":5})",
      nullptr);
  REQUIRE(exec);
  CHECK(exec->action == "exec_start");

  auto k = parse_event(kEvent3, nullptr);
  REQUIRE(k);
  CHECK(k->attribute("signal") == "15");
  CHECK(k->key() != h->key());

  std::string error;
  CHECK_FALSE(parse_event("{not json", &error));
  CHECK_FALSE(error.empty());
  CHECK_FALSE(parse_event("[1,2]", &error));
  CHECK_FALSE(parse_event(R"({"Type":"container"})", &error));
}

TEST_CASE("docker events: since is seconds.nanoseconds", "[docker][events]") {
  CHECK(format_since(1795798504051704943LL) == "1795798504.051704943");
  CHECK(format_since(1'000'000'000) == "1.000000000");
  CHECK(format_since(0) == "0.000000000");
}

TEST_CASE("docker inspect: host network with a healthcheck", "[docker][inspect]") {
  auto j = nlohmann::json::parse(R"({
    "Id": "bf7157eb35e5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "Name": "/probe-host",
    "Created": "2026-11-27T16:44:47.000000001Z",
    "State": {"Status":"running","Running":true,"Paused":false,"StartedAt":"2026-11-27T16:44:48.192501272Z",
              "Health":{"Status":"starting","FailingStreak":0,"Log":[]}},
    "Config": {"Labels": {"berth.port": "18030", "app": "web"}, "Env": ["PATH=/bin", "VIRTUAL_HOST=a.test"],
               "StopSignal": "SIGQUIT", "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
               "Healthcheck": {"Test":["CMD-SHELL","wget -q -O- http://127.0.0.1:18030/ || exit 1"],"Interval":1000000000}},
    "HostConfig": {"NetworkMode": "host", "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18090"}]}},
    "NetworkSettings": {"Ports": {}, "Networks": {"host": {"IPAddress": "", "GlobalIPv6Address": ""}}}
  })");
  std::string error;
  auto c = parse_inspect(j, &error);
  INFO(error);
  REQUIRE(c);
  CHECK(c->name == "probe-host");
  CHECK(c->display() == "bf7157eb35e5/probe-host");
  CHECK(c->labels.at("berth.port") == "18030");
  CHECK(c->env_value("VIRTUAL_HOST") == "a.test");
  CHECK(c->env_value("PATH") == "/bin");
  CHECK(c->env_value("PAT").empty());
  CHECK(c->network_mode == "host");
  CHECK(c->exposed_ports == std::vector<uint16_t>{80});
  CHECK(c->published.empty());
  CHECK(c->has_healthcheck);
  CHECK(c->stop_signal == 3);
  CHECK(c->running);
  CHECK(c->health == "starting");
  CHECK(c->started_at_ns == 1795797888192501272LL);
  CHECK(c->created_at_ns == parse_docker_time("2026-11-27T16:44:47.000000001Z"));
  CHECK(c->created_at_ns != 0);
  CHECK_FALSE(is_routable(*c));
  c->health = "healthy";
  CHECK(is_routable(*c));
}

TEST_CASE("docker inspect: bridge network, published ports, no healthcheck", "[docker][inspect]") {
  auto j = nlohmann::json::parse(R"({
    "Id": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "Name": "/bridged",
    "State": {"Running":true,"Paused":false,"StartedAt":"0001-01-01T00:00:00Z"},
    "Config": {"Labels": null, "Healthcheck": {"Test": ["NONE"]}, "StopSignal": null,
               "ExposedPorts": {"80/tcp": {}, "81/tcp": {}}},
    "HostConfig": {"NetworkMode": "default"},
    "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18031"}], "81/tcp": null},
      "Networks": {"bridge": {"IPAddress": "172.17.0.2", "GlobalIPv6Address": "fd00::2"}}}
  })");
  auto c = parse_inspect(j, nullptr);
  REQUIRE(c);
  CHECK_FALSE(c->has_healthcheck);
  CHECK(c->stop_signal == 15);
  CHECK(c->started_at_ns == 0);
  CHECK(c->exposed_ports == std::vector<uint16_t>{80, 81});
  REQUIRE(c->published.count(80));
  CHECK(c->published.at(80)[0].host_port == 18031);
  CHECK(c->published.count(81) == 0);
  REQUIRE(c->networks.size() == 1);
  CHECK(c->networks[0].ipv4 == "172.17.0.2");
  CHECK(c->networks[0].ipv6 == "fd00::2");
  CHECK(is_routable(*c));
  CHECK_FALSE(parse_inspect(nlohmann::json::parse("{}"), nullptr));
}

TEST_CASE("docker inspect: stop signal names and numbers", "[docker][inspect]") {
  CHECK(parse_signal("SIGTERM") == 15);
  CHECK(parse_signal("TERM") == 15);
  CHECK(parse_signal("sigquit") == 3);
  CHECK(parse_signal("9") == 9);
  CHECK(parse_signal("SIGKILL") == 9);
  CHECK(parse_signal("SIGUSR1") == 10);
  CHECK(parse_signal("SIGRTMIN+3") == 37);
  CHECK_FALSE(parse_signal("SIGBOGUS"));
  CHECK_FALSE(parse_signal("0"));
  CHECK_FALSE(parse_signal(""));
}

TEST_CASE("docker inspect: RFC 3339 times", "[docker][inspect]") {
  CHECK(parse_docker_time("1970-01-01T00:00:01Z") == 1'000'000'000);
  CHECK(parse_docker_time("2026-11-27T16:44:48.192501272Z") == 1795797888192501272LL);
  CHECK(parse_docker_time("2026-11-27T17:44:48.5+01:00") == 1795797888500000000LL);
  CHECK(parse_docker_time("0001-01-01T00:00:00Z") == 0);
  CHECK(parse_docker_time("garbage") == 0);
}

TEST_CASE("docker endpoint: unix and tcp", "[docker][endpoint]") {
  auto u = parse_docker_endpoint("unix:///var/run/docker.sock", nullptr);
  REQUIRE(u);
  CHECK(u->kind == DockerEndpoint::Kind::kUnix);
  CHECK(u->path == "/var/run/docker.sock");
  CHECK(u->to_string() == "unix:///var/run/docker.sock");
  auto t = parse_docker_endpoint("tcp://10.1.2.3:2376", nullptr);
  REQUIRE(t);
  CHECK(t->kind == DockerEndpoint::Kind::kTcp);
  CHECK(t->host == "10.1.2.3");
  CHECK(t->port == 2376);
  auto v6 = parse_docker_endpoint("tcp://[::1]:2375", nullptr);
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->to_string() == "tcp://[::1]:2375");
  std::string error;
  for (const char* bad : {"unix://relative", "tcp://host", "tcp://:2375", "tcp://h:0", "http://x:1", "npipe:////./pipe/x"}) {
    INFO(bad);
    CHECK_FALSE(parse_docker_endpoint(bad, &error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("docker tls: unreadable files are reported, not thrown", "[docker][tls]") {
  std::string error;
  berth::config::DockerTls files;
  files.ca = "/nonexistent/ca.pem";
  CHECK_FALSE(TlsContext::create(files, &error));
  CHECK(error.find("docker.tls.ca") != std::string::npos);
  files.ca.clear();
  files.cert = "/nonexistent/cert.pem";
  files.key = "/nonexistent/key.pem";
  error.clear();
  CHECK_FALSE(TlsContext::create(files, &error));
  CHECK(error.find("docker.tls.cert") != std::string::npos);
  // No files: the system CAs, no client certificate.
  CHECK(TlsContext::create(berth::config::DockerTls{}, &error));
}

TEST_CASE("docker self detection: container ids in cgroup and mountinfo lines", "[docker][self]") {
  const std::string id(64, 'a');
  CHECK(container_id_in("12:pids:/docker/" + id + "\n") == id);
  CHECK(container_id_in("0::/system.slice/docker-" + id + ".scope\n") == id);
  CHECK(container_id_in("1234 1 0:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw") == id);
  CHECK(container_id_in("12:pids:/user.slice/user-0.slice\n").empty());
  CHECK(container_id_in("0::/docker/abc\n").empty());
}

TEST_CASE("docker stream: interim responses are skipped; a malformed head is refused", "[docker][stream]") {
  int status = 0;
  std::string body;
  bool completed = false;
  HttpResponseParser p({[&](const ResponseHead& h) { status = h.status; }, [&](std::string_view b) { body.append(b); },
                        [&] { completed = true; }});
  REQUIRE(p.feed("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"));
  CHECK(status == 201);
  CHECK(body == "ok");
  CHECK(completed);

  // Two framings at once: where the body ends would be ambiguous.
  HttpResponseParser both({nullptr, nullptr, nullptr});
  CHECK_FALSE(both.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"));
  CHECK(both.error().find("bad HTTP response") != std::string::npos);

  HttpResponseParser huge({nullptr, nullptr, nullptr});
  bool ok = huge.feed("HTTP/1.1 200 OK\r\n");
  for (int i = 0; ok && i < 2000; ++i) ok = huge.feed("X-Filler: " + std::string(64, 'a') + "\r\n");
  CHECK_FALSE(ok);

  // A close-delimited body ends with the connection.
  std::string streamed;
  HttpResponseParser until_close({nullptr, [&](std::string_view b) { streamed.append(b); }, nullptr});
  REQUIRE(until_close.feed("HTTP/1.1 200 OK\r\n\r\nabc"));
  REQUIRE(until_close.feed("def"));
  CHECK(until_close.finish());
  CHECK(streamed == "abcdef");
}

TEST_CASE("docker self detection: BERTH_CONTAINER_ID overrides what /proc says", "[docker][self]") {
  ::setenv("BERTH_CONTAINER_ID", "berth-proxy", 1);
  CHECK(guess_own_container_id() == "berth-proxy");
  ::unsetenv("BERTH_CONTAINER_ID");
  CHECK(guess_own_container_id() != "berth-proxy");
}
