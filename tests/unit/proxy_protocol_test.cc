// The PROXY protocol header parser, fed whole and byte by byte; and the listener key.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "config_helpers.h"
#include "fuzz_helpers.h"
#include "proxy/net/proxy_protocol.h"

using namespace berth;
using berth::config::testing::all_errors;
using berth::config::testing::load;
using Status = ProxyHeaderParser::Status;

namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string v2(uint8_t ver_cmd, uint8_t family, const std::string& body) {
  std::string h = kSig;
  h.push_back(static_cast<char>(ver_cmd));
  h.push_back(static_cast<char>(family));
  h.push_back(static_cast<char>(body.size() >> 8));
  h.push_back(static_cast<char>(body.size() & 0xff));
  return h + body;
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

struct Fed {
  Status status;
  size_t used;  // header bytes consumed in total
};

// The whole input in one read.
Fed feed_whole(ProxyHeaderParser& p, const std::string& in) {
  size_t used = 0;
  Status s = p.feed(in.data(), in.size(), used);
  return {s, used};
}

// One byte per read: the status after each, and where it stopped.
Fed feed_bytewise(ProxyHeaderParser& p, const std::string& in) {
  size_t total = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    size_t used = 0;
    Status s = p.feed(in.data() + i, 1, used);
    total += used;
    if (s != Status::kNeedMore) return {s, total};
    REQUIRE(used == 1);
  }
  return {Status::kNeedMore, total};
}

// The verdict must not depend on how the bytes are split.
void check_both(const std::string& in, Status want, size_t want_used, const char* want_ip = nullptr,
                uint16_t want_port = 0, uint16_t want_dport = 0) {
  for (int mode = 0; mode < 2; ++mode) {
    INFO((mode == 0 ? "whole" : "byte by byte"));
    ProxyHeaderParser p;
    Fed f = mode == 0 ? feed_whole(p, in) : feed_bytewise(p, in);
    CHECK(f.status == want);
    if (want == Status::kDone) {
      CHECK(f.used == want_used);
      CHECK(p.has_source() == (want_ip != nullptr));
      if (want_ip) {
        CHECK(p.source().text() == want_ip);
        CHECK(p.source().port == want_port);
        CHECK(p.destination_port() == want_dport);
      }
    }
    if (want == Status::kInvalid) CHECK(std::string(p.error()).size() > 0);
  }
}

}  // namespace

TEST_CASE("PROXY v1: TCP4, TCP6 and UNKNOWN", "[proxy_protocol]") {
  const std::string tcp4 = "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n";
  check_both(tcp4 + "GET / HTTP/1.1\r\n", Status::kDone, tcp4.size(), "203.0.113.7", 56324, 443);
  const std::string tcp6 = "PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n";
  check_both(tcp6, Status::kDone, tcp6.size(), "2001:db8::7", 1, 65535);
  check_both("PROXY UNKNOWN\r\n", Status::kDone, 15);
  check_both("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", Status::kDone, 35);
}

TEST_CASE("PROXY v1: the bytes after the header are left for the next protocol", "[proxy_protocol]") {
  ProxyHeaderParser p;
  const std::string in = "PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\nGET";
  size_t used = 0;
  REQUIRE(p.feed(in.data(), in.size(), used) == Status::kDone);
  CHECK(in.substr(used) == "GET");
  // Once done, further bytes are not the parser's.
  CHECK(p.feed("more", 4, used) == Status::kDone);
  CHECK(used == 0);
}

TEST_CASE("PROXY v1: malformed headers", "[proxy_protocol]") {
  for (const char* bad : {
           "GET / HTTP/1.1\r\n",                                    // no header at all
           "PROXY\r\n",                                             // "PROXY " cut short
           "PROXX TCP4 1.2.3.4 1.2.3.5 1 2\r\n",                    // wrong word
           "PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n",                      // LF without CR
           "PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n",                    // unknown protocol
           "PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n",                      // a port missing
           "PROXY TCP4 1.2.3.4 1.2.3.5 1 2 3\r\n",                  // a field too many
           "PROXY TCP4  1.2.3.4 1.2.3.5 1 2\r\n",                   // two spaces
           "PROXY TCP4 2001:db8::1 1.2.3.5 1 2\r\n",                // IPv6 under TCP4
           "PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n",                // IPv4 under TCP6
           "PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n",                // port too large
           "PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n",                   // leading zero
           "PROXY TCP4 1.2.3.4 1.2.3.5 -1 2\r\n",                   // sign
           "PROXY TCP4 host.example 1.2.3.5 1 2\r\n",               // a name
       }) {
    INFO(bad);
    check_both(bad, Status::kInvalid, 0);
  }
  // A NUL inside an address: the address is not "1.2.3.4" (a C string would stop there).
  using namespace std::string_literals;
  check_both("PROXY TCP4 1.2.3.4\0junk 1.2.3.5 1 2\r\n"s, Status::kInvalid, 0);
  check_both("PROXY TCP4 1.2.3.4 1.2.3.5\0 1 2\r\n"s, Status::kInvalid, 0);
}

TEST_CASE("PROXY v1: at most 107 bytes", "[proxy_protocol]") {
  // The longest valid line is 107 bytes (TCP6 with full addresses and 5-digit ports).
  const std::string a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe";
  const std::string longest = "PROXY TCP6 " + a + " " + a + " 65535 65535\r\n";
  REQUIRE(longest.size() == 104);
  check_both(longest, Status::kDone, longest.size(), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535, 65535);
  check_both("PROXY UNKNOWN " + std::string(91, 'x') + "\r\n", Status::kDone, 107);
  // One byte more, and no line end within the bound: refused before a 108th byte is taken.
  check_both("PROXY UNKNOWN " + std::string(92, 'x') + "\r\n", Status::kInvalid, 0);
  ProxyHeaderParser p;
  const std::string endless(500, 'P');
  size_t used = 0;
  CHECK(p.feed(endless.data(), endless.size(), used) == Status::kInvalid);
}

TEST_CASE("PROXY v2: TCP4, TCP6, LOCAL and TLVs", "[proxy_protocol]") {
  const std::string tcp4 = v2(0x21, 0x11, bytes({203, 0, 113, 9, 192, 0, 2, 1, 0xDB, 0xF4, 0x01, 0xBB}));
  check_both(tcp4 + "GET", Status::kDone, tcp4.size(), "203.0.113.9", 56308, 443);

  std::string addrs6 = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42});
  addrs6 += bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01});
  addrs6 += bytes({0x30, 0x39, 0x01, 0xBB});
  const std::string tcp6 = v2(0x21, 0x21, addrs6);
  check_both(tcp6, Status::kDone, tcp6.size(), "2001:db8::42", 12345, 443);

  // TLVs after the addresses are skipped (here a 300-byte one), whatever the split.
  std::string tlv = bytes({0x04, 0x01, 0x2C}) + std::string(300, 'z');
  const std::string with_tlv = v2(0x21, 0x11, bytes({10, 1, 2, 3, 10, 0, 0, 1, 0, 80, 0, 81}) + tlv);
  check_both(with_tlv + "X", Status::kDone, with_tlv.size(), "10.1.2.3", 80, 81);

  // LOCAL (a health check from the balancer itself): the peer stays.
  const std::string local = v2(0x20, 0x00, "");
  check_both(local, Status::kDone, 16);
  check_both(v2(0x20, 0x11, bytes({1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2})), Status::kDone, 28);
  // PROXY with UNSPEC: nothing to take either.
  check_both(v2(0x21, 0x00, ""), Status::kDone, 16);
}

TEST_CASE("PROXY v2: malformed headers", "[proxy_protocol]") {
  std::string bad_sig = v2(0x21, 0x11, std::string(12, '\0'));
  bad_sig[7] = 'X';
  check_both(bad_sig, Status::kInvalid, 0);
  check_both(v2(0x11, 0x11, std::string(12, '\0')), Status::kInvalid, 0);   // version 1 in v2 form
  check_both(v2(0x22, 0x11, std::string(12, '\0')), Status::kInvalid, 0);   // unknown command
  check_both(v2(0x21, 0x11, std::string(11, '\0')), Status::kInvalid, 0);   // TCP4 too short
  check_both(v2(0x21, 0x21, std::string(35, '\0')), Status::kInvalid, 0);   // TCP6 too short
  check_both(v2(0x21, 0x12, std::string(12, '\0')), Status::kInvalid, 0);   // UDP
  check_both(v2(0x21, 0x31, std::string(216, '\0')), Status::kInvalid, 0);  // UNIX stream
  // A declared length over the bound is refused at once, before its bytes are waited for.
  std::string huge = kSig + bytes({0x21, 0x11, 0x08, 0x01});
  ProxyHeaderParser p;
  size_t used = 0;
  CHECK(p.feed(huge.data(), huge.size(), used) == Status::kInvalid);
}

TEST_CASE("PROXY v2: incomplete input waits", "[proxy_protocol]") {
  const std::string tcp4 = v2(0x21, 0x11, bytes({1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}));
  for (size_t cut = 1; cut < tcp4.size(); ++cut) {
    ProxyHeaderParser p;
    size_t used = 0;
    INFO("cut at " << cut);
    CHECK(p.feed(tcp4.data(), cut, used) == Status::kNeedMore);
    CHECK(used == cut);
    CHECK(p.feed(tcp4.data() + cut, tcp4.size() - cut, used) == Status::kDone);
    CHECK(used == tcp4.size() - cut);
    CHECK(p.source().text() == "1.2.3.4");
  }
}

TEST_CASE("config: listeners proxy_protocol", "[config][proxy_protocol]") {
  auto ok = load("listeners:\n  - \"127.0.0.1:0\"\n  - {address: \"127.0.0.1:1\", proxy_protocol: true}\n");
  INFO(all_errors(ok));
  REQUIRE(ok.ok());
  CHECK_FALSE(ok.config->listeners[0].proxy_protocol);
  CHECK(ok.config->listeners[1].proxy_protocol);
  auto bad = load("listeners:\n  - {address: \"127.0.0.1:1\", proxy_protocol: maybe}\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(all_errors(bad).find("t.yaml:2:") != std::string::npos);
}

TEST_CASE("PROXY headers, mutated: one verdict however split, and the header's own length used",
          "[proxy_protocol][fuzz]") {
  std::string addrs6 = bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42});
  addrs6 += addrs6 + bytes({0x30, 0x39, 0x01, 0xBB});
  const std::vector<std::string> seeds = {
      "PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\nGET / HTTP/1.1\r\n",
      "PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\nGET",
      "PROXY UNKNOWN\r\nGET",
      v2(0x21, 0x11, bytes({203, 0, 113, 9, 192, 0, 2, 1, 0xDB, 0xF4, 0x01, 0xBB})) + "GET",
      v2(0x21, 0x21, addrs6) + "GET",
      v2(0x21, 0x11, bytes({10, 1, 2, 3, 10, 0, 0, 1, 0, 80, 0, 81}) + bytes({0x04, 0x00, 0x05}) + "zzzzz") + "GET",
      v2(0x20, 0x00, "") + "GET",
  };
  // Tokens that matter to either version: separators, the v2 signature's bytes, lengths.
  const std::vector<std::string> tokens = {" ", "\r", "\n", "\r\n", ":", ".", "0", "9", "65535", "65536",
                                           "::", "TCP4", "TCP6", "UNKNOWN", std::string(1, '\0'), "\x21",
                                           "\x11", "\x20", "\xff", std::string(40, 'a'), kSig};
  std::mt19937_64 rng = fuzz::fuzz_rng(8122026);
  int done = 0, invalid = 0;
  const int count = fuzz::fuzz_count(20000);
  for (int i = 0; i < count; ++i) {
    const std::string in = fuzz::mutate(seeds[static_cast<size_t>(i) % seeds.size()], rng, tokens);
    INFO("input: " << fuzz::shown(in));
    ProxyHeaderParser whole;
    const Fed w = feed_whole(whole, in);
    // The same verdict, end and source byte by byte and in random pieces.
    for (int mode = 0; mode < 2; ++mode) {
      ProxyHeaderParser p;
      Fed f{Status::kNeedMore, 0};
      if (mode == 0) {
        f = feed_bytewise(p, in);
      } else {
        for (size_t at = 0; at < in.size() && f.status == Status::kNeedMore;) {
          const size_t n = std::min(in.size() - at, 1 + static_cast<size_t>(rng() % 24));
          size_t used = 0;
          f.status = p.feed(in.data() + at, n, used);
          f.used += used;
          at += n;
        }
      }
      INFO((mode == 0 ? "byte by byte" : "in pieces"));
      CHECK(f.status == w.status);
      if (w.status != Status::kDone || f.status != Status::kDone) continue;
      CHECK(f.used == w.used);
      CHECK(p.has_source() == whole.has_source());
      if (p.has_source() && whole.has_source()) {
        CHECK(p.source().text() == whole.source().text());
        CHECK(p.source().port == whole.source().port);
        CHECK(p.destination_port() == whole.destination_port());
      }
    }
    if (w.status == Status::kInvalid) ++invalid;
    if (w.status != Status::kDone) continue;
    ++done;
    // A finished header used exactly its own bytes: v1 up to its CRLF, v2 its declared length.
    REQUIRE(w.used <= in.size());
    if (whole.version() == 1) {
      CHECK(w.used <= ProxyHeaderParser::kMaxV1Bytes);
      CHECK(in.find("\r\n") + 2 == w.used);
    } else {
      REQUIRE(in.size() >= 16);
      const size_t declared = (static_cast<unsigned char>(in[14]) << 8) | static_cast<unsigned char>(in[15]);
      CHECK(w.used == 16 + declared);
    }
    if (whole.has_source()) CHECK_FALSE(whole.source().text().empty());
  }
  INFO("done " << done << ", invalid " << invalid);
  CHECK(done > 1000);
  CHECK(invalid > 1000);
}
