// Strict padded base64 (proxy/base/base64): HTTP Basic credentials and the etcd gateway's
// bytes fields. Encodings are checked against OpenSSL's encoder, not against themselves.
#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include <string>
#include <vector>

#include "proxy/base/base64.h"

using berth::base64_decode;
using berth::base64_encode;

namespace {
std::string openssl_base64(const std::string& bytes) {
  std::vector<unsigned char> out(4 * ((bytes.size() + 2) / 3) + 1);
  int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<size_t>(n));
}
}  // namespace

TEST_CASE("base64: encodes as OpenSSL does and decodes its own output", "[base64]") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("/berth/i/") == "L2JlcnRoL2kv");
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes += static_cast<char>(i);
  for (size_t len = 0; len <= bytes.size(); len += 37) {
    std::string part = bytes.substr(0, len);
    CHECK(base64_encode(part) == openssl_base64(part));
    CHECK(base64_decode(openssl_base64(part)) == part);
  }
  CHECK(base64_decode("Zg==") == std::string("f"));
  CHECK(base64_decode("") == std::string());
}

TEST_CASE("base64: anything but canonical padded base64 is refused", "[base64]") {
  CHECK_FALSE(base64_decode("Zg"));        // no padding
  CHECK_FALSE(base64_decode("_-8="));      // URL alphabet
  CHECK_FALSE(base64_decode("Z=g="));      // padding inside
  CHECK_FALSE(base64_decode("Zg==Zm8="));  // padding before the end
  CHECK_FALSE(base64_decode("Z==="));      // three padding characters
  CHECK_FALSE(base64_decode("Zm9v\n"));    // whitespace
  CHECK_FALSE(base64_decode("!!!!"));
}
