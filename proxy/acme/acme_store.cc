#include "proxy/acme/acme_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/acme/acme_protocol.h"

namespace berth::acme {

namespace {

bool make_dir(const std::string& path, std::string* error) {
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    *error = "cannot create '" + path + "': " + std::strerror(errno);
    return false;
  }
  if (::chmod(path.c_str(), 0700) != 0) {
    *error = "cannot set mode 0700 on '" + path + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

std::optional<std::string> read_all(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1u << 20)) break;
  }
  ::close(fd);
  return out;
}

bool write_atomically(const std::string& path, const std::string& data, mode_t mode, std::string* error) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    *error = "cannot write '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  ::fchmod(fd, mode);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = "cannot write '" + tmp + "': " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = "cannot rename '" + tmp + "': " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

bool AcmeStore::prepare(std::string* error) const {
  return make_dir(dir_, error) && make_dir(dir_ + "/certificates", error);
}

std::optional<std::string> AcmeStore::read_account_key() const { return read_all(dir_ + "/account.key"); }

bool AcmeStore::write_account_key(const std::string& pem, std::string* error) const {
  return write_atomically(dir_ + "/account.key", pem, 0600, error);
}

std::optional<StoredCertificate> AcmeStore::read_certificate(const std::vector<std::string>& hosts) const {
  // Under the current name, else (stored by an older Berth) under the first host alone: the
  // caller checks that the certificate's names are the route's.
  const std::string current = certificate_dir_name(hosts);
  for (const std::string& name : {current, legacy_certificate_dir_name(hosts)}) {
    const std::string base = dir_ + "/certificates/" + name;
    auto chain = read_all(base + "/chain.pem");
    auto key = read_all(base + "/key.pem");
    if (chain && key && !chain->empty() && !key->empty())
      return StoredCertificate{std::move(*chain), std::move(*key), name != current};
  }
  return std::nullopt;
}

bool AcmeStore::write_certificate(const std::vector<std::string>& hosts, const StoredCertificate& cert,
                                  std::string* error) const {
  const std::string base = dir_ + "/certificates/" + certificate_dir_name(hosts);
  // The key first: a chain is only ever next to the key it belongs to once both are renamed.
  return make_dir(base, error) && write_atomically(base + "/key.pem", cert.key_pem, 0600, error) &&
         write_atomically(base + "/chain.pem", cert.chain_pem, 0644, error);
}

}  // namespace berth::acme
