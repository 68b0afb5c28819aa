// The TLS server context (proxy/tls/server_context.h) against an OpenSSL client over memory
// BIOs: which certificate a client gets for its name and its offer, and when the server's
// first real flight (the costly one) is made.
#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy/tls/server_context.h"

using namespace berth::tls;

namespace {

std::string pem_of(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string out(p, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

std::string pem_of(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string out(p, static_cast<size_t>(n));
  BIO_free(b);
  return out;
}

// A self-signed certificate for `names` (DNS SANs) with a new RSA 2048 or P-256 key.
CertificatePem self_signed(const std::string& origin, bool rsa, const std::vector<std::string>& names) {
  EVP_PKEY* key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  REQUIRE(key);
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_NAME* subject = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(origin.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert, subject);
  X509_set_pubkey(cert, key);
  std::string san;
  for (const std::string& n : names) san += (san.empty() ? "DNS:" : ",DNS:") + n;
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
  REQUIRE(ext);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  REQUIRE(X509_sign(cert, key, EVP_sha256()) > 0);
  CertificatePem out{origin, pem_of(cert), pem_of(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

std::shared_ptr<const ServerContext> context_of(const std::vector<CertificatePem>& pems) {
  std::string error;
  auto sc = ServerContext::build(pems, ServerOptions{}, &error);
  INFO(error);
  REQUIRE(sc);
  return sc;
}

// A server session of `sc` and an OpenSSL client, joined by memory BIOs.
struct Pair {
  std::string requested;
  bool flight = false;
  SSL_CTX* client_ctx = SSL_CTX_new(TLS_client_method());
  SSL* server = nullptr;
  SSL* client = nullptr;

  Pair(const ServerContext& sc, const std::string& sni) {
    server = sc.new_session(&requested, &flight);
    REQUIRE(server);
    client = SSL_new(client_ctx);
    SSL_set_bio(server, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_bio(client, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(client);
    if (!sni.empty()) SSL_set_tlsext_host_name(client, sni.c_str());
  }
  ~Pair() {
    SSL_free(client);
    SSL_free(server);
    SSL_CTX_free(client_ctx);
  }
  static void carry(SSL* from, SSL* to) {
    char buf[16384];
    int n;
    while ((n = BIO_read(SSL_get_wbio(from), buf, sizeof buf)) > 0) BIO_write(SSL_get_rbio(to), buf, n);
  }
  // The client speaks, the server answers: one round. The server's handshake result.
  int round() {
    SSL_do_handshake(client);
    carry(client, server);
    const int r = SSL_do_handshake(server);
    carry(server, client);
    return r;
  }
  // The common name of the certificate the client got ("" if none yet).
  std::string served() {
    X509* peer = SSL_get1_peer_certificate(client);
    if (!peer) return {};
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    X509_free(peer);
    return cn;
  }
};

// The certificate (its common name) a client offering only `sigalgs` gets for `sni` ("" when
// the handshake fails).
std::string served_to(const ServerContext& sc, const std::string& sni, const char* sigalgs) {
  Pair p(sc, sni);
  REQUIRE(SSL_set1_sigalgs_list(p.client, sigalgs) == 1);
  for (int i = 0; i < 4 && p.round() != 1;) ++i;
  return p.served();
}

}  // namespace

TEST_CASE("server context: a HelloRetryRequest is not the server's flight", "[tls]") {
  auto sc = context_of({self_signed("a-ec", false, {"a.test"})});
  SECTION("a key share the server takes: the flight comes with the first answer") {
    Pair p(*sc, "a.test");
    REQUIRE(SSL_set1_groups_list(p.client, "X25519") == 1);
    CHECK(p.round() != 1);
    CHECK(p.flight);
  }
  SECTION("a key share for a group the server does not take: a retry request first") {
    Pair p(*sc, "a.test");
    REQUIRE(SSL_set1_groups_list(p.client, "P-521:X25519") == 1);
    CHECK(p.round() != 1);
    CHECK_FALSE(p.flight);  // the HelloRetryRequest: nothing costly was done yet
    CHECK(p.round() != 1);  // the second ClientHello: key exchange and signature
    CHECK(p.flight);
    CHECK(p.round() == 1);
    CHECK(p.served() == "a-ec");
  }
  SECTION("TLS 1.2") {
    Pair p(*sc, "a.test");
    REQUIRE(SSL_set_max_proto_version(p.client, TLS1_2_VERSION) == 1);
    CHECK(p.round() != 1);
    CHECK(p.flight);
  }
}

TEST_CASE("server context: RSA and ECDSA certificates pair per name, whatever their other names", "[tls]") {
  // Ordered at different times: the RSA one also names www.a.test.
  auto sc = context_of({self_signed("a-rsa", true, {"a.test", "www.a.test"}), self_signed("a-ec", false, {"a.test"}),
                        self_signed("a-rsa-old", true, {"a.test", "www.a.test"})});
  auto get = [&](const std::string& sni, const char* sigalgs) { return served_to(*sc, sni, sigalgs); };
  CHECK(get("a.test", "ECDSA+SHA256") == "a-ec");
  CHECK(get("a.test", "RSA-PSS+SHA256:RSA+SHA256") == "a-rsa");
  CHECK(get("www.a.test", "RSA-PSS+SHA256:RSA+SHA256") == "a-rsa");
  CHECK(get("www.a.test", "ECDSA+SHA256").empty());  // no ECDSA certificate names it
  // No SNI, or a name none holds: the first certificate, paired for its first name.
  CHECK(get("", "ECDSA+SHA256") == "a-ec");
  CHECK(get("other.test", "RSA-PSS+SHA256:RSA+SHA256") == "a-rsa");
  // The old RSA one, behind the first for each of its names, is never served, and says so.
  const auto& facts = sc->certificates();
  REQUIRE(facts.size() == 3);
  CHECK(facts[0].served);
  CHECK(facts[1].served);
  CHECK_FALSE(facts[2].served);
  // The expiry metric's names: those each certificate is served for.
  CHECK(facts[0].served_for == std::vector<std::string>{"a.test", "www.a.test"});
  CHECK(facts[1].served_for == std::vector<std::string>{"a.test"});
  CHECK(facts[2].served_for.empty());
}

TEST_CASE("server context: an exact name lacking a key type takes it from a wildcard over it", "[tls]") {
  auto sc = context_of({self_signed("x-rsa", true, {"x.w.test"}), self_signed("w-ec", false, {"*.w.test"})});
  auto get = [&](const std::string& sni, const char* sigalgs) { return served_to(*sc, sni, sigalgs); };
  CHECK(get("x.w.test", "RSA-PSS+SHA256:RSA+SHA256") == "x-rsa");  // the exact name first
  CHECK(get("x.w.test", "ECDSA+SHA256") == "w-ec");
  CHECK(get("y.w.test", "ECDSA+SHA256") == "w-ec");
  CHECK(get("y.w.test", "RSA-PSS+SHA256:RSA+SHA256").empty());  // x-rsa does not name it
}
