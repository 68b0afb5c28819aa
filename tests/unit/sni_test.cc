// SNI name matching (proxy/tls/sni.h): which certificate entry a client's server name gets.

#include <catch2/catch.hpp>

#include "proxy/tls/sni.h"

using berth::tls::SniIndex;

TEST_CASE("sni: exact names, any case, a trailing dot", "[tls]") {
  SniIndex idx;
  idx.add(0, {"a.test", "www.a.test"});
  idx.add(1, {"B.Test"});
  CHECK(idx.pick("a.test") == 0);
  CHECK(idx.pick("WWW.A.TEST") == 0);
  CHECK(idx.pick("b.test") == 1);
  CHECK(idx.pick("b.test.") == 1);
}

TEST_CASE("sni: unknown or missing names get the first entry added", "[tls]") {
  SniIndex idx;
  idx.add(3, {"first.test"});
  idx.add(1, {"second.test"});
  CHECK(idx.pick("") == 3);
  CHECK(idx.pick("nobody.test") == 3);
  CHECK(idx.pick("second.test") == 1);
  CHECK(idx.pick("bad name\x01") == 3);
}

TEST_CASE("sni: a wildcard covers one label and an exact name beats it", "[tls]") {
  SniIndex idx;
  idx.add(0, {"default.test"});
  idx.add(1, {"*.wild.test"});
  idx.add(2, {"exact.wild.test"});
  CHECK(idx.pick("foo.wild.test") == 1);
  CHECK(idx.pick("FOO.Wild.Test") == 1);
  CHECK(idx.pick("exact.wild.test") == 2);
  // One label only (RFC 6125): neither the bare domain nor two labels down.
  CHECK(idx.pick("wild.test") == 0);
  CHECK(idx.pick("a.b.wild.test") == 0);
}

TEST_CASE("sni: the exact name wins even when the wildcard came first", "[tls]") {
  SniIndex idx;
  idx.add(0, {"*.example.test"});
  idx.add(1, {"api.example.test"});
  CHECK(idx.pick("api.example.test") == 1);
  CHECK(idx.pick("www.example.test") == 0);
}

TEST_CASE("sni: among entries naming the same thing the first added wins", "[tls]") {
  SniIndex idx;
  idx.add(0, {"x.test"});
  idx.add(1, {"shared.test", "*.shared.test"});
  idx.add(2, {"shared.test", "*.shared.test"});
  CHECK(idx.pick("shared.test") == 1);
  CHECK(idx.pick("a.shared.test") == 1);
}

TEST_CASE("sni: wildcards over a single label or in the middle are ignored", "[tls]") {
  SniIndex idx;
  idx.add(0, {"default.test"});
  idx.add(1, {"*.test", "a.*.test", "*"});
  CHECK(idx.pick("foo.test") == 0);
  CHECK(idx.pick("a.b.test") == 0);
  CHECK(idx.pick("x") == 0);
}

TEST_CASE("sni: normalize", "[tls]") {
  CHECK(SniIndex::normalize("Api.Example.COM.") == "api.example.com");
  CHECK(SniIndex::normalize("") == "");
  CHECK(SniIndex::normalize(".") == "");
  CHECK(SniIndex::normalize("has space.test") == "");
}
