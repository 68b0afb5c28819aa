// Which certificate a TLS client gets for the name it asked for (SNI): pure logic, no OpenSSL.
// Each entry is a certificate (or a group of certificates sharing the same names) with its DNS
// names, exact ("api.example.com") or wildcard ("*.example.com", one label, RFC 6125). An exact
// name beats a wildcard; among entries naming the same thing, the first added wins; a name no
// entry covers (or no SNI at all) gets the default: the first entry added.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace berth::tls {

class SniIndex {
 public:
  // names: as found in the certificate (any case; "*." prefix for a wildcard).
  void add(size_t entry, const std::vector<std::string>& names);
  // server_name: the client's SNI ("" when none), any case, a trailing dot allowed.
  size_t pick(std::string_view server_name) const;
  bool empty() const { return !has_default_; }

  // "Api.Example.COM." -> "api.example.com"; "" when it cannot be a DNS name.
  static std::string normalize(std::string_view name);

 private:
  std::unordered_map<std::string, size_t> exact_;
  std::unordered_map<std::string, size_t> wildcard_;  // keyed by the suffix after "*."
  size_t default_ = 0;
  bool has_default_ = false;
};

}  // namespace berth::tls
