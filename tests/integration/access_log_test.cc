// The access log through the real binary: JSON lines checked field by field against the requests
// sent (a proxied one, a retried one with two tries, and one request per local-reply cause), the
// combined format, a logrotate-style rename followed by SIGUSR1, and delivery to a real rsyslog
// (Debian's rsyslogd, started here with its own config on loopback) over UDP and TCP while it is
// killed and restarted under traffic, and SIGTERM with a log reader that stopped reading.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <csignal>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
// GCC 12 warns about libstdc++'s own <regex> code under -fsanitize (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop
#include <set>
#include <thread>

#include "env.h"

using namespace it;
using json = nlohmann::json;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) out.emplace_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// Every line of an access log file as JSON; a line that does not parse fails the test.
std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  for (const std::string& line : lines_of(text)) {
    INFO("access log line: " << line);
    json j = json::parse(line, nullptr, false);
    CHECK_FALSE(j.is_discarded());
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::vector<json> with_id(const std::vector<json>& all, const std::string& id) {
  std::vector<json> out;
  for (const json& j : all)
    if (j.value("request_id", "") == id) out.push_back(j);
  return out;
}

std::string id_header(const std::string& id) { return "X-Request-Id: " + id; }

uint16_t local_port(int fd) {
  sockaddr_in sin{};
  socklen_t len = sizeof sin;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) return 0;
  return ntohs(sin.sin_port);
}

// One Berth with the access log on and one worker.
struct LogEnv {
  TempDir dir;
  Origin origin{"L"};
  uint16_t dead1 = unused_port();
  uint16_t dead2 = unused_port();
  std::string path = dir.file("access.log");
  std::unique_ptr<Berth> berth;

  explicit LogEnv(const std::string& access_log, int workers = 1,
                  const std::string& timeouts = "upstream_connect: 2s, upstream_response: 10s") {
    REQUIRE(origin.ok());
    const std::string o = "\"" + origin.address() + "\"";
    const std::string d1 = "\"127.0.0.1:" + std::to_string(dead1) + "\"";
    const std::string d2 = "\"127.0.0.1:" + std::to_string(dead2) + "\"";
    std::string section = access_log;
    if (auto at = section.find("{PATH}"); at != std::string::npos) section.replace(at, 6, path);
    berth = std::make_unique<Berth>(
        config_head(workers, timeouts) + section +
        "routes:\n"
        "  - {name: r-log, host: \"log.test\", service: s-log}\n"
        "  - {name: r-retry, host: \"retry.test\", service: s-retry}\n"
        "  - {name: r-dead, host: \"dead.test\", service: s-dead}\n"
        "  - {name: r-empty, host: \"empty.test\", service: s-empty}\n"
        "  - {name: r-small, host: \"small.test\", service: s-log, max_body_bytes: 10}\n"
        "  - {name: r-get, host: \"get.test\", service: s-log, access: {methods: [GET]}}\n"
        "  - {name: r-deny, host: \"deny.test\", service: s-log, access: {deny: [\"127.0.0.0/8\"]}}\n"
        "services:\n"
        "  s-log: {endpoints: [" + o + "]}\n"
        "  s-retry:\n"
        "    endpoints: [" + d1 + ", " + o + "]\n"
        "    retry: {attempts: 2}\n"
        "    outlier: {consecutive_failures: 0}\n"
        "  s-dead:\n"
        "    endpoints: [" + d1 + ", " + d2 + "]\n"
        "    retry: {attempts: 2}\n"
        "    outlier: {consecutive_failures: 0}\n"
        "  s-empty: {endpoints: []}\n");
    INFO(berth->error());
    REQUIRE(berth->ok());
  }
  // Stops Berth (the access log is written out on exit) and returns the file's records.
  std::vector<json> stop_and_read() {
    auto status = berth->process().terminate();
    INFO(berth->log());
    CHECK(exited_with(status, 0));
    return json_lines(read_file(path));
  }
};

const std::regex kTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");

// An RFC 3339 time of the records, in RFC 3339 form and within a minute of now.
bool recent_time(const json& value) {
  if (!value.is_string() || !std::regex_match(value.get<std::string>(), kTime)) return false;
  struct tm tm {};
  if (!strptime(value.get<std::string>().c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return false;
  const long diff = static_cast<long>(timegm(&tm) - ::time(nullptr));
  return diff > -60 && diff < 60;
}

}  // namespace

TEST_CASE("access log: a proxied request, field by field", "[accesslog]") {
  LogEnv env("access_log: {format: json, path: \"{PATH}\"}\n");
  const std::string id = marker("AL");
  const std::string req = make_request("POST", "/hello/w%20orld?x=1&y=%22", "log.test",
                                       {id_header(id), "User-Agent: al-test/1 \"quoted\"",
                                        "Referer: http://ref.test/p?q=1"},
                                       "body=12345");
  Client c(env.berth->port());
  REQUIRE(c.connected());
  const uint16_t client_port = local_port(c.fd());
  Response r = c.request(req);
  REQUIRE(r.status == 200);
  const size_t response_bytes = r.raw_head.size() + r.body.size();
  c.close();
  auto recs = with_id(env.stop_and_read(), id);
  REQUIRE(recs.size() == 1);
  const json& j = recs[0];
  INFO(j.dump());
  CHECK(recent_time(j["time"]));
  CHECK(j["client"] == "127.0.0.1:" + std::to_string(client_port));
  CHECK(j["method"] == "POST");
  CHECK(j["host"] == "log.test");
  CHECK(j["path"] == "/hello/w%20orld");
  CHECK(j["query"] == "x=1&y=%22");
  CHECK(j["protocol"] == "HTTP/1.1");
  CHECK(j["status"] == 200);
  CHECK(j["bytes_in"] == req.size());
  CHECK(j["bytes_out"] == response_bytes);
  CHECK(j["duration_ms"].is_number());
  CHECK(j["duration_ms"].get<double>() >= 0.0);
  CHECK(j["duration_ms"].get<double>() < 10000.0);
  CHECK(j["route"] == "r-log");
  CHECK(j["service"] == "s-log");
  CHECK(j["instance"] == env.origin.address());
  CHECK(j["container"] == "");  // a config endpoint, not a container
  CHECK(j["attempts"] == 1);
  REQUIRE(j["tries"].size() == 1);
  const json& t = j["tries"][0];
  CHECK(t["instance"] == env.origin.address());
  CHECK(t["status"] == 200);
  CHECK(t["failure"] == "");
  CHECK(t["connect_ms"].is_number());
  CHECK(t["first_byte_ms"].is_number());
  CHECK(t["first_byte_ms"].get<double>() >= t["connect_ms"].get<double>());
  CHECK(j["cause"] == "");
  CHECK(j["end"] == "responded");
  CHECK(j["user_agent"] == "al-test/1 \"quoted\"");
  CHECK(j["referer"] == "http://ref.test/p?q=1");
}

TEST_CASE("access log: a retried request has two tries", "[accesslog]") {
  LogEnv env("access_log: {path: \"{PATH}\"}\n");
  // s-retry is [dead, origin] in round robin: of three requests, at least one tries the dead
  // instance first and is retried on the origin.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(marker("ALR"));
    Response r = http_get(env.berth->port(), "/r", "retry.test", {id_header(ids.back())});
    REQUIRE(r.status == 200);
  }
  auto all = env.stop_and_read();
  int retried = 0;
  for (const std::string& id : ids) {
    auto recs = with_id(all, id);
    REQUIRE(recs.size() == 1);
    const json& j = recs[0];
    INFO(j.dump());
    CHECK(j["status"] == 200);
    CHECK(j["instance"] == env.origin.address());
    if (j["attempts"] == 1) continue;
    ++retried;
    CHECK(j["attempts"] == 2);
    REQUIRE(j["tries"].size() == 2);
    CHECK(j["tries"][0]["instance"] == "127.0.0.1:" + std::to_string(env.dead1));
    CHECK(j["tries"][0]["failure"] == "upstream-connect-failed");
    CHECK(j["tries"][0]["connect_ms"].is_null());
    CHECK(j["tries"][0]["first_byte_ms"].is_null());
    CHECK(j["tries"][0]["status"] == 0);
    CHECK(j["tries"][1]["instance"] == env.origin.address());
    CHECK(j["tries"][1]["failure"] == "");
    CHECK(j["tries"][1]["status"] == 200);
    CHECK(j["tries"][1]["connect_ms"].is_number());
    CHECK(j["tries"][1]["first_byte_ms"].is_number());
    CHECK(j["cause"] == "");
  }
  CHECK(retried >= 1);
}

namespace {
struct CauseCase {
  const char* cause;
  int status;
  std::string request;  // {ID} is replaced by the request id
  bool has_id;          // the head parsed, so the record carries the request id
  bool wait_for_close = false;
};
}  // namespace

TEST_CASE("access log: each local-reply cause", "[accesslog]") {
  LogEnv env("access_log: {path: \"{PATH}\"}\n", 1,
             "upstream_connect: 2s, upstream_response: 700ms, request_header: 600ms, request_body_idle: 600ms");
  const std::string h = "X-Request-Id: {ID}\r\n";
  const std::vector<CauseCase> cases = {
      {"no-route", 404, "GET /x HTTP/1.1\r\nHost: nowhere.test\r\n" + h + "\r\n", true},
      {"no-endpoint", 503, "GET /x HTTP/1.1\r\nHost: empty.test\r\n" + h + "\r\n", true},
      {"upstream-connect-failed", 502, "GET /x HTTP/1.1\r\nHost: dead.test\r\n" + h + "\r\n", true},
      {"upstream-reset", 502, "GET /x?abort=1 HTTP/1.1\r\nHost: log.test\r\n" + h + "\r\n", true},
      {"upstream-bad-response", 502, "GET /x?bad_framing=1 HTTP/1.1\r\nHost: log.test\r\n" + h + "\r\n", true},
      {"upstream-response-timeout", 504, "GET /x?delay_ms=3000 HTTP/1.1\r\nHost: log.test\r\n" + h + "\r\n", true},
      {"body-too-large", 413, "POST /x HTTP/1.1\r\nHost: small.test\r\n" + h + "Content-Length: 100\r\n\r\n", true},
      {"method-not-allowed", 405, "POST /x HTTP/1.1\r\nHost: get.test\r\n" + h + "Content-Length: 0\r\n\r\n", true},
      {"forbidden-address", 403, "GET /x HTTP/1.1\r\nHost: deny.test\r\n" + h + "\r\n", true},
      {"request-body-timeout", 408, "POST /x HTTP/1.1\r\nHost: log.test\r\n" + h + "Content-Length: 10\r\n\r\nab", true},
      {"request-header-timeout", 408, "GET /x HTTP/1.1\r\nHost: log.test\r\n", false},
      {"header-too-large", 431, "GET /x HTTP/1.1\r\nHost: log.test\r\nX-Big: " + std::string(40000, 'b') + "\r\n\r\n", false},
      {"uri-too-long", 414, "GET /" + std::string(9000, 'u') + " HTTP/1.1\r\nHost: log.test\r\n\r\n", false},
      {"bad-request", 400, "GET /x HTTP/1.1\r\nHost: log.test\r\nNoColonHere\r\n\r\n", false},
      {"not-implemented", 501, "POST /x HTTP/1.1\r\nHost: log.test\r\nTransfer-Encoding: gzip\r\n\r\nxxxx", false},
      {"version-not-supported", 505, "GET /x HTTP/2.0\r\nHost: log.test\r\n\r\n", false},
  };
  std::map<std::string, std::string> ids;
  for (const CauseCase& c : cases) {
    const std::string id = marker("ALC");
    ids[c.cause] = id;
    std::string raw = c.request;
    if (auto at = raw.find("{ID}"); at != std::string::npos) raw.replace(at, 4, id);
    Client client(env.berth->port());
    REQUIRE(client.connected());
    Response r = client.request(raw);
    INFO(c.cause << ": " << r.raw_head << r.error);
    CHECK(r.status == c.status);
    CHECK(r.header("x-berth-error").value_or("") == c.cause);
  }
  {
    // A head cut off by the client's leaving: no answer, and a record named by its method.
    Client client(env.berth->port());
    REQUIRE(client.connected());
    client.send("PUT /partial HTTP/1.1\r\nHo");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto all = env.stop_and_read();
  {
    std::vector<json> cut;
    for (const json& j : all)
      if (j["end"] == "client_closed") cut.push_back(j);
    REQUIRE(cut.size() == 1);
    INFO(cut[0].dump());
    CHECK(cut[0]["method"] == "PUT");
    CHECK(cut[0]["protocol"] == "");
    CHECK(cut[0]["status"] == 0);
  }
  for (const CauseCase& c : cases) {
    INFO("cause " << c.cause);
    std::vector<json> recs;
    for (const json& j : all)
      if (j.value("cause", "") == c.cause) recs.push_back(j);
    REQUIRE(recs.size() == 1);
    const json& j = recs[0];
    INFO(j.dump());
    CHECK(j["status"] == c.status);
    CHECK(j["end"] == "local_reply");
    CHECK(recent_time(j["time"]));
    CHECK(j["client"].get<std::string>().rfind("127.0.0.1:", 0) == 0);
    CHECK(j["bytes_out"].get<uint64_t>() > 0);
    // A head that did not parse (refused, too large, timed out): the method is still named when
    // it is a standard one, as in the metrics' method label; the protocol is not known.
    if (!c.has_id) {
      CHECK(j["method"] == (std::string_view(c.cause) == "not-implemented" ? "POST" : "GET"));
      CHECK(j["protocol"] == "");
    }
    if (c.has_id) {
      CHECK(j["request_id"] == ids[c.cause]);
      CHECK(j["host"].get<std::string>().size() > 0);
      CHECK(j["path"] == "/x");
    }
  }
  // Routing facts of the ones that got that far.
  auto find = [&](const char* cause) {
    for (const json& j : all)
      if (j.value("cause", "") == cause) return j;
    return json::object();
  };
  CHECK(find("no-route")["route"] == "");
  CHECK(find("no-route")["attempts"] == 0);
  CHECK(find("no-endpoint")["route"] == "r-empty");
  CHECK(find("no-endpoint")["service"] == "s-empty");
  const json dead = find("upstream-connect-failed");
  CHECK(dead["route"] == "r-dead");
  CHECK(dead["attempts"] == 2);
  REQUIRE(dead["tries"].size() == 2);
  CHECK(dead["tries"][0]["failure"] == "upstream-connect-failed");
  CHECK(dead["tries"][1]["failure"] == "upstream-connect-failed");
  CHECK(dead["tries"][0]["instance"] != dead["tries"][1]["instance"]);
  const json slow = find("upstream-response-timeout");
  CHECK(slow["instance"] == env.origin.address());
  CHECK(slow["tries"][0]["connect_ms"].is_number());
  CHECK(slow["tries"][0]["first_byte_ms"].is_null());
  CHECK(slow["duration_ms"].get<double>() >= 600.0);
}

TEST_CASE("access log: the combined format", "[accesslog]") {
  LogEnv env("access_log: {format: combined, path: \"{PATH}\"}\n");
  Client c(env.berth->port());
  REQUIRE(c.connected());
  Response r = c.request(make_request("GET", "/c?q=1", "log.test", {"User-Agent: ua/2", "Referer: http://r.test/"}));
  REQUIRE(r.status == 200);
  const size_t bytes = r.raw_head.size() + r.body.size();
  r = c.request(make_request("GET", "/none", "nowhere.test"));
  REQUIRE(r.status == 404);
  const size_t bytes404 = r.raw_head.size() + r.body.size();
  c.close();
  Client bad(env.berth->port());
  REQUIRE(bad.connected());
  r = bad.request("GET /x HTTP/2.0\r\nHost: log.test\r\n\r\n");
  REQUIRE(r.status == 505);
  bad.close();
  env.berth->process().terminate();
  auto lines = lines_of(read_file(env.path));
  REQUIRE(lines.size() == 3);
  const std::regex line(R"(127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] (.*))");
  std::smatch m;
  REQUIRE(std::regex_match(lines[0], m, line));
  CHECK(m[1] == "\"GET /c?q=1 HTTP/1.1\" 200 " + std::to_string(bytes) + " \"http://r.test/\" \"ua/2\"");
  REQUIRE(std::regex_match(lines[1], m, line));
  CHECK(m[1] == "\"GET /none HTTP/1.1\" 404 " + std::to_string(bytes404) + " \"-\" \"-\"");
  // A head that did not parse has no request line, whatever method it starts with.
  REQUIRE(std::regex_match(lines[2], m, line));
  CHECK(m[1].str().rfind("\"-\" 505 ", 0) == 0);
}

TEST_CASE("access log: SIGUSR1 after a rename reopens the file, no record lost", "[accesslog]") {
  LogEnv env("access_log: {path: \"{PATH}\"}\n", 2);
  const std::string path = env.path;
  // Traffic on two connections while the file is renamed and Berth told to reopen it.
  std::atomic<bool> stop{false};
  std::atomic<bool> reopened{false};
  std::mutex mu;
  std::vector<std::string> sent;        // every request answered 200
  std::set<std::string> after_reopen;   // requests sent once the reopen was logged
  int failures = 0;
  auto traffic = [&](int n) {
    Client c(env.berth->port());
    int seq = 0;
    while (!stop.load()) {
      const std::string id = "ROT-" + std::to_string(n) + "-" + std::to_string(seq++);
      const bool late = reopened.load();
      Response r = c.request(make_request("GET", "/rot", "log.test", {id_header(id)}));
      std::lock_guard lock(mu);
      if (r.status != 200) {
        ++failures;
        break;
      }
      sent.push_back(id);
      if (late) after_reopen.insert(id);
      std::this_thread::sleep_for(2ms);
    }
  };
  std::thread t1(traffic, 1), t2(traffic, 2);
  std::this_thread::sleep_for(400ms);
  REQUIRE(::rename(path.c_str(), (path + ".1").c_str()) == 0);
  std::this_thread::sleep_for(100ms);  // still written to the renamed file meanwhile
  REQUIRE(env.berth->process().signal(SIGUSR1));
  CHECK(env.berth->log_shows("event=access_log_reopened", 3s));
  reopened = true;
  std::this_thread::sleep_for(400ms);
  stop = true;
  t1.join();
  t2.join();
  CHECK(failures == 0);
  auto status = env.berth->process().terminate();
  CHECK(exited_with(status, 0));

  auto old_records = json_lines(read_file(path + ".1"));
  auto new_records = json_lines(read_file(path));
  INFO("sent " << sent.size() << ", old file " << old_records.size() << ", new file " << new_records.size());
  CHECK(old_records.size() > 0);
  CHECK(new_records.size() > 0);
  std::map<std::string, int> seen;
  std::set<std::string> in_new;
  for (const json& j : old_records) ++seen[j.value("request_id", "")];
  for (const json& j : new_records) {
    ++seen[j.value("request_id", "")];
    in_new.insert(j.value("request_id", ""));
  }
  // Every request exactly once, across the two files.
  CHECK(seen.size() == sent.size());
  size_t missing = 0, twice = 0, late_in_old = 0;
  for (const std::string& id : sent) {
    auto it = seen.find(id);
    if (it == seen.end()) ++missing;
    else if (it->second != 1) ++twice;
    if (after_reopen.count(id) && !in_new.count(id)) ++late_in_old;
  }
  CHECK(missing == 0);
  CHECK(twice == 0);
  CHECK(after_reopen.size() > 0);
  CHECK(late_in_old == 0);  // once reopened, records go to the new file
}

// ---- rsyslog ------------------------------------------------------------------------------

namespace {

constexpr const char* kRsyslogd = "/usr/sbin/rsyslogd";

bool tcp_connects(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
  ::close(fd);
  return ok;
}

// A private rsyslogd: UDP and TCP inputs on loopback, each message as one line of
// "<input> <app-name> <msgid> <pri> <msg>" in received.log.
class Rsyslog {
 public:
  Rsyslog() : udp_port_(unused_port()), tcp_port_(unused_port()) {
    const std::string d = dir_.path();
    ::mkdir((d + "/work").c_str(), 0700);
    write_file(dir_.file("rsyslog.conf"),
               "global(workDirectory=\"" + d + "/work\")\n"
               "module(load=\"imudp\")\n"
               "module(load=\"imtcp\")\n"
               "template(name=\"line\" type=\"string\" string=\"%inputname% %app-name% %msgid% %pri% %msg%\\n\")\n"
               "ruleset(name=\"berth\") {\n"
               "  action(type=\"omfile\" file=\"" + d + "/received.log\" template=\"line\" asyncWriting=\"off\" flushOnTXEnd=\"on\")\n"
               "}\n"
               "input(type=\"imudp\" address=\"127.0.0.1\" port=\"" + std::to_string(udp_port_) + "\" ruleset=\"berth\")\n"
               "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"" + std::to_string(tcp_port_) + "\" ruleset=\"berth\")\n");
  }
  // Starts rsyslogd and waits until its TCP input accepts connections.
  void start() {
    INFO("rsyslogd (Debian package rsyslog) is needed for this test: scripts/install-deps.sh --docker");
    REQUIRE(::access(kRsyslogd, X_OK) == 0);
    proc_ = Process({kRsyslogd, "-n", "-f", dir_.file("rsyslog.conf"), "-i", dir_.file("rsyslogd.pid")},
                    dir_.file("out.log"), dir_.file("err.log"));
    INFO(proc_.spawn_error() << read_file(dir_.file("err.log")));
    REQUIRE(proc_.started());
    REQUIRE(wait_until([&] { return tcp_connects(tcp_port_); }, 5s));
  }
  void kill() {
    proc_.signal(SIGKILL);
    proc_.wait_exit(5s);
  }
  std::string received() const { return read_file(dir_.file("received.log")); }
  std::string errors() const { return read_file(dir_.file("err.log")); }
  uint16_t udp_port() const { return udp_port_; }
  uint16_t tcp_port() const { return tcp_port_; }

 private:
  TempDir dir_;
  uint16_t udp_port_, tcp_port_;
  Process proc_;
};

struct AccessLogStats {
  uint64_t dropped = 0;
  uint64_t syslog_sent = 0;
};

AccessLogStats access_log_stats(uint16_t admin_port) {
  Response r = http_get(admin_port, "/api/stats", "localhost");
  json j = json::parse(r.body, nullptr, false);
  AccessLogStats s;
  if (j.is_discarded() || !j.contains("access_log")) return s;
  s.dropped = j["access_log"].value("dropped", uint64_t{0});
  s.syslog_sent = j["access_log"].value("syslog_sent", uint64_t{0});
  return s;
}

// The JSON records rsyslog received from Berth, by request id.
std::map<std::string, json> received_records(const std::string& text, const std::string& input) {
  std::map<std::string, json> out;
  for (const std::string& line : lines_of(text)) {
    // "<input> berth access <pri> {json}"
    const std::string prefix = input + " berth access 134 ";
    if (line.rfind(prefix, 0) != 0) continue;
    json j = json::parse(line.substr(prefix.size()), nullptr, false);
    if (!j.is_discarded()) out[j.value("request_id", "")] = j;
  }
  return out;
}

void syslog_kill_and_restart(const std::string& scheme) {
  Rsyslog rsyslog;
  rsyslog.start();
  const bool tcp = scheme == "tcp";
  const std::string input = tcp ? "imtcp" : "imudp";
  const uint16_t port = tcp ? rsyslog.tcp_port() : rsyslog.udp_port();
  LogEnv env("access_log: {syslog: \"" + scheme + "://127.0.0.1:" + std::to_string(port) + "\"}\n", 2);

  // Before anything goes wrong: each record arrives, whole, as the JSON line.
  std::vector<std::string> first;
  for (int i = 0; i < 5; ++i) {
    first.push_back(marker("SY"));
    Response r = http_get(env.berth->port(), "/s?i=" + std::to_string(i), "log.test", {id_header(first.back())});
    REQUIRE(r.status == 200);
  }
  REQUIRE(wait_until([&] { return received_records(rsyslog.received(), input).size() >= first.size(); }, 3s));
  {
    auto got = received_records(rsyslog.received(), input);
    INFO(rsyslog.received());
    for (size_t i = 0; i < first.size(); ++i) {
      REQUIRE(got.count(first[i]) == 1);
      CHECK(got[first[i]]["path"] == "/s");
      CHECK(got[first[i]]["query"] == "i=" + std::to_string(i));
      CHECK(got[first[i]]["status"] == 200);
      CHECK(got[first[i]]["route"] == "r-log");
    }
  }
  // A record longer than rsyslog's 8096 bytes arrives as one message of valid JSON, its long
  // request strings shortened.
  const std::string long_id = marker("SYL");
  Response long_r = http_get(env.berth->port(), "/" + std::string(6000, 'p'), "log.test",
                             {id_header(long_id), "User-Agent: " + std::string(7000, 'u')});
  REQUIRE(long_r.status == 200);
  REQUIRE(wait_until([&] { return received_records(rsyslog.received(), input).count(long_id) == 1; }, 3s));
  {
    json j = received_records(rsyslog.received(), input)[long_id];
    CHECK(j["status"] == 200);
    CHECK(j["path"].get<std::string>().size() < 600);
    CHECK(j["user_agent"].get<std::string>().substr(0, 10) == "uuuuuuuuuu");
    CHECK(rsyslog.errors().find("oversize") == std::string::npos);
  }
  CHECK(access_log_stats(env.berth->admin_port()).dropped == 0);

  // Traffic throughout; rsyslog killed, then started again on the same ports.
  std::atomic<bool> stop{false};
  std::atomic<int> phase{0};  // 0 before the kill, 1 while down, 2 after the restart
  std::mutex mu;
  std::vector<std::string> after_restart;
  int ok = 0, failed = 0;
  std::thread traffic([&] {
    Client c(env.berth->port());
    int seq = 0;
    while (!stop.load()) {
      const int p = phase.load();
      const std::string id = "SYK-" + scheme + "-" + std::to_string(seq++);
      const auto t0 = Clock::now();
      Response r = c.request(make_request("GET", "/k", "log.test", {id_header(id)}));
      const auto took = Clock::now() - t0;
      std::lock_guard lock(mu);
      if (r.status == 200 && took < 1s) ++ok;
      else ++failed;
      if (r.status != 200) break;
      if (p == 2) after_restart.push_back(id);
      std::this_thread::sleep_for(5ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  rsyslog.kill();
  phase = 1;
  std::this_thread::sleep_for(800ms);
  const AccessLogStats while_down = access_log_stats(env.berth->admin_port());
  rsyslog.start();
  // The writer retries every 500 ms: give it that before counting what is sent as "after".
  std::this_thread::sleep_for(700ms);
  phase = 2;
  std::this_thread::sleep_for(700ms);
  stop = true;
  traffic.join();

  INFO(env.berth->log());
  CHECK(failed == 0);  // requests are unaffected: all answered, none slowed down
  CHECK(ok > 50);
  CHECK(while_down.dropped > 0);  // what could not be sent is counted
  std::vector<std::string> late;
  {
    std::lock_guard lock(mu);
    late = after_restart;
  }
  REQUIRE(late.size() > 10);
  // Delivery resumes: every record of a request made after the restart arrives.
  bool all_arrived = wait_until([&] {
    auto got = received_records(rsyslog.received(), input);
    for (const std::string& id : late)
      if (!got.count(id)) return false;
    return true;
  }, 3s);
  if (!all_arrived) {
    auto got = received_records(rsyslog.received(), input);
    size_t missing = 0;
    for (const std::string& id : late) missing += got.count(id) ? 0 : 1;
    INFO("missing " << missing << " of " << late.size() << "\nrsyslog stderr: " << rsyslog.errors());
    CHECK(all_arrived);
  }
  const AccessLogStats end = access_log_stats(env.berth->admin_port());
  CHECK(end.dropped >= while_down.dropped);
  CHECK(end.syslog_sent > 0);
  CHECK(env.berth->running());
  if (tcp) CHECK(env.berth->log_shows("event=access_log_syslog_unavailable"));
}

}  // namespace

TEST_CASE("access log: rsyslog over UDP, killed and restarted during traffic", "[accesslog][rsyslog]") {
  syslog_kill_and_restart("udp");
}

TEST_CASE("access log: rsyslog over TCP, killed and restarted during traffic", "[accesslog][rsyslog]") {
  syslog_kill_and_restart("tcp");
}

TEST_CASE("access log: syslog on a unix datagram socket", "[accesslog]") {
  // The test is the receiver: a datagram socket bound where /dev/log would be.
  TempDir dir;
  const std::string sock_path = dir.file("log.sock");
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  REQUIRE(sock_path.size() < sizeof sun.sun_path);
  std::memcpy(sun.sun_path, sock_path.c_str(), sock_path.size() + 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
  timeval tv{3, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  LogEnv env("access_log: {format: combined, syslog: \"unix://" + sock_path + "\"}\n");
  const std::string id = marker("UX");
  Response r = http_get(env.berth->port(), "/unix?z=1", "log.test", {id_header(id), "User-Agent: ux/1"});
  REQUIRE(r.status == 200);
  char buf[9000];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  ::close(fd);
  REQUIRE(n > 0);
  const std::string msg(buf, static_cast<size_t>(n));
  INFO(msg);
  const std::regex rfc5424(R"(<134>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ berth (\d+) access - (.*))");
  std::smatch m;
  REQUIRE(std::regex_match(msg, m, rfc5424));
  CHECK(m[1] == std::to_string(env.berth->pid()));
  CHECK(m[2].str().rfind("127.0.0.1 - - [", 0) == 0);
  CHECK(m[2].str().find("\"GET /unix?z=1 HTTP/1.1\" 200 ") != std::string::npos);
  CHECK(m[2].str().find("\"ux/1\"") != std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("access log: a file that cannot be opened stops Berth at start; a reload keeps the log",
          "[accesslog]") {
  TempDir dir;
  const std::string conf = dir.file("bad.yaml");
  REQUIRE(write_file(conf, config_head(1) + "access_log: {path: \"" + dir.file("no/such/dir/a.log") + "\"}\n"));
  std::string out, err;
  auto status = run_berth({"--config", conf}, &out, &err);
  INFO(err);
  CHECK(exited_with(status, 1));
  CHECK(err.find("event=access_log_open_failed") != std::string::npos);
  CHECK(err.find("no/such/dir/a.log") != std::string::npos);

  // SIGHUP with another access_log: a warning, and the records keep going where they went.
  LogEnv env("access_log: {path: \"{PATH}\"}\n");
  const std::string yaml = read_file(env.berth->config_path());
  std::string changed = yaml;
  const std::string other = dir.file("other.log");
  changed.replace(changed.find(env.path), env.path.size(), other);
  REQUIRE(env.berth->rewrite_config(changed));
  REQUIRE(env.berth->process().signal(SIGHUP));
  REQUIRE(env.berth->log_shows("event=config_reloaded", 3s));
  CHECK(env.berth->log_shows("reason=\"access_log changes only on restart\""));
  const std::string id = marker("HUP");
  REQUIRE(http_get(env.berth->port(), "/h", "log.test", {id_header(id)}).status == 200);
  auto recs = with_id(env.stop_and_read(), id);
  CHECK(recs.size() == 1);
  CHECK(read_file(other).empty());
}

TEST_CASE("access log: a FIFO with no reader stops Berth at start; failed writes are counted", "[accesslog]") {
  // A FIFO nobody reads: the open must not wait for a reader (it held start-up forever).
  TempDir dir;
  const std::string fifo = dir.file("log.fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string conf = dir.file("fifo.yaml");
  REQUIRE(write_file(conf, config_head(1) + "access_log: {path: \"" + fifo + "\"}\n"));
  std::string out, err;
  auto status = run_berth({"--config", conf}, &out, &err);
  INFO(err);
  CHECK(exited_with(status, 1));
  CHECK(err.find("a FIFO with no reader") != std::string::npos);

  // Every write fails (a full disk): the records are counted as dropped and the failure logged once.
  LogEnv env("access_log: {path: /dev/full}\n");
  for (int i = 0; i < 5; ++i) REQUIRE(http_get(env.berth->port(), "/full", "log.test").status == 200);
  CHECK(wait_until([&] { return access_log_stats(env.berth->admin_port()).dropped == 5; }, 3s));
  // Berth's own log is written by its log thread: the line may come a moment after the count.
  CHECK(env.berth->log_shows("event=access_log_write_failed", 3s));
  const std::string log = env.berth->log();
  INFO(log);
  size_t failures = 0;
  for (size_t at = 0; (at = log.find("event=access_log_write_failed", at)) != std::string::npos; ++at) ++failures;
  CHECK(failures == 1);
}

namespace {
// A FIFO and its reader (opened non-blocking), which reads nothing until the test does: to
// Berth, the same as a stdout pipe nobody drains.
struct StalledFifo {
  TempDir dir;
  std::string path = dir.file("stalled.fifo");
  int reader = -1;
  StalledFifo() {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    REQUIRE(reader >= 0);
  }
  ~StalledFifo() {
    if (reader >= 0) ::close(reader);
  }
};
}  // namespace

TEST_CASE("access log: drops are logged while the output stalls and not once it takes data again", "[accesslog]") {
  // A FIFO whose reader reads nothing: the writer thread blocks in its write, the worker's 4 MiB
  // buffer fills and records are dropped. Berth's log says so within seconds, while the output
  // still stalls (before, the line came only once the writer's write returned).
  StalledFifo fifo;
  const int reader = fifo.reader;
  LogEnv env("access_log: {path: \"" + fifo.path + "\"}\n");
  // Records of some 4.4 KB (the path is in them): 1,500 of them are more than the FIFO and the
  // buffer hold. Sent 100 at a time, pipelined.
  const std::string request = make_request("GET", "/drop/" + std::string(4000, 'x'), "log.test");
  std::string batch;
  for (int i = 0; i < 100; ++i) batch += request;
  {
    Client c(env.berth->port());
    int ok = 0;
    for (int b = 0; b < 15; ++b) {
      REQUIRE(c.send(batch));
      for (int i = 0; i < 100; ++i) ok += c.read_response().status == 200;
    }
    REQUIRE(ok == 1500);
  }
  CHECK(env.berth->log_shows("event=access_log_dropped output=file records="));
  CHECK(access_log_stats(env.berth->admin_port()).dropped > 0);
  int queued = 0;
  CHECK(::ioctl(reader, FIONREAD, &queued) == 0);
  CHECK(queued > 60 * 1024);  // the reader has still read nothing
  INFO(env.berth->log());

  // Read the FIFO from here on, so that Berth's exit does not wait for it.
  std::atomic<bool> done{false};
  std::thread drain([&] {
    char buf[65536];
    while (!done.load()) {
      if (::read(reader, buf, sizeof buf) <= 0) std::this_thread::sleep_for(10ms);
    }
  });
  env.berth.reset();
  done = true;
  drain.join();
}

TEST_CASE("access log: SIGTERM exits promptly when the log's reader stopped reading; the rest is counted",
          "[accesslog][lifecycle]") {
  // A FIFO whose reader never reads (to Berth, the same as a stdout pipe nobody drains): once its
  // 64 KiB are full, the writer thread blocks in writev and, before the fix, SIGTERM never ended
  // the process. Now exit gives the access log 5 s, then gives the rest up, logged and counted.
  StalledFifo fifo;
  const int reader = fifo.reader;
  LogEnv env("access_log: {path: \"" + fifo.path + "\"}\n");
  constexpr int kRequests = 600;  // a record is some 400 bytes: several times what the FIFO holds
  {
    Client c(env.berth->port());
    int ok = 0;
    for (int i = 0; i < kRequests; ++i) ok += c.get("/stall?i=" + std::to_string(i), "log.test").status == 200;
    REQUIRE(ok == kRequests);
  }
  const auto fifo_full = [&] {
    int queued = 0;
    return ::ioctl(reader, FIONREAD, &queued) == 0 && queued > 60 * 1024;
  };
  REQUIRE(wait_until(fifo_full, 5s));

  const auto t0 = Clock::now();
  REQUIRE(env.berth->process().signal(SIGTERM));
  // Signals while the last records wait for the writer (logrotate's SIGUSR1, a reload, a second
  // stop) are ignored: before, the event loop had closed its signal handles by then, and the
  // first of them ended the process by its default action.
  std::this_thread::sleep_for(1500ms);
  for (int sig : {SIGUSR1, SIGHUP, SIGINT, SIGTERM}) CHECK(env.berth->process().signal(sig));
  const auto status = env.berth->process().wait_exit(15s);
  const std::string log = env.berth->log();
  INFO(log);
  REQUIRE(status);
  CHECK(exited_with(status, 0));
  CHECK(seconds_since(t0) < 15);

  // Every record is in the FIFO, whole, or counted in the one line logged at exit.
  std::string written;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(reader, buf, sizeof buf)) > 0) written.append(buf, static_cast<size_t>(n));
  const auto whole = static_cast<long>(std::count(written.begin(), written.end(), '\n'));
  std::smatch m;
  const std::regex unwritten(R"(event=access_log_unwritten_at_exit output=file records=(\d+))");
  REQUIRE(std::regex_search(log, m, unwritten));
  CHECK(std::stol(m[1]) > 0);
  CHECK(whole + std::stol(m[1]) == kRequests);
  CHECK(log.find("event=stopped") != std::string::npos);
}
