#include "config/tls_files.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace berth::config {

namespace {

std::string openssl_reason() {
  unsigned long e = ERR_peek_last_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return e ? std::string(buf) : std::string("no PEM data");
}

// Whether a TLS context would take the pair and the chain after the leaf, as the listeners'
// contexts do (same library defaults, so the same security level): an RSA key under 2048 bits
// or a SHA-1 signature passes every other check here, then fails at start or reload.
std::string check_security_level(const std::string& cert_pem, X509* leaf, EVP_PKEY* key) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return "no TLS context (" + openssl_reason() + ")";
  STACK_OF(X509)* chain = sk_X509_new_null();
  BIO* b = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  for (int i = 0; X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr); ++i) {
    if (i == 0 || !sk_X509_push(chain, cert)) X509_free(cert);  // the first is the leaf
  }
  BIO_free(b);
  ERR_clear_error();
  std::string problem;
  if (SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1) != 1)
    problem = "OpenSSL refuses it at its security level (" + openssl_reason() +
              "): use an RSA key of at least 2048 bits (or ECDSA) and SHA-256 signatures";
  sk_X509_pop_free(chain, X509_free);
  SSL_CTX_free(ctx);
  return problem;
}

}  // namespace

std::string check_certificates(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) {
    X509_free(cert);
    ++count;
  }
  BIO_free(b);
  // The clean end of the input reads as "no start line": no further block begins.
  const unsigned long e = ERR_peek_last_error();
  const bool clean_end = e == 0 || (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE);
  if (count == 0) return "the file holds no PEM certificate (" + openssl_reason() + ")";
  if (!clean_end) {
    return "certificate " + std::to_string(count + 1) + " in the file does not parse (cut off?) (" + openssl_reason() +
           ")";
  }
  ERR_clear_error();
  return "";
}

std::string check_tls_pair(const std::string& cert_pem, const std::string& key_pem) {
  BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  if (!cert) return "the certificate file holds no PEM certificate (" + openssl_reason() + ")";
  if (std::string problem = check_certificates(cert_pem); !problem.empty()) {
    X509_free(cert);
    return "the certificate file: " + problem;
  }
  BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  // No passphrase callback: an encrypted key is refused rather than prompted for.
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  BIO_free(kb);
  std::string problem;
  if (!key) problem = "the key file holds no usable PEM private key (" + openssl_reason() + ")";
  else if (X509_check_private_key(cert, key) != 1) problem = "the key does not match the certificate";
  else problem = check_security_level(cert_pem, cert, key);
  ERR_clear_error();
  EVP_PKEY_free(key);
  X509_free(cert);
  return problem;
}

std::string check_ca_bundle(const std::string& pem) { return check_certificates(pem); }

std::string check_system_ca_store() {
  const char* env = std::getenv(X509_get_default_cert_file_env());
  const std::string path = env && *env ? env : X509_get_default_cert_file();
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in) return "the system CA store '" + path + "' cannot be read (install ca-certificates, or set 'ca')";
  if (std::string problem = check_ca_bundle(text.str()); !problem.empty())
    return "the system CA store '" + path + "': " + problem + " (install ca-certificates, or set 'ca')";
  return {};
}

std::string server_name_problem(std::string_view name) {
  if (name.empty()) return "is empty";
  const std::string text(name);
  unsigned char ip[16];
  if (inet_pton(AF_INET, text.c_str(), ip) == 1 || inet_pton(AF_INET6, text.c_str(), ip) == 1) return {};
  if (name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return "is not a host name (1 to 253 bytes)";
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view label = name.substr(start, end - start);
    if (label.empty() || label.size() > 63) return "is not a host name (an empty label, or one over 63 bytes)";
    if (label.front() == '-' || label.back() == '-') return "is not a host name (a label starts or ends with '-')";
    for (char c : label) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
      if (!ok) return "is not a host name (letters, digits, '-', '_' and dots only)";
    }
    start = end + 1;
  }
  const std::string_view last = name.substr(name.rfind('.') == std::string_view::npos ? 0 : name.rfind('.') + 1);
  if (last.find_first_not_of("0123456789") == std::string_view::npos)
    return "is not a host name (its last label is all digits) nor an IP address";
  return {};
}

std::string server_name_text(std::string_view name) {
  if (name.size() > 1 && name.back() == '.') name.remove_suffix(1);
  return std::string(name);
}

}  // namespace berth::config
