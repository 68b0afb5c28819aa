// The exchange record: every request, however it ends, is finalised exactly once. Berth runs
// with --log-level debug, where each record leaves one `event=exchange` line; each case drives
// one ending through the real binary and checks that its request left exactly one record with
// the right ending, status, cause, attempts and byte counts.

#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <thread>

#include "env.h"

using namespace it;

namespace {

using Fields = std::map<std::string, std::string>;

// key=value pairs of one logfmt line (values may be "quoted" with backslash escapes).
Fields parse_line(std::string_view line) {
  Fields out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    const size_t eq = line.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key(line.substr(i, eq - i));
    i = eq + 1;
    std::string value;
    if (i < line.size() && line[i] == '"') {
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] == '\\' && i + 1 < line.size()) ++i;
        value.push_back(line[i]);
      }
      ++i;
    } else {
      const size_t end = std::min(line.find(' ', i), line.size());
      value = std::string(line.substr(i, end - i));
      i = end;
    }
    out[key] = value;
  }
  return out;
}

// Every exchange record in a log.
std::vector<Fields> records(const std::string& log) {
  std::vector<Fields> out;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t end = log.find('\n', pos);
    if (end == std::string::npos) end = log.size();
    std::string_view line(log.data() + pos, end - pos);
    if (line.find(" event=exchange ") != std::string_view::npos) out.push_back(parse_line(line));
    pos = end + 1;
  }
  return out;
}

std::vector<Fields> records_of(const std::vector<Fields>& all, const std::string& request_id) {
  std::vector<Fields> out;
  for (const Fields& f : all)
    if (auto it = f.find("request_id"); it != f.end() && it->second == request_id) out.push_back(f);
  return out;
}

std::string field(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? std::string("<absent>") : it->second;
}

// One Berth with exchange records on (debug log) and one worker, so that records of one
// connection stay in order.
struct RecordEnv {
  Origin origin{"R"};
  uint16_t dead1 = unused_port();
  uint16_t dead2 = unused_port();
  std::unique_ptr<Berth> berth;
  explicit RecordEnv(const std::string& timeouts = "upstream_connect: 2s, upstream_response: 5s") {
    REQUIRE(origin.ok());
    berth = std::make_unique<Berth>(
        config_head(1, timeouts) +
            "routes:\n"
            "  - {name: r-rec, host: \"rec.test\", service: s-rec}\n"
            "  - {name: r-small, host: \"small.test\", service: s-rec, max_body_bytes: 10}\n"
            "  - {name: r-dead, host: \"dead.test\", service: s-dead}\n"
            "services:\n"
            "  s-rec: {endpoints: [\"" + origin.address() + "\"]}\n"
            "  s-dead:\n"
            "    endpoints: [\"127.0.0.1:" + std::to_string(dead1) + "\", \"127.0.0.1:" +
            std::to_string(dead2) + "\"]\n"
            "    retry: {attempts: 2}\n"
            "    outlier: {consecutive_failures: 0}\n",
        0, std::vector<std::string>{"--log-level", "debug"});
    INFO(berth->error());
    REQUIRE(berth->ok());
  }
  // Stops Berth (its log is flushed on exit) and returns every record it wrote.
  std::vector<Fields> stop_and_read() {
    berth->process().terminate();
    return records(berth->log());
  }
};

std::string id_header(const std::string& id) { return "X-Request-Id: " + id; }

}  // namespace

TEST_CASE("exchange record: a proxied response leaves one record with its attempt", "[record]") {
  RecordEnv env;
  const std::string id = marker("REC");
  const std::string req = make_request("GET", "/hello?x=1", "rec.test", {id_header(id), "User-Agent: rec-test/1"});
  Client c(env.berth->port());
  Response r = c.request(req);
  REQUIRE(r.status == 200);
  const size_t response_bytes = r.raw_head.size() + r.body.size();
  c.close();
  auto recs = records_of(env.stop_and_read(), id);
  REQUIRE(recs.size() == 1);
  const Fields& f = recs[0];
  CHECK(field(f, "end") == "responded");
  CHECK(field(f, "status") == "200");
  CHECK(field(f, "method") == "GET");
  CHECK(field(f, "host") == "rec.test");
  CHECK(field(f, "path") == "/hello");
  CHECK(field(f, "route") == "r-rec");
  CHECK(field(f, "service") == "s-rec");
  CHECK(field(f, "attempts") == "1");
  CHECK(field(f, "attempt1_instance") == env.origin.address());
  CHECK(field(f, "attempt1_status") == "200");
  CHECK(field(f, "bytes_in") == std::to_string(req.size()));
  CHECK(field(f, "bytes_out") == std::to_string(response_bytes));
  CHECK(std::stod(field(f, "attempt1_first_byte_ms")) >= 0.0);
  CHECK(field(f, "client").rfind("127.0.0.1:", 0) == 0);
}

TEST_CASE("exchange record: local replies, with and without a route", "[record]") {
  RecordEnv env;
  const std::string id404 = marker("REC"), id502 = marker("REC"), id413 = marker("REC");
  Response r = http_get(env.berth->port(), "/x", "nowhere.test", {id_header(id404)});
  REQUIRE(r.status == 404);
  // Both instances refuse the connection: two attempts, then 502.
  r = http_get(env.berth->port(), "/x", "dead.test", {id_header(id502)});
  REQUIRE(r.status == 502);
  // A chunked body over the route's limit, discovered while streaming: 413.
  Client c(env.berth->port());
  r = c.request("POST /up HTTP/1.1\r\nHost: small.test\r\n" + id_header(id413) +
                "\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n" + std::string(32, 'b') + "\r\n0\r\n\r\n");
  REQUIRE(r.status == 413);
  c.close();
  auto all = env.stop_and_read();

  auto recs = records_of(all, id404);
  REQUIRE(recs.size() == 1);
  CHECK(field(recs[0], "end") == "local_reply");
  CHECK(field(recs[0], "status") == "404");
  CHECK(field(recs[0], "cause") == "no-route");
  CHECK(field(recs[0], "attempts") == "0");

  recs = records_of(all, id502);
  REQUIRE(recs.size() == 1);
  CHECK(field(recs[0], "end") == "local_reply");
  CHECK(field(recs[0], "status") == "502");
  CHECK(field(recs[0], "cause") == "upstream-connect-failed");
  CHECK(field(recs[0], "attempts") == "2");
  CHECK(field(recs[0], "attempt1_failure") == "upstream-connect-failed");
  CHECK(field(recs[0], "attempt2_failure") == "upstream-connect-failed");
  CHECK(field(recs[0], "attempt1_instance") != field(recs[0], "attempt2_instance"));

  recs = records_of(all, id413);
  REQUIRE(recs.size() == 1);
  CHECK(field(recs[0], "end") == "local_reply");
  CHECK(field(recs[0], "status") == "413");
  CHECK(field(recs[0], "cause") == "body-too-large");
}

TEST_CASE("exchange record: an instance failing mid-response is an abort", "[record]") {
  RecordEnv env;
  const std::string id = marker("REC");
  Client c(env.berth->port());
  REQUIRE(c.send(make_request("GET", "/x?abort_after_headers=1&size=100000", "rec.test", {id_header(id)})));
  Response r = c.read_head();
  CHECK(r.status == 200);
  CHECK(c.wait_closed(5s));
  auto recs = records_of(env.stop_and_read(), id);
  REQUIRE(recs.size() == 1);
  CHECK(field(recs[0], "end") == "aborted");
  CHECK(field(recs[0], "status") == "200");
  CHECK(field(recs[0], "cause") == "upstream-reset");
}

TEST_CASE("exchange record: a client that leaves before its response", "[record]") {
  RecordEnv env;
  const std::string id = marker("REC");
  {
    // (A client that only half-closes after a whole request still gets its answer: to leave
    // for good, this one goes while its body is still unsent.)
    Client c(env.berth->port());
    REQUIRE(c.send("POST /x HTTP/1.1\r\nHost: rec.test\r\n" + id_header(id) +
                   "\r\nContent-Length: 100\r\n\r\n0123456789"));
    std::this_thread::sleep_for(200ms);
  }  // closed with 90 body bytes missing
  // A client that resets its connection after a whole request, while the answer is on its way,
  // is gone too (a FIN there would be a half-close, still answered).
  const std::string reset_id = marker("RST");
  {
    Client c(env.berth->port());
    REQUIRE(c.send("GET /x?delay_ms=600 HTTP/1.1\r\nHost: rec.test\r\n" + id_header(reset_id) + "\r\n\r\n"));
    std::this_thread::sleep_for(200ms);
    const linger abortive{1, 0};
    REQUIRE(::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) == 0);
  }  // closed with a reset
  // A second client sends half a head and leaves: a record without request facts but the
  // standard method its bytes start with.
  {
    Client c(env.berth->port());
    REQUIRE(c.send("GET /half HTTP/1.1\r\nHo"));
    std::this_thread::sleep_for(200ms);
  }
  std::this_thread::sleep_for(600ms);  // the instance's answer to the reset one has come
  auto all = env.stop_and_read();
  auto recs = records_of(all, id);
  REQUIRE(recs.size() == 1);
  CHECK(field(recs[0], "end") == "client_closed");
  CHECK(field(recs[0], "status") == "0");
  CHECK(field(recs[0], "attempts") == "1");
  auto reset = records_of(all, reset_id);
  REQUIRE(reset.size() == 1);
  CHECK(field(reset[0], "end") == "client_closed");
  CHECK(field(reset[0], "status") == "0");
  size_t headless = 0;
  for (const Fields& f : all)
    if (field(f, "host").empty() || field(f, "host") == "\"\"") {
      ++headless;
      CHECK(field(f, "method") == "GET");
      CHECK(field(f, "path").empty());
      CHECK(field(f, "end") == "client_closed");
      CHECK(field(f, "bytes_in") == "22");
    }
  CHECK(headless == 1);
  CHECK(all.size() == 3);
}

TEST_CASE("exchange record: a 103 is not the first byte; ten tries are all kept", "[record]") {
  // The instance's time is to its final head: a 103 sent at once must not make a slow answer look
  // fast (tries[].first_byte_ms, berth_upstream_response_seconds).
  {
    RecordEnv env;
    const std::string id = marker("EH");
    Client c(env.berth->port());
    REQUIRE(c.send(make_request("GET", "/x?interim=1&interim_delay_ms=400", "rec.test", {id_header(id)})));
    REQUIRE(c.read_response().status == 103);
    REQUIRE(c.read_response().status == 200);
    c.close();
    auto recs = records_of(env.stop_and_read(), id);
    REQUIRE(recs.size() == 1);
    CHECK(std::stod(field(recs[0], "attempt1_first_byte_ms")) >= 390.0);
  }
  // retry.attempts may say 10: every try is kept, and the last is the one the record names.
  std::string endpoints;
  std::vector<std::string> dead;
  for (int i = 0; i < 10; ++i) {
    dead.push_back("127.0.0.1:" + std::to_string(unused_port()));
    endpoints += (i ? ", \"" : "\"") + dead.back() + "\"";
  }
  Berth berth(config_head(1) + "routes:\n  - {name: r-ten, service: s-ten}\nservices:\n  s-ten:\n    endpoints: [" +
                  endpoints + "]\n    retry: {attempts: 10, min_retries: 100}\n    outlier: {consecutive_failures: 0}\n",
              0, std::vector<std::string>{"--log-level", "debug"});
  INFO(berth.error());
  REQUIRE(berth.ok());
  const std::string id = marker("TEN");
  check_berth_error(http_get(berth.port(), "/x", "ten.test", {id_header(id)}), 502, "upstream-connect-failed");
  berth.process().terminate();
  auto recs = records_of(records(berth.log()), id);
  REQUIRE(recs.size() == 1);
  CHECK(field(recs[0], "attempts") == "10");
  std::vector<std::string> tried;
  for (int i = 1; i <= 10; ++i) {
    const std::string instance = field(recs[0], "attempt" + std::to_string(i) + "_instance");
    CHECK(std::find(dead.begin(), dead.end(), instance) != dead.end());
    tried.push_back(instance);
  }
  std::sort(tried.begin(), tried.end());
  CHECK(std::unique(tried.begin(), tried.end()) == tried.end());  // ten different instances
}

TEST_CASE("exchange record: a header timeout and a tunnel", "[record]") {
  RecordEnv env("request_header: 500ms, upstream_connect: 2s, upstream_response: 5s");
  {
    Client c(env.berth->port());
    REQUIRE(c.send("GET /slow HTTP/1.1\r\n"));
    Response r = c.read_head();
    CHECK(r.status == 408);
  }
  const std::string id = marker("REC");
  {
    Client c(env.berth->port());
    REQUIRE(c.send("GET /ws HTTP/1.1\r\nHost: rec.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
                   id_header(id) + "\r\n\r\n"));
    Response r = c.read_head();
    REQUIRE(r.status == 101);
    REQUIRE(c.send("ping-through-the-tunnel"));
    CHECK(c.read_exact(23) == "ping-through-the-tunnel");
  }
  std::this_thread::sleep_for(300ms);
  auto all = env.stop_and_read();
  size_t timeouts = 0;
  for (const Fields& f : all)
    if (field(f, "cause") == "request-header-timeout") {
      ++timeouts;
      CHECK(field(f, "end") == "local_reply");
      CHECK(field(f, "status") == "408");
    }
  CHECK(timeouts == 1);
  auto recs = records_of(all, id);
  REQUIRE(recs.size() == 1);
  CHECK(field(recs[0], "end") == "tunnel_closed");
  CHECK(field(recs[0], "status") == "101");
  CHECK(std::stoull(field(recs[0], "bytes_out")) > 23);
  CHECK(all.size() == 2);
}

TEST_CASE("exchange record: pipelined requests leave one record each, in order", "[record]") {
  RecordEnv env;
  std::vector<std::string> ids;
  std::string batch;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(marker("REC"));
    batch += make_request("GET", "/p" + std::to_string(i), i == 2 ? "nowhere.test" : "rec.test", {id_header(ids.back())});
  }
  Client c(env.berth->port());
  REQUIRE(c.send(batch));
  for (int i = 0; i < 5; ++i) {
    Response r = c.read_response();
    CHECK(r.status == (i == 2 ? 404 : 200));
  }
  c.close();
  auto all = env.stop_and_read();
  REQUIRE(all.size() == 5);
  for (int i = 0; i < 5; ++i) {
    INFO("request " << i);
    CHECK(field(all[static_cast<size_t>(i)], "request_id") == ids[static_cast<size_t>(i)]);
    CHECK(field(all[static_cast<size_t>(i)], "end") == (i == 2 ? "local_reply" : "responded"));
  }
}

TEST_CASE("exchange record: a pipelined request's time includes its wait behind the one before it", "[record]") {
  RecordEnv env;
  const std::string slow = marker("REC"), queued = marker("REC");
  Client c(env.berth->port());
  REQUIRE(c.send(make_request("GET", "/slow?delay_ms=300", "rec.test", {id_header(slow)}) +
                 make_request("GET", "/queued", "rec.test", {id_header(queued)})));
  CHECK(c.read_response().status == 200);
  CHECK(c.read_response().status == 200);
  c.close();
  auto all = env.stop_and_read();
  auto first = records_of(all, slow), second = records_of(all, queued);
  REQUIRE(first.size() == 1);
  REQUIRE(second.size() == 1);
  // Both arrived in one segment: the second's duration runs from then, across the 300 ms the
  // instance took over the first.
  CHECK(std::stod(field(first[0], "duration_ms")) >= 300);
  CHECK(std::stod(field(second[0], "duration_ms")) >= 300);
}

TEST_CASE("exchange record: requests pipelined behind a response the client reset never reach the instance",
          "[record]") {
  RecordEnv env;
  const std::string m = marker("PIPE");
  std::string batch;
  for (const std::string path : {"/0?delay_ms=100", "/1?delay_ms=400", "/2", "/3"})
    batch += make_request("GET", "/" + m + path, "rec.test", {});
  {
    Client c(env.berth->port());
    REQUIRE(c.send(batch));
    CHECK(c.read_response().status == 200);
    const linger abortive{1, 0};
    REQUIRE(::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive) == 0);
  }  // reset while the second response is on its way
  // The second response comes 400 ms later and finds the client gone: its write fails, and the
  // third and fourth requests, read long before, are not sent on.
  std::this_thread::sleep_for(800ms);
  CHECK(env.origin.seen(m) == 2);
  CHECK(env.berth->running());
  auto all = env.stop_and_read();
  CHECK(all.size() == 2);  // one record per request taken up; the last two never were
}
