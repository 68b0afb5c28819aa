// The cryptography ACME needs (RFC 8555, 7638, 8737), with OpenSSL 3 EVP APIs: ECDSA P-256
// keys, the account key as a JWK and its thumbprint, ES256 JWS signatures (raw
// r||s), CSRs and the tls-alpn-01 challenge certificate. Pure functions: no I/O.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace berth::acme {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string sha256(std::string_view bytes);  // 32 raw bytes

Pkey generate_p256_key();                                 // null on failure
std::string private_key_pem(EVP_PKEY* key);               // PKCS#8 PEM
Pkey private_key_from_pem(std::string_view pem);          // null: not a P-256 private key

// {"crv":"P-256","kty":"EC","x":"...","y":"..."}: the members in lexicographic order with no
// whitespace, which is also the RFC 7638 thumbprint input.
std::string jwk_json(EVP_PKEY* key);
std::string jwk_thumbprint(EVP_PKEY* key);  // base64url_encode(SHA-256(jwk_json))

// The ES256 signature of `data`: 64 bytes r||s ("" on failure).
std::string sign_es256(EVP_PKEY* key, std::string_view data);

// A flattened JWS (RFC 8555 6.2) as JSON text. `kid` empty: the protected header carries the
// account's jwk (newAccount); else kid. `payload` empty: POST-as-GET.
std::string make_jws(EVP_PKEY* account_key, std::string_view kid, std::string_view nonce, std::string_view url,
                     std::string_view payload);

// A DER CSR signed by `key` with CN = hosts[0] and every host as a SAN DNS name.
std::string make_csr_der(EVP_PKEY* key, const std::vector<std::string>& hosts);

// token "." thumbprint (RFC 8555 8.1).
std::string key_authorization(std::string_view token, std::string_view thumbprint);

// The tls-alpn-01 certificate (RFC 8737 3): self-signed, SAN = name, critical
// id-pe-acmeIdentifier = OCTET STRING(SHA-256(key_authorization)), with a new P-256 key.
// false with *error on failure.
bool make_alpn_challenge_certificate(const std::string& name, std::string_view key_auth, std::string* cert_pem,
                                     std::string* key_pem, std::string* error);

// Unix time of the first certificate's notAfter (notBefore) in a PEM chain (0: none readable).
int64_t certificate_not_after(std::string_view chain_pem);
int64_t certificate_not_before(std::string_view chain_pem);
// The SAN DNS names of the first certificate in a PEM chain, sorted.
std::vector<std::string> certificate_names(std::string_view chain_pem);

}  // namespace berth::acme
