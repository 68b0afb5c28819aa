// The client address: the peer, or behind trusted proxies the right-most untrusted
// X-Forwarded-For entry; and the trusted_proxies config key.
#include <arpa/inet.h>
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "config_helpers.h"
#include "proxy/net/client_address.h"

using namespace berth;
using berth::config::testing::all_errors;
using berth::config::testing::load;

namespace {

std::vector<config::Cidr> ranges(std::initializer_list<const char*> texts) {
  std::vector<config::Cidr> out;
  for (const char* t : texts) {
    auto c = config::parse_cidr(t);
    REQUIRE(c);
    out.push_back(*c);
  }
  return out;
}

ClientAddress ip(const char* text) {
  ClientAddress a;
  REQUIRE(parse_client_ip(text, a));
  return a;
}

// The resolved address's text and how many entries were walked.
std::pair<std::string, size_t> resolve(const char* peer, const std::vector<config::Cidr>& trusted,
                                       std::vector<std::string_view> xff) {
  ResolvedClient r = resolve_client_address(ip(peer), trusted, xff);
  return {std::string(r.address.text()), r.entries_used};
}

using Result = std::pair<std::string, size_t>;

}  // namespace

TEST_CASE("client address: a peer's text is what inet_ntop writes", "[client_address]") {
  // Every octet value in every position, and the longest and shortest forms.
  std::vector<std::array<uint8_t, 4>> cases = {{0, 0, 0, 0}, {255, 255, 255, 255}, {127, 0, 0, 1},
                                               {10, 9, 99, 100}, {1, 22, 203, 0}};
  for (unsigned v = 0; v < 256; ++v) {
    const auto b = static_cast<uint8_t>(v);
    cases.push_back({b, static_cast<uint8_t>(255 - v), static_cast<uint8_t>(v * 7), b});
  }
  for (const auto& bytes : cases) {
    ConnectionInfo conn;
    conn.peer_ip.family = 4;
    std::memcpy(conn.peer_ip.bytes, bytes.data(), 4);
    char expected[INET_ADDRSTRLEN];
    REQUIRE(inet_ntop(AF_INET, bytes.data(), expected, sizeof expected));
    const ClientAddress a = peer_address(conn);
    CHECK(a.text() == std::string_view(expected));
    CHECK(std::string_view(conn.peer_ip.text()) == std::string_view(expected));
    ClientAddress parsed;
    REQUIRE(parse_client_ip(expected, parsed));
    CHECK(parsed.text() == std::string_view(expected));
  }
  ConnectionInfo v6;
  v6.peer_ip.family = 6;
  v6.peer_ip.bytes[15] = 1;
  CHECK(peer_address(v6).text() == "::1");
  CHECK(peer_address(ConnectionInfo{}).text().empty());
}

TEST_CASE("client address: an address with a NUL inside is not an address", "[client_address]") {
  using namespace std::string_literals;
  ClientAddress a;
  CHECK_FALSE(parse_client_ip("1.2.3.4\0junk"s, a));
  CHECK_FALSE(parse_client_ip("1.2.3.4\0"s, a));
  CHECK_FALSE(parse_client_ip("::1\0"s, a));
  CHECK(parse_client_ip("1.2.3.4", a));
}

TEST_CASE("client address: forwarded entries with and without ports", "[client_address]") {
  ClientAddress a;
  REQUIRE(parse_forwarded_entry(" 1.2.3.4 ", a));
  CHECK(a.text() == "1.2.3.4");
  CHECK(a.family == 4);
  CHECK(a.port == 0);
  REQUIRE(parse_forwarded_entry("1.2.3.4:5678", a));
  CHECK(a.text() == "1.2.3.4");
  CHECK(a.port == 5678);
  REQUIRE(parse_forwarded_entry("2001:db8::1", a));
  CHECK(a.text() == "2001:db8::1");
  CHECK(a.family == 6);
  REQUIRE(parse_forwarded_entry("[2001:DB8::1]:443", a));
  CHECK(a.text() == "2001:db8::1");  // written the canonical way
  CHECK(a.port == 443);
  REQUIRE(parse_forwarded_entry("[::1]", a));
  CHECK(a.text() == "::1");

  for (const char* bad : {"", "unknown", "host.example:80", "1.2.3.4:", "1.2.3.4:99999", "1.2.3.4:8x",
                          "[1.2.3.4]:80", "[::1", "[::1]x", "[::1]:", "1.2.3", "256.1.1.1", "1:2", "_hidden"}) {
    INFO(bad);
    CHECK_FALSE(parse_forwarded_entry(bad, a));
  }
}

TEST_CASE("client address: an untrusted peer is the client whatever it claims", "[client_address]") {
  CHECK(resolve("198.51.100.7", {}, {"1.2.3.4"}) == Result{"198.51.100.7", 0});
  const auto trusted = ranges({"10.0.0.0/8"});
  CHECK(resolve("198.51.100.7", trusted, {"10.1.1.1, 1.2.3.4"}) == Result{"198.51.100.7", 0});
  // A trusted peer with no header is the client itself.
  CHECK(resolve("10.0.0.2", trusted, {}) == Result{"10.0.0.2", 0});
}

TEST_CASE("client address: the right-most untrusted entry behind trusted proxies", "[client_address]") {
  const auto trusted = ranges({"10.0.0.0/8", "127.0.0.1/32"});
  CHECK(resolve("127.0.0.1", trusted, {"203.0.113.5"}) == Result{"203.0.113.5", 1});
  // The client's own claims left of the first untrusted entry are ignored.
  CHECK(resolve("127.0.0.1", trusted, {"6.6.6.6, 203.0.113.5, 10.2.3.4"}) == Result{"203.0.113.5", 2});
  // Several header lines are one list, in order.
  CHECK(resolve("10.0.0.1", trusted, {"6.6.6.6, 203.0.113.5", "10.9.9.9"}) == Result{"203.0.113.5", 2});
  CHECK(resolve("10.0.0.1", trusted, {"6.6.6.6", "203.0.113.5,10.9.9.9"}) == Result{"203.0.113.5", 2});
  // Ports in entries are accepted; empty list elements skipped.
  CHECK(resolve("10.0.0.1", trusted, {"203.0.113.5:4711, ,10.1.1.1:80"}) == Result{"203.0.113.5", 2});
}

TEST_CASE("client address: every entry trusted gives the left-most", "[client_address]") {
  const auto trusted = ranges({"10.0.0.0/8"});
  CHECK(resolve("10.0.0.1", trusted, {"10.3.3.3, 10.2.2.2"}) == Result{"10.3.3.3", 2});
}

TEST_CASE("client address: a malformed entry stops at the last good hop", "[client_address]") {
  const auto trusted = ranges({"10.0.0.0/8"});
  CHECK(resolve("10.0.0.1", trusted, {"203.0.113.5, unknown"}) == Result{"10.0.0.1", 0});
  CHECK(resolve("10.0.0.1", trusted, {"203.0.113.5, garbage, 10.4.4.4"}) == Result{"10.4.4.4", 1});
  CHECK(resolve("10.0.0.1", trusted, {"1.2.3.4:"}) == Result{"10.0.0.1", 0});
}

TEST_CASE("client address: IPv6 peers, entries and ranges", "[client_address]") {
  const auto trusted = ranges({"2001:db8::/32", "::1"});
  CHECK(resolve("::1", trusted, {"2001:db9::5, 2001:db8::7"}) == Result{"2001:db9::5", 2});
  CHECK(resolve("::1", trusted, {"[2001:db9::5]:1234"}) == Result{"2001:db9::5", 1});
  CHECK(resolve("2001:db9::1", trusted, {"1.2.3.4"}) == Result{"2001:db9::1", 0});
  // An IPv4-mapped peer is checked against IPv4 ranges.
  CHECK(resolve("::ffff:10.0.0.1", ranges({"10.0.0.0/8"}), {"203.0.113.5"}) == Result{"203.0.113.5", 1});
}

TEST_CASE("client address: the kept X-Forwarded-For tail", "[client_address]") {
  std::vector<std::string_view> xff = {"6.6.6.6, 203.0.113.5", " 10.9.9.9 "};
  std::string out;
  append_forwarded_tail(xff, 2, out);
  CHECK(out == "203.0.113.5, 10.9.9.9");
  out.clear();
  append_forwarded_tail(xff, 0, out);
  CHECK(out.empty());
  append_forwarded_tail(xff, 9, out);
  CHECK(out == "6.6.6.6, 203.0.113.5, 10.9.9.9");
}

TEST_CASE("config: trusted_proxies", "[config][client_address]") {
  auto ok = load("listeners: [\"127.0.0.1:0\"]\ntrusted_proxies: [\"10.0.0.0/8\", \"127.0.0.1/32\", \"::1\"]\n");
  INFO(all_errors(ok));
  REQUIRE(ok.ok());
  REQUIRE(ok.config->trusted_proxies.size() == 3);
  CHECK(ok.config->trusted_proxies[0].text == "10.0.0.0/8");
  CHECK(ok.config->trusted_proxies[2].ipv6);

  auto none = load("listeners: [\"127.0.0.1:0\"]\n");
  REQUIRE(none.ok());
  CHECK(none.config->trusted_proxies.empty());

  auto bad = load("listeners: [\"127.0.0.1:0\"]\ntrusted_proxies:\n  - 10.0.0.0/8\n  - 10.0.0.1:80\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(all_errors(bad).find("t.yaml:4:5: trusted_proxies[1]: invalid address range '10.0.0.1:80'") !=
        std::string::npos);
  auto not_list = load("listeners: [\"127.0.0.1:0\"]\ntrusted_proxies: 10.0.0.0/8\n");
  REQUIRE_FALSE(not_list.ok());
  CHECK(all_errors(not_list).find("t.yaml:2:") != std::string::npos);
}

TEST_CASE("config: ranges an operator may write that must not fail open", "[config][client_address]") {
  // A signed prefix: from_chars alone read "-0" as /0 (everyone) and "-8" as a single host.
  for (const char* text : {"192.0.2.0/-0", "10.0.0.0/-8", "2001:db8::/-64", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/33",
                           "::/129", "::ffff:10.0.0.0/80"}) {
    INFO(text);
    CHECK_FALSE(config::parse_cidr(text));
  }
  // An IPv4-mapped range is the IPv4 range: clients are matched as IPv4, so kept as IPv6 a deny
  // written this way matched nobody, and an allow refused everyone.
  const auto mapped = config::parse_cidr("::ffff:10.0.0.0/104");
  REQUIRE(mapped);
  CHECK_FALSE(mapped->ipv6);
  CHECK(mapped->prefix == 8);
  const ClientAddress ten = ip("10.1.2.3"), other = ip("11.0.0.1");
  const uint8_t ten_mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};  // as a socket names it
  CHECK(mapped->contains(ten.addr, false));
  CHECK(mapped->contains(ten_mapped, true));
  // Parsed from text (a PROXY header, X-Forwarded-For), a mapped address is the IPv4 one.
  CHECK(ip("::ffff:10.1.2.3").family == 4);
  CHECK(std::string(ip("::ffff:10.1.2.3").ip) == "10.1.2.3");
  CHECK_FALSE(mapped->contains(other.addr, false));
  const auto one = config::parse_cidr("::ffff:127.0.0.1");
  REQUIRE(one);
  CHECK_FALSE(one->ipv6);
  CHECK(one->prefix == 32);
  CHECK(one->text == "::ffff:127.0.0.1");  // as written, for messages

  // An empty allow or proxy_protocol_from would mean "any address": refused with its line.
  auto empty_allow = load("listeners: [\"127.0.0.1:0\"]\nroutes:\n  - service: s\n    access: {allow: []}\n"
                          "services:\n  s: {endpoints: [\"127.0.0.1:9\"]}\n");
  REQUIRE_FALSE(empty_allow.ok());
  CHECK(all_errors(empty_allow).find("t.yaml:4:21: routes[0].access.allow: an empty list would let every address in") !=
        std::string::npos);
  auto empty_from = load("listeners:\n  - {address: \"127.0.0.1:0\", proxy_protocol: true, proxy_protocol_from: []}\n");
  REQUIRE_FALSE(empty_from.ok());
  CHECK(all_errors(empty_from).find("an empty list would let every address in") != std::string::npos);
  // So would an empty methods list (every method), under access or match.
  auto empty_methods = load("listeners: [\"127.0.0.1:0\"]\nroutes:\n  - service: s\n    access: {methods: []}\n"
                            "  - {host: m.test, service: s, match: {methods: []}}\n"
                            "services:\n  s: {endpoints: [\"127.0.0.1:9\"]}\n");
  REQUIRE_FALSE(empty_methods.ok());
  INFO(all_errors(empty_methods));
  CHECK(all_errors(empty_methods).find("t.yaml:4:23: routes[0].access.methods: must not be empty") != std::string::npos);
  CHECK(all_errors(empty_methods).find("t.yaml:5:49: routes[1].match.methods: must not be empty") != std::string::npos);
  // An empty deny or trusted_proxies lets nobody through that would not pass anyway.
  auto empty_deny = load("listeners: [\"127.0.0.1:0\"]\ntrusted_proxies: []\nroutes:\n  - service: s\n"
                         "    access: {deny: []}\nservices:\n  s: {endpoints: [\"127.0.0.1:9\"]}\n");
  INFO(all_errors(empty_deny));
  CHECK(empty_deny.ok());
}

TEST_CASE("config: an IPv4 range holds exactly the addresses whose first prefix bits match", "[config][client_address]") {
  // Against a bit-by-bit reference, for every prefix length, at the range's edges and just past
  // them, and for the IPv4-mapped IPv6 form of each address.
  const auto bit = [](uint32_t v, int i) { return (v >> (31 - i)) & 1u; };
  const auto bytes_of = [](uint32_t v, uint8_t (&out)[4]) {
    for (int i = 0; i < 4; ++i) out[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  const uint32_t bases[] = {0x00000000u, 0xFFFFFFFFu, 0x0A0B0C0Du, 0xC0A80101u, 0x80000000u};
  for (uint32_t base : bases) {
    for (int prefix = 0; prefix <= 32; ++prefix) {
      uint8_t b[4];
      bytes_of(base, b);
      char text[32];
      std::snprintf(text, sizeof text, "%u.%u.%u.%u/%d", b[0], b[1], b[2], b[3], prefix);
      const auto range = config::parse_cidr(text);
      REQUIRE(range);
      const uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
      const uint32_t lo = base & mask, hi = lo | ~mask;
      for (uint32_t a : {lo, hi, lo - 1, hi + 1, base ^ 1u, base ^ 0x80000000u}) {
        bool expected = true;
        for (int i = 0; i < prefix; ++i) expected = expected && bit(a, i) == bit(base, i);
        uint8_t v4[4];
        bytes_of(a, v4);
        uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        std::memcpy(mapped + 12, v4, 4);
        INFO(text << " against " << unsigned{v4[0]} << "." << unsigned{v4[1]} << "." << unsigned{v4[2]} << "." << unsigned{v4[3]});
        CHECK(range->contains(v4, false) == expected);
        CHECK(range->contains(mapped, true) == expected);
        CHECK(config::any_contains(ranges({"2001:db8::/32"}), v4, false) == false);
      }
    }
  }
}
