// Access-log formatting: JSON lines (every field, escaping of control bytes and of bytes that are
// not UTF-8, the tries array), the combined format, RFC 5424 syslog messages and their cut at
// rsyslog's 8096-byte limit. Pure functions: records built by hand, output compared exactly or
// parsed back with nlohmann::json.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <string>

#include "proxy/accesslog/access_log_format.h"

using namespace berth;
using namespace berth::accesslog;

namespace {

// 2026-12-02T07:54:36.123Z
constexpr int64_t kUnixNs = 1'796'198'076'123'456'789;

ExchangeRecord sample_record() {
  ExchangeRecord r;
  r.start_ns = 1'000'000'000;
  r.end_ns = r.start_ns + 12'345'678;  // 12.345 ms
  r.start_unix_ns = kUnixNs;
  r.method = "GET";
  r.head_parsed = true;
  r.host = "shop.test";
  r.path = "/cart";
  r.query = "id=7&x=1";
  r.user_agent = "curl/8.0";
  r.referer = "https://ref.test/";
  r.request_id = "req-1";
  r.version_minor = 1;
  r.client = "127.0.0.1:40000";
  r.route = "shop";
  r.service = "s-shop";
  r.status = 200;
  r.end = ExchangeEnd::kResponded;
  r.bytes_in = 78;
  r.bytes_out = 321;
  r.attempt_count = 2;
  r.attempts[0].instance = "10.0.0.1:80";
  r.attempts[0].container = "web-1";
  r.attempts[0].start_ns = r.start_ns + 100'000;
  r.attempts[0].failure = "upstream-connect-failed";
  r.attempts[1].instance = "10.0.0.2:80";
  r.attempts[1].container = "web-2";
  r.attempts[1].start_ns = r.start_ns + 1'000'000;
  r.attempts[1].connected_ns = r.attempts[1].start_ns + 250'000;   // 0.250 ms
  r.attempts[1].first_byte_ns = r.attempts[1].start_ns + 5'500'000;  // 5.500 ms
  r.attempts[1].status = 200;
  return r;
}

std::string json_line(const ExchangeRecord& r) {
  std::string out;
  append_json_line(out, r);
  return out;
}

std::string json_string(std::string_view s, size_t max = 0) {
  std::string out;
  append_json_string(out, s, max);
  return out;
}

}  // namespace

TEST_CASE("access log: a JSON line has every field, in order, with the tries", "[accesslog]") {
  const std::string line = json_line(sample_record());
  CHECK(line ==
        "{\"time\":\"2026-12-02T07:54:36.123Z\",\"request_id\":\"req-1\",\"client\":\"127.0.0.1:40000\","
        "\"method\":\"GET\",\"host\":\"shop.test\",\"path\":\"/cart\",\"query\":\"id=7&x=1\","
        "\"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes_in\":78,\"bytes_out\":321,\"duration_ms\":12.345,"
        "\"route\":\"shop\",\"service\":\"s-shop\",\"instance\":\"10.0.0.2:80\",\"container\":\"web-2\","
        "\"attempts\":2,\"tries\":["
        "{\"instance\":\"10.0.0.1:80\",\"container\":\"web-1\",\"connect_ms\":null,\"first_byte_ms\":null,"
        "\"status\":0,\"reused\":false,\"failure\":\"upstream-connect-failed\"},"
        "{\"instance\":\"10.0.0.2:80\",\"container\":\"web-2\",\"connect_ms\":0.250,\"first_byte_ms\":5.500,"
        "\"status\":200,\"reused\":false,\"failure\":\"\"}],"
        "\"cause\":\"\",\"end\":\"responded\",\"user_agent\":\"curl/8.0\",\"referer\":\"https://ref.test/\"}\n");
  auto j = nlohmann::json::parse(line);
  CHECK(j["attempts"] == 2);
  CHECK(j["tries"].size() == 2);
}

TEST_CASE("access log: a local reply without a route or an attempt", "[accesslog]") {
  ExchangeRecord r;
  r.start_ns = 5;
  r.end_ns = 5;
  r.start_unix_ns = kUnixNs;
  r.method = "GET";
  r.head_parsed = true;
  r.version_minor = 0;
  r.host = "nowhere.test";
  r.path = "/";
  r.client = "[::1]:5000";
  r.status = 404;
  r.cause = "no-route";
  r.end = ExchangeEnd::kLocalReply;
  auto j = nlohmann::json::parse(json_line(r));
  CHECK(j["protocol"] == "HTTP/1.0");
  CHECK(j["status"] == 404);
  CHECK(j["cause"] == "no-route");
  CHECK(j["route"] == "");
  CHECK(j["service"] == "");
  CHECK(j["instance"] == "");
  CHECK(j["container"] == "");
  CHECK(j["attempts"] == 0);
  CHECK(j["tries"].empty());
  CHECK(j["duration_ms"] == 0.0);
  CHECK(j["end"] == "local_reply");
}

TEST_CASE("access log: a record whose head never parsed", "[accesslog]") {
  ExchangeRecord r;
  r.start_unix_ns = kUnixNs;
  r.client = "127.0.0.1:1";
  r.bytes_in = 22;
  auto j = nlohmann::json::parse(json_line(r));
  CHECK(j["method"] == "");
  CHECK(j["protocol"] == "");
  CHECK(j["status"] == 0);
  CHECK(j["end"] == "client_closed");
}

TEST_CASE("access log: a head that did not parse is named by the standard method it starts with", "[accesslog]") {
  CHECK(leading_method("GET /x HTTP/1.1\r\n") == MethodClass::kGet);
  CHECK(leading_method("OPTIONS * HTTP/1.1") == MethodClass::kOptions);
  CHECK(leading_method("GET") == MethodClass::kOther);  // the token may go on ("GETS ...")
  CHECK(leading_method("get /x HTTP/1.1") == MethodClass::kOther);
  CHECK(leading_method("PROPFIND / HTTP/1.1") == MethodClass::kOther);
  CHECK(leading_method("") == MethodClass::kOther);
  ExchangeRecord r;
  r.note_unparsed_method("PUT /" + std::string(9000, 'u'));
  CHECK(r.method_class == MethodClass::kPut);
  CHECK(r.method == "PUT");
  CHECK_FALSE(r.head_parsed);
  r.clear();
  r.note_unparsed_method("BREW /pot HTTP/1.1");
  CHECK(r.method_class == MethodClass::kOther);
  CHECK(r.method.empty());
}

TEST_CASE("access log: JSON string escaping", "[accesslog][escaping]") {
  CHECK(json_string("plain") == "\"plain\"");
  CHECK(json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_string("\n\r\t\b\f") == "\"\\n\\r\\t\\b\\f\"");
  CHECK(json_string(std::string("\x00\x01\x1f\x7f", 4)) == "\"\\u0000\\u0001\\u001f\\u007f\"");
  // Valid UTF-8 (2, 3 and 4 bytes) is kept as it is.
  CHECK(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  // Bytes that are not UTF-8 become U+FFFD, one per byte: a stray continuation byte, a lone
  // lead byte, an overlong form, a surrogate, a code point past U+10FFFF, a sequence cut short.
  CHECK(json_string("a\x80z") == "\"a\\ufffdz\"");
  CHECK(json_string("a\xc3z") == "\"a\\ufffdz\"");
  CHECK(json_string("\xc0\xaf") == "\"\\ufffd\\ufffd\"");
  CHECK(json_string("\xed\xa0\x80") == "\"\\ufffd\\ufffd\\ufffd\"");
  CHECK(json_string("\xf4\x90\x80\x80") == "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
  CHECK(json_string("\xe2\x82") == "\"\\ufffd\\ufffd\"");
  CHECK(json_string("\xff") == "\"\\ufffd\"");
  // Whatever the bytes, the result parses, and round-trips when they were valid UTF-8.
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  auto parsed = nlohmann::json::parse(json_string(all));
  std::string back = parsed.get<std::string>();
  CHECK(back.substr(0, 128) == all.substr(0, 128));
  const std::string text = "\"k\\\\\"\n\xc3\xa9";
  CHECK(nlohmann::json::parse(json_string(text)).get<std::string>() == text);
}

TEST_CASE("access log: JSON strings shortened at a character boundary", "[accesslog][escaping]") {
  CHECK(json_string("abcdef", 4) == "\"abcd...\"");
  CHECK(json_string("abcd", 4) == "\"abcd\"");
  // "é" is two bytes: a limit falling inside it leaves it out whole.
  CHECK(json_string("ab\xc3\xa9z", 3) == "\"ab...\"");
  CHECK(json_string("ab\xc3\xa9z", 4) == "\"ab\xc3\xa9...\"");
}

TEST_CASE("access log: request strings with hostile bytes still give one valid line", "[accesslog][escaping]") {
  ExchangeRecord r = sample_record();
  r.path = std::string("/a\nb\"c\x01\xff", 8);
  r.user_agent = "x\r\n{\"fake\":1}";
  r.referer = std::string("\0", 1);
  const std::string line = json_line(r);
  CHECK(line.find('\n') == line.size() - 1);
  auto j = nlohmann::json::parse(line);
  CHECK(j["path"] == "/a\nb\"c\x01\xef\xbf\xbd");
  CHECK(j["user_agent"] == "x\r\n{\"fake\":1}");
  CHECK(j["referer"] == std::string("\0", 1));
}

TEST_CASE("access log: the combined format", "[accesslog][combined]") {
  std::string out;
  append_combined_line(out, sample_record());
  CHECK(out ==
        "127.0.0.1 - - [02/Dec/2026:07:54:36 +0000] \"GET /cart?id=7&x=1 HTTP/1.1\" 200 321 "
        "\"https://ref.test/\" \"curl/8.0\"\n");

  ExchangeRecord r;
  r.start_unix_ns = kUnixNs;
  r.client = "[::1]:8080";
  r.method = "POST";
  r.head_parsed = true;
  r.path = "/a\"b";
  r.version_minor = 0;
  r.user_agent = "ua\x01\xc3\xa9";
  r.status = 413;
  out.clear();
  append_combined_line(out, r);
  CHECK(out == "::1 - - [02/Dec/2026:07:54:36 +0000] \"POST /a\\\"b HTTP/1.0\" 413 - \"-\" \"ua\\x01\\xc3\\xa9\"\n");

  ExchangeRecord headless;  // the request head never parsed
  headless.start_unix_ns = kUnixNs;
  headless.client = "127.0.0.1:9";
  out.clear();
  append_combined_line(out, headless);
  CHECK(out == "127.0.0.1 - - [02/Dec/2026:07:54:36 +0000] \"-\" 0 - \"-\" \"-\"\n");

  // A head that did not parse names its standard method in JSON, but it has no request line:
  // "-", and no protocol.
  headless.method = "GET";
  out.clear();
  append_combined_line(out, headless);
  CHECK(out == "127.0.0.1 - - [02/Dec/2026:07:54:36 +0000] \"-\" 0 - \"-\" \"-\"\n");
  out.clear();
  append_json_line(out, headless, 0);
  CHECK(out.find(",\"method\":\"GET\",") != std::string::npos);
  CHECK(out.find(",\"protocol\":\"\",") != std::string::npos);

  // A client named by X-Forwarded-For without a port: the address alone, IPv6 included.
  for (const char* client : {"2001:db8::9", "203.0.113.5"}) {
    headless.client = client;
    out.clear();
    append_combined_line(out, headless);
    CHECK(out.rfind(std::string(client) + " - - [", 0) == 0);
  }
}

TEST_CASE("access log: RFC 5424 syslog messages", "[accesslog][syslog]") {
  std::string header;
  append_syslog_header(header, kUnixNs, "web host\x01", 4242);
  CHECK(header == "<134>1 2026-12-02T07:54:36.123Z webhost berth 4242 access - ");
  header.clear();
  append_syslog_header(header, kUnixNs, "", 1);
  CHECK(header == "<134>1 2026-12-02T07:54:36.123Z - berth 1 access - ");

  const ExchangeRecord r = sample_record();
  const std::string line = json_line(r);
  std::string msg;
  append_syslog_message(msg, header, line, r, true);
  CHECK(msg == header + line);  // the line's '\n' ends the message
}

TEST_CASE("access log: syslog messages fit in 8096 bytes and stay valid JSON", "[accesslog][syslog]") {
  std::string header;
  append_syslog_header(header, kUnixNs, "h", 1);
  ExchangeRecord r = sample_record();
  r.path = "/" + std::string(5000, 'p');
  r.query = std::string(5000, 'q');
  r.user_agent = std::string(3000, '\x01');  // 6 bytes each once escaped
  const std::string line = json_line(r);
  REQUIRE(line.size() > kSyslogMaxMessage);
  std::string msg;
  append_syslog_message(msg, header, line, r, true);
  REQUIRE(msg.back() == '\n');
  CHECK(msg.size() - 1 <= kSyslogMaxMessage);
  CHECK(msg.rfind(header, 0) == 0);
  auto j = nlohmann::json::parse(msg.substr(header.size()));
  CHECK(j["request_id"] == "req-1");
  CHECK(j["status"] == 200);
  CHECK(j["path"].get<std::string>().size() < 600);
  CHECK(j["path"].get<std::string>().substr(j["path"].get<std::string>().size() - 3) == "...");

  // Combined lines are cut at a character boundary (no half UTF-8 sequence).
  ExchangeRecord c = sample_record();
  c.path = "/" + std::string(9000, 'x');
  std::string combined;
  append_combined_line(combined, c);
  msg.clear();
  append_syslog_message(msg, header, combined, c, false);
  CHECK(msg.size() - 1 == kSyslogMaxMessage);
  CHECK(msg.find('\n') == msg.size() - 1);

  // ...and never inside an escape (\xHH for a byte outside ASCII, \" or \\), at every offset.
  auto escapes_whole = [](std::string_view text) {
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '\\') continue;
      const size_t last = i + (i + 1 < text.size() && text[i + 1] == 'x' ? 3 : 1);  // the escape's last byte
      if (last >= text.size()) return false;
      i = last;
    }
    return true;
  };
  for (const std::string unit : {"\xc3\xa9", "\"", "\\"}) {
    for (size_t pad = 0; pad < 8; ++pad) {
      c.path = "/" + std::string(pad, 'p');
      c.user_agent.clear();
      for (int i = 0; i < 9000; ++i) c.user_agent += unit;
      combined.clear();
      append_combined_line(combined, c);
      msg.clear();
      append_syslog_message(msg, header, combined, c, false);
      INFO("unit " << unit << ", pad " << pad);
      CHECK(msg.size() - 1 <= kSyslogMaxMessage);
      CHECK(msg.size() - 1 > kSyslogMaxMessage - 4);
      CHECK(escapes_whole(std::string_view(msg).substr(header.size(), msg.size() - 1 - header.size())));
    }
  }
}

TEST_CASE("access log: long strings are escaped the same wherever the special byte is", "[accesslog][escaping]") {
  // Plain runs are copied eight bytes at a time: put each kind of byte that needs care at every
  // position of a 40-byte string and compare with the byte-by-byte rule.
  const std::string specials[] = {"\"", "\\", "\n", std::string("\x01", 1), "\x7f", "\x80", "\xc3\xa9", " ", "~"};
  const std::string escaped[] = {"\\\"", "\\\\", "\\n", "\\u0001", "\\u007f", "\\ufffd", "\xc3\xa9", " ", "~"};
  for (size_t k = 0; k < std::size(specials); ++k) {
    for (size_t at = 0; at <= 40; ++at) {
      const std::string s = std::string(at, 'a') + specials[k] + std::string(40 - at, 'b');
      CHECK(json_string(s) == "\"" + std::string(at, 'a') + escaped[k] + std::string(40 - at, 'b') + "\"");
    }
  }
  // Limits inside a long plain run, and right before a character that does not fit.
  CHECK(json_string(std::string(100, 'a'), 50) == "\"" + std::string(50, 'a') + "...\"");
  CHECK(json_string(std::string(17, 'a'), 16) == "\"" + std::string(16, 'a') + "...\"");
  CHECK(json_string(std::string(16, 'a'), 16) == "\"" + std::string(16, 'a') + "\"");
  CHECK(json_string(std::string(15, 'a') + "\xc3\xa9", 16) == "\"" + std::string(15, 'a') + "...\"");
  CHECK(json_string(std::string(15, 'a') + "\n", 16) == "\"" + std::string(15, 'a') + "\\n\"");
}

