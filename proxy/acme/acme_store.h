// ACME's files under `storage` (a volume): the directory is mode 0700, keys are 0600.
//   account.key                       the account's ECDSA P-256 key (PEM)
//   certificates/<name>/key.pem   the certificate's key
//   certificates/<name>/chain.pem the certificate and its chain as the server sent them
// where <name> is certificate_dir_name(): the first host, and for several names a digest of
// them all (acme_protocol.h).
// Files are written to a temporary name and renamed, so a reader never sees half a file.
// Only the ACME thread and the control loop (at start) use it: never a worker loop.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace berth::acme {

struct StoredCertificate {
  std::string chain_pem;
  std::string key_pem;
  bool legacy = false;  // read from the directory an older Berth used (the first host alone)
};

class AcmeStore {
 public:
  explicit AcmeStore(std::string dir) : dir_(std::move(dir)) {}
  // Creates the directory (and certificates/) with mode 0700. false with *error.
  bool prepare(std::string* error) const;
  std::optional<std::string> read_account_key() const;
  bool write_account_key(const std::string& pem, std::string* error) const;
  std::optional<StoredCertificate> read_certificate(const std::vector<std::string>& hosts) const;
  bool write_certificate(const std::vector<std::string>& hosts, const StoredCertificate& cert,
                         std::string* error) const;
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace berth::acme
