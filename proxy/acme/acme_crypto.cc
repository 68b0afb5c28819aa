#include "proxy/acme/acme_crypto.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <ctime>

#include "proxy/base/base64.h"

namespace berth::acme {

namespace {

std::string bio_text(BIO* b) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::string bn_coordinate(EVP_PKEY* key, const char* param) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &bn) != 1) return {};
  std::string out(32, '\0');
  const bool ok = BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), 32) == 32;
  BN_free(bn);
  return ok ? out : std::string();
}

// The SAN extension value "DNS:a,DNS:b" for `hosts`.
std::string san_value(const std::vector<std::string>& hosts) {
  std::string san;
  for (const std::string& h : hosts) san += (san.empty() ? "DNS:" : ",DNS:") + h;
  return san;
}

bool set_common_name(X509_NAME* name, const std::string& cn) {
  // A CN holds at most 64 characters; longer names live in the SAN only.
  if (cn.size() > 64) return true;
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.data()),
                                    static_cast<int>(cn.size()), -1, 0) == 1;
}

}  // namespace

std::string sha256(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr) != 1) return {};
  return std::string(reinterpret_cast<char*>(digest), len);
}

Pkey generate_p256_key() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

std::string private_key_pem(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  std::string out;
  if (PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1) out = bio_text(b);
  BIO_free(b);
  return out;
}

Pkey private_key_from_pem(std::string_view pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  BIO_free(b);
  ERR_clear_error();
  if (key && (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || EVP_PKEY_get_bits(key) != 256)) {
    EVP_PKEY_free(key);
    key = nullptr;
  }
  return Pkey(key);
}

std::string jwk_json(EVP_PKEY* key) {
  const std::string x = bn_coordinate(key, OSSL_PKEY_PARAM_EC_PUB_X);
  const std::string y = bn_coordinate(key, OSSL_PKEY_PARAM_EC_PUB_Y);
  if (x.empty() || y.empty()) return {};
  return R"({"crv":"P-256","kty":"EC","x":")" + base64url_encode(x) + R"(","y":")" + base64url_encode(y) + "\"}";
}

std::string jwk_thumbprint(EVP_PKEY* key) { return base64url_encode(sha256(jwk_json(key))); }

std::string sign_es256(EVP_PKEY* key, std::string_view data) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  std::string der(80, '\0');
  size_t der_len = der.size();
  const bool signed_ok = md && EVP_DigestSignInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
                         EVP_DigestSign(md, reinterpret_cast<unsigned char*>(der.data()), &der_len,
                                        reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(md);
  if (!signed_ok) return {};
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der_len));
  if (!sig) return {};
  std::string raw(64, '\0');
  const bool ok = BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32) == 32 &&
                  BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32) == 32;
  ECDSA_SIG_free(sig);
  return ok ? raw : std::string();
}

namespace {
// JSON string escaping for the few values (URLs, nonces, kid) put in a protected header.
std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;
    out += c;
  }
  return out + "\"";
}
}  // namespace

std::string make_jws(EVP_PKEY* account_key, std::string_view kid, std::string_view nonce, std::string_view url,
                     std::string_view payload) {
  std::string header = R"({"alg":"ES256",)";
  if (kid.empty()) header += "\"jwk\":" + jwk_json(account_key) + ",";
  else header += "\"kid\":" + json_string(kid) + ",";
  header += "\"nonce\":" + json_string(nonce) + ",\"url\":" + json_string(url) + "}";
  const std::string protected64 = base64url_encode(header);
  const std::string payload64 = base64url_encode(payload);
  const std::string signature = sign_es256(account_key, protected64 + "." + payload64);
  if (signature.empty()) return {};
  return R"({"protected":")" + protected64 + R"(","payload":")" + payload64 + R"(","signature":")" +
         base64url_encode(signature) + "\"}";
}

std::string make_csr_der(EVP_PKEY* key, const std::vector<std::string>& hosts) {
  if (hosts.empty()) return {};
  X509_REQ* req = X509_REQ_new();
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san_value(hosts).c_str());
  std::string out;
  bool ok = req && exts && san && X509_REQ_set_version(req, 0) == 1 &&
            set_common_name(X509_REQ_get_subject_name(req), hosts.front()) && X509_REQ_set_pubkey(req, key) == 1;
  if (ok) {
    sk_X509_EXTENSION_push(exts, san);
    san = nullptr;
    ok = X509_REQ_add_extensions(req, exts) == 1 && X509_REQ_sign(req, key, EVP_sha256()) > 0;
  }
  if (ok) {
    unsigned char* der = nullptr;
    const int len = i2d_X509_REQ(req, &der);
    if (len > 0) out.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  X509_EXTENSION_free(san);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  ERR_clear_error();
  return out;
}

std::string key_authorization(std::string_view token, std::string_view thumbprint) {
  std::string out(token);
  out += '.';
  out += thumbprint;
  return out;
}

bool make_alpn_challenge_certificate(const std::string& name, std::string_view key_auth, std::string* cert_pem,
                                     std::string* key_pem, std::string* error) {
  Pkey key = generate_p256_key();
  X509* cert = X509_new();
  bool ok = key && cert && X509_set_version(cert, 2) == 1;
  unsigned char serial[16];
  ok = ok && RAND_bytes(serial, sizeof serial) == 1;
  if (ok) {
    serial[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
    BN_free(bn);
  }
  ok = ok && X509_gmtime_adj(X509_getm_notBefore(cert), -86400) && X509_gmtime_adj(X509_getm_notAfter(cert), 7 * 86400);
  ok = ok && set_common_name(X509_get_subject_name(cert), name) &&
       X509_set_issuer_name(cert, X509_get_subject_name(cert)) == 1 && X509_set_pubkey(cert, key.get()) == 1;
  if (ok) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san_value({name}).c_str());
    ok = san && X509_add_ext(cert, san, -1) == 1;
    X509_EXTENSION_free(san);
  }
  if (ok) {
    // id-pe-acmeIdentifier: critical, its value the DER of OCTET STRING(SHA-256(keyAuthorization)).
    const std::string digest = sha256(key_auth);
    std::string der = std::string("\x04\x20", 2) + digest;
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    ASN1_OCTET_STRING* value = ASN1_OCTET_STRING_new();
    ok = oid && value &&
         ASN1_OCTET_STRING_set(value, reinterpret_cast<const unsigned char*>(der.data()), static_cast<int>(der.size())) == 1;
    X509_EXTENSION* ext = ok ? X509_EXTENSION_create_by_OBJ(nullptr, oid, 1, value) : nullptr;
    ok = ext && X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(value);
    ASN1_OBJECT_free(oid);
  }
  ok = ok && X509_sign(cert, key.get(), EVP_sha256()) > 0;
  if (ok) {
    BIO* b = BIO_new(BIO_s_mem());
    ok = PEM_write_bio_X509(b, cert) == 1;
    if (ok) *cert_pem = bio_text(b);
    BIO_free(b);
    *key_pem = private_key_pem(key.get());
    ok = ok && !key_pem->empty();
  }
  X509_free(cert);
  if (!ok) *error = "cannot make the tls-alpn-01 certificate for " + name;
  ERR_clear_error();
  return ok;
}

namespace {
X509* first_certificate(std::string_view pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  ERR_clear_error();
  return cert;
}

int64_t certificate_time(std::string_view chain_pem, const ASN1_TIME* (*which)(const X509*)) {
  X509* cert = first_certificate(chain_pem);
  if (!cert) return 0;
  struct tm tm {};
  int64_t out = 0;
  if (ASN1_TIME_to_tm(which(cert), &tm) == 1) out = timegm(&tm);
  X509_free(cert);
  return out;
}
}  // namespace

int64_t certificate_not_after(std::string_view chain_pem) { return certificate_time(chain_pem, X509_get0_notAfter); }
int64_t certificate_not_before(std::string_view chain_pem) { return certificate_time(chain_pem, X509_get0_notBefore); }

std::vector<std::string> certificate_names(std::string_view chain_pem) {
  std::vector<std::string> names;
  X509* cert = first_certificate(chain_pem);
  if (!cert) return names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type != GEN_DNS) continue;
    const ASN1_IA5STRING* s = gn->d.dNSName;
    names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s));
  }
  GENERAL_NAMES_free(sans);
  X509_free(cert);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace berth::acme
