// The access_log section of the config file: defaults, every value, and each bad value refused
// with its file:line:column.
#include <catch2/catch.hpp>

#include <vector>

#include "tests/unit/config_helpers.h"

using namespace berth::config;
using namespace berth::config::testing;

namespace {
const std::string kHead = "listeners: [\"127.0.0.1:8080\"]\n";
}

TEST_CASE("access log config: off when absent", "[config][accesslog]") {
  LoadResult r = load(kHead);
  REQUIRE(r.ok());
  CHECK_FALSE(r.config->access_log.enabled);
}

TEST_CASE("access log config: an empty section is JSON lines on stdout", "[config][accesslog]") {
  LoadResult r = load(kHead + "access_log:\n");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const AccessLog& a = r.config->access_log;
  CHECK(a.enabled);
  CHECK(a.format == AccessLog::Format::kJson);
  CHECK(a.path == "-");
  CHECK(a.syslog_kind == AccessLog::Syslog::kNone);
}

TEST_CASE("access log config: every value", "[config][accesslog]") {
  LoadResult r = load(kHead + "access_log:\n  format: combined\n  path: /var/log/berth/access.log\n"
                              "  syslog: \"tcp://127.0.0.1:5514\"\n");
  INFO(all_errors(r));
  REQUIRE(r.ok());
  const AccessLog& a = r.config->access_log;
  CHECK(a.format == AccessLog::Format::kCombined);
  CHECK(a.path == "/var/log/berth/access.log");
  CHECK(a.syslog == "tcp://127.0.0.1:5514");
  CHECK(a.syslog_kind == AccessLog::Syslog::kTcp);
  CHECK(a.syslog_address.to_string() == "127.0.0.1:5514");

  r = load(kHead + "access_log: {syslog: \"udp://[::1]:514\"}\n");
  REQUIRE(r.ok());
  CHECK(r.config->access_log.syslog_kind == AccessLog::Syslog::kUdp);
  CHECK(r.config->access_log.syslog_address.ipv6);
  CHECK(r.config->access_log.path.empty());  // syslog only: no stdout lines

  r = load(kHead + "access_log: {syslog: \"unix:///dev/log\", path: \"-\"}\n");
  REQUIRE(r.ok());
  CHECK(r.config->access_log.syslog_kind == AccessLog::Syslog::kUnix);
  CHECK(r.config->access_log.syslog_socket == "/dev/log");
  CHECK(r.config->access_log.path == "-");

  // As in the example: syslog "" is no syslog.
  r = load(kHead + "access_log:\n  format: json\n  path: \"-\"\n  syslog: \"\"\n");
  REQUIRE(r.ok());
  CHECK(r.config->access_log.syslog_kind == AccessLog::Syslog::kNone);
  CHECK(r.config->access_log.path == "-");
}

namespace {
struct BadCase {
  const char* yaml;  // after the listeners line (line 2 on)
  int line, column;
  const char* message;
};
const std::vector<BadCase> kBad = {
    {"access_log:\n  format: xml\n", 3, 11, "access_log.format: expected json or combined, got 'xml'"},
    {"access_log:\n  syslog: \"udp://example.com:514\"\n", 3, 11,
     "access_log.syslog: expected \"udp://ip:port\", \"tcp://ip:port\" or \"unix:///path\" (such as "
     "unix:///dev/log), got 'udp://example.com:514' (the host must be a numeric IP address and the port 1-65535)"},
    {"access_log:\n  syslog: \"tcp://127.0.0.1:0\"\n", 3, 11,
     "access_log.syslog: expected \"udp://ip:port\", \"tcp://ip:port\" or \"unix:///path\" (such as "
     "unix:///dev/log), got 'tcp://127.0.0.1:0' (the host must be a numeric IP address and the port 1-65535)"},
    {"access_log:\n  syslog: \"syslog://127.0.0.1:514\"\n", 3, 11,
     "access_log.syslog: expected \"udp://ip:port\", \"tcp://ip:port\" or \"unix:///path\" (such as "
     "unix:///dev/log), got 'syslog://127.0.0.1:514'"},
    {"access_log:\n  syslog: \"unix://dev/log\"\n", 3, 11,
     "access_log.syslog: expected \"udp://ip:port\", \"tcp://ip:port\" or \"unix:///path\" (such as "
     "unix:///dev/log), got 'unix://dev/log'"},
    {"access_log:\n  path: [a, b]\n", 3, 9, "access_log.path: expected a string, got a list"},
    {"access_log:\n  file: /tmp/x\n", 3, 3,
     "unknown key 'file' in access_log (expected one of: format, path, syslog)"},
    {"access_log: json\n", 2, 13, "access_log: expected a map with 'format', 'path' and/or 'syslog', got 'json'"},
    {"access_log:\n  path: \"\"\n", 3, 3,
     "access_log: 'path' and 'syslog' are both empty; set one (\"-\" is stdout) or remove access_log"},
};
}  // namespace

TEST_CASE("access log config: bad values are refused at their place", "[config][accesslog][errors]") {
  const BadCase& c = GENERATE(from_range(kBad));
  LoadResult r = load(kHead + c.yaml);
  INFO(c.yaml << "errors:\n" << all_errors(r));
  CHECK_FALSE(r.ok());
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message == c.message);
  CHECK(r.errors[0].line == c.line);
  CHECK(r.errors[0].column == c.column);
}
