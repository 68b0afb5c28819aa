// The readiness datagrams Berth sends to systemd and how $NOTIFY_SOCKET is read.
#include <catch2/catch.hpp>

#include <cstddef>
#include <string>

#include "proxy/control/service_notify.h"

using namespace berth::notify;

TEST_CASE("notify: the datagrams are newline-separated assignments", "[notify]") {
  CHECK(ready_message() == "READY=1\n");
  CHECK(ready_message("serving") == "READY=1\nSTATUS=serving\n");
  CHECK(reloading_message(123456789) == "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=123456789\n");
  CHECK(stopping_message() == "STOPPING=1\nSTATUS=draining\n");
}

TEST_CASE("notify: MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds", "[notify]") {
  uint64_t a = monotonic_usec();
  uint64_t b = monotonic_usec();
  CHECK(a > 0);
  CHECK(b >= a);
}

TEST_CASE("notify: $NOTIFY_SOCKET as a path or an abstract name", "[notify]") {
  sockaddr_un addr{};
  socklen_t len = 0;
  const size_t base = offsetof(sockaddr_un, sun_path);

  REQUIRE(socket_address("/run/systemd/notify", addr, len));
  CHECK(addr.sun_family == AF_UNIX);
  CHECK(std::string(addr.sun_path) == "/run/systemd/notify");
  CHECK(len == base + sizeof("/run/systemd/notify"));  // the path and its NUL

  REQUIRE(socket_address("@berth/notify", addr, len));
  CHECK(addr.sun_path[0] == '\0');
  CHECK(std::string(addr.sun_path + 1, 12) == "berth/notify");
  CHECK(len == base + 13);  // leading NUL + name, no terminator

  for (const char* bad : {"", "/", "@", "relative/path", "notify"}) {
    INFO(bad);
    CHECK_FALSE(socket_address(bad, addr, len));
  }
  std::string longest_path = "/" + std::string(sizeof(addr.sun_path) - 2, 'p');
  CHECK(socket_address(longest_path, addr, len));
  CHECK_FALSE(socket_address(longest_path + "p", addr, len));
  std::string longest_abstract = "@" + std::string(sizeof(addr.sun_path) - 1, 'a');
  CHECK(socket_address(longest_abstract, addr, len));
  CHECK_FALSE(socket_address(longest_abstract + "a", addr, len));
}
