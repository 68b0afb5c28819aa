#include "proxy/tls/challenge_board.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>

#include "proxy/base/ascii.h"

namespace berth::tls {

void ChallengeBoard::set_http(const std::string& token, const std::string& key_authorization) {
  std::lock_guard<std::mutex> lock(mu_);
  http_[token] = key_authorization;
}

void ChallengeBoard::clear_http(const std::string& token) {
  std::lock_guard<std::mutex> lock(mu_);
  http_.erase(token);
}

bool ChallengeBoard::is_http_challenge_path(std::string_view path) {
  if (!path.starts_with(kHttpPrefix)) return false;
  std::string_view token = path.substr(kHttpPrefix.size());
  token = token.substr(0, token.find('?'));
  return !token.empty() && std::all_of(token.begin(), token.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_';
  });
}

std::optional<std::string> ChallengeBoard::http_answer(std::string_view path) const {
  if (!path.starts_with(kHttpPrefix)) return std::nullopt;
  std::string_view token = path.substr(kHttpPrefix.size());
  token = token.substr(0, token.find('?'));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = http_.find(token);
  if (it == http_.end()) return std::nullopt;
  return it->second;
}

bool ChallengeBoard::set_alpn(const std::string& name, const std::string& cert_pem, const std::string& key_pem) {
  BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  BIO_free(kb);
  ERR_clear_error();
  if (!cert || !key) {
    X509_free(cert);
    EVP_PKEY_free(key);
    return false;
  }
  const std::string lowered = ascii_lowered(name);
  std::lock_guard<std::mutex> lock(mu_);
  AlpnCert& slot = alpn_[lowered];
  X509_free(slot.cert);
  EVP_PKEY_free(slot.key);
  slot = AlpnCert{cert, key};
  return true;
}

void ChallengeBoard::clear_alpn(const std::string& name) {
  const std::string lowered = ascii_lowered(name);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = alpn_.find(lowered);
  if (it == alpn_.end()) return;
  X509_free(it->second.cert);
  EVP_PKEY_free(it->second.key);
  alpn_.erase(it);
}

bool ChallengeBoard::use_alpn_certificate(SSL* ssl) const {
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!sni) return false;
  const std::string name = ascii_lowered(sni);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = alpn_.find(name);
  if (it == alpn_.end()) return false;
  // SSL_use_* take their own references.
  const bool ok = SSL_use_certificate(ssl, it->second.cert) == 1 && SSL_use_PrivateKey(ssl, it->second.key) == 1;
  ERR_clear_error();
  return ok;
}

ChallengeBoard::~ChallengeBoard() {
  for (auto& [name, c] : alpn_) {
    X509_free(c.cert);
    EVP_PKEY_free(c.key);
  }
}

ChallengeBoard& challenge_board() {
  static ChallengeBoard board;
  return board;
}

}  // namespace berth::tls
