// The pure parts of the ACME client: base64url, the JWK thumbprint, ES256 JWS, the CSR, the
// tls-alpn-01 certificate, problem documents, challenge choice, backoff and renewal, the
// HTTP response parser and the challenge board. No sockets.
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "proxy/acme/acme_crypto.h"
#include "proxy/base/base64.h"
#include "proxy/acme/acme_protocol.h"
#include "proxy/acme/https_client.h"
#include "proxy/tls/challenge_board.h"

using namespace berth::acme;
using berth::base64url_encode;

namespace {

std::string b64url_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    REQUIRE(v >= 0);
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// Verifies a raw r||s ES256 signature with the key's public half.
bool verify_es256(EVP_PKEY* key, std::string_view data, std::string_view raw) {
  if (raw.size() != 64) return false;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  const bool ok = EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
                  EVP_DigestVerify(md, der, static_cast<size_t>(der_len), reinterpret_cast<const unsigned char*>(data.data()),
                                   data.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  return ok;
}

std::vector<std::string> san_names(STACK_OF(X509_EXTENSION) * exts, X509* cert) {
  GENERAL_NAMES* sans = cert ? static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr))
                             : static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
  std::vector<std::string> names;
  for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
    if (gn->type == GEN_DNS)
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.dNSName)),
                         ASN1_STRING_length(gn->d.dNSName));
  }
  GENERAL_NAMES_free(sans);
  return names;
}

}  // namespace

TEST_CASE("acme: base64url without padding", "[acme]") {
  CHECK(base64url_encode("") == "");
  CHECK(base64url_encode("f") == "Zg");
  CHECK(base64url_encode("fo") == "Zm8");
  CHECK(base64url_encode("foo") == "Zm9v");
  CHECK(base64url_encode("foob") == "Zm9vYg");
  CHECK(base64url_encode(std::string("\xfb\xff\xfe", 3)) == "-__-");
  CHECK(b64url_decode(base64url_encode("any bytes \x01\x02")) == "any bytes \x01\x02");
}

TEST_CASE("acme: the account key as a JWK and its RFC 7638 thumbprint", "[acme]") {
  Pkey key = generate_p256_key();
  REQUIRE(key);
  const std::string jwk = jwk_json(key.get());
  nlohmann::json j = nlohmann::json::parse(jwk);
  CHECK(j["kty"] == "EC");
  CHECK(j["crv"] == "P-256");
  CHECK(b64url_decode(j["x"].get<std::string>()).size() == 32);
  CHECK(b64url_decode(j["y"].get<std::string>()).size() == 32);
  // Required members only, in lexicographic order, no whitespace: the thumbprint input.
  CHECK(jwk.rfind(R"({"crv":"P-256","kty":"EC","x":")", 0) == 0);
  CHECK(jwk.find(' ') == std::string::npos);
  CHECK(jwk_thumbprint(key.get()) == base64url_encode(sha256(jwk)));
  CHECK(jwk_thumbprint(key.get()).size() == 43);
  // The key survives storage as PEM: same thumbprint.
  Pkey again = private_key_from_pem(private_key_pem(key.get()));
  REQUIRE(again);
  CHECK(jwk_thumbprint(again.get()) == jwk_thumbprint(key.get()));
  CHECK_FALSE(private_key_from_pem("not a key"));
  CHECK(key_authorization("tok", "thumb") == "tok.thumb");
}

TEST_CASE("acme: ES256 signatures are raw r||s and verify", "[acme]") {
  Pkey key = generate_p256_key();
  const std::string sig = sign_es256(key.get(), "payload");
  REQUIRE(sig.size() == 64);
  CHECK(verify_es256(key.get(), "payload", sig));
  CHECK_FALSE(verify_es256(key.get(), "other", sig));
}

TEST_CASE("acme: a JWS carries jwk before registration and kid after", "[acme]") {
  Pkey key = generate_p256_key();
  SECTION("newAccount: jwk, no kid") {
    nlohmann::json jws = nlohmann::json::parse(make_jws(key.get(), "", "nonce-1", "https://ca/new-acct", R"({"a":1})"));
    nlohmann::json header = nlohmann::json::parse(b64url_decode(jws["protected"].get<std::string>()));
    CHECK(header["alg"] == "ES256");
    CHECK(header["nonce"] == "nonce-1");
    CHECK(header["url"] == "https://ca/new-acct");
    CHECK(header["jwk"]["kty"] == "EC");
    CHECK_FALSE(header.contains("kid"));
    CHECK(b64url_decode(jws["payload"].get<std::string>()) == R"({"a":1})");
    CHECK(verify_es256(key.get(), jws["protected"].get<std::string>() + "." + jws["payload"].get<std::string>(),
                       b64url_decode(jws["signature"].get<std::string>())));
  }
  SECTION("POST-as-GET: kid, empty payload") {
    nlohmann::json jws =
        nlohmann::json::parse(make_jws(key.get(), "https://ca/acct/1", "n2", "https://ca/order/7", ""));
    nlohmann::json header = nlohmann::json::parse(b64url_decode(jws["protected"].get<std::string>()));
    CHECK(header["kid"] == "https://ca/acct/1");
    CHECK_FALSE(header.contains("jwk"));
    CHECK(jws["payload"] == "");
  }
}

TEST_CASE("acme: the CSR names every host and is signed by the certificate key", "[acme]") {
  Pkey key = generate_p256_key();
  const std::string der = make_csr_der(key.get(), {"app.test", "www.app.test"});
  REQUIRE_FALSE(der.empty());
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  REQUIRE(req);
  CHECK(X509_REQ_verify(req, key.get()) == 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  CHECK(san_names(exts, nullptr) == std::vector<std::string>{"app.test", "www.app.test"});
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof cn);
  CHECK(std::string(cn) == "app.test");
  X509_REQ_free(req);
  CHECK(make_csr_der(key.get(), {}).empty());
}

TEST_CASE("acme: the tls-alpn-01 certificate has SAN=name and the critical acmeIdentifier", "[acme]") {
  std::string cert_pem, key_pem, error;
  REQUIRE(make_alpn_challenge_certificate("alpn.test", "tok.thumb", &cert_pem, &key_pem, &error));
  BIO* b = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  REQUIRE(cert);
  CHECK(san_names(nullptr, cert) == std::vector<std::string>{"alpn.test"});
  ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
  const int at = X509_get_ext_by_OBJ(cert, oid, -1);
  ASN1_OBJECT_free(oid);
  REQUIRE(at >= 0);
  X509_EXTENSION* ext = X509_get_ext(cert, at);
  CHECK(X509_EXTENSION_get_critical(ext) == 1);
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(ext);
  const std::string value(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)), ASN1_STRING_length(data));
  CHECK(value == std::string("\x04\x20", 2) + sha256("tok.thumb"));
  CHECK(certificate_names(cert_pem) == std::vector<std::string>{"alpn.test"});
  CHECK(certificate_not_after(cert_pem) > std::time(nullptr));
  X509_free(cert);
}

TEST_CASE("acme: problem documents", "[acme]") {
  auto p = parse_problem(R"({"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce","status":400})", 400);
  REQUIRE(p);
  CHECK(is_bad_nonce(*p));
  CHECK(p->text() == "badNonce: JWS has an invalid anti-replay nonce (400)");
  auto q = parse_problem(R"({"type":"urn:ietf:params:acme:error:connection","detail":"refused"})", 403);
  REQUIRE(q);
  CHECK_FALSE(is_bad_nonce(*q));
  CHECK(q->status == 403);
  CHECK_FALSE(parse_problem("not json", 500));
  CHECK_FALSE(parse_problem(R"({"detail":"no type"})", 500));
}

TEST_CASE("acme: the configured challenge is picked whatever the order offered", "[acme]") {
  nlohmann::json authz = nlohmann::json::parse(R"({
    "status":"pending","identifier":{"type":"dns","value":"a.test"},
    "challenges":[
      {"type":"tls-alpn-01","url":"https://ca/chal/1","token":"t1","status":"pending"},
      {"type":"dns-01","url":"https://ca/chal/2","token":"t2","status":"pending"},
      {"type":"http-01","url":"https://ca/chal/3","token":"t3","status":"pending"}]})");
  auto http = pick_challenge(authz, "http-01");
  REQUIRE(http);
  CHECK(http->url == "https://ca/chal/3");
  CHECK(http->token == "t3");
  auto alpn = pick_challenge(authz, "tls-alpn-01");
  REQUIRE(alpn);
  CHECK(alpn->token == "t1");
  CHECK_FALSE(pick_challenge(nlohmann::json::parse(R"({"challenges":[{"type":"dns-01","url":"u","token":"t"}]})"),
                             "http-01"));
  nlohmann::json invalid = nlohmann::json::parse(R"({"status":"invalid","challenges":[
      {"type":"http-01","status":"invalid","error":{"type":"urn:ietf:params:acme:error:connection","detail":"refused","status":400}}]})");
  CHECK(authorization_error(invalid) == "http-01: connection: refused (400)");
}

TEST_CASE("acme: retries back off from 10 s doubling to 1 h", "[acme]") {
  CHECK(retry_delay(1).count() == 10);
  CHECK(retry_delay(2).count() == 20);
  CHECK(retry_delay(3).count() == 40);
  CHECK(retry_delay(9).count() == 2560);
  CHECK(retry_delay(10).count() == 3600);
  CHECK(retry_delay(1000).count() == 3600);
}

TEST_CASE("acme: renewal when the certificate expires within renew_before, not before a third of its life is left",
          "[acme]") {
  const auto days30 = std::chrono::hours(720);
  const int64_t now = 1'000'000'000, day = 86400;
  const int64_t issued = now - 60 * day;  // a 90-day certificate: a third is 30 days
  CHECK_FALSE(needs_renewal(issued, now + 31 * day, now, days30));
  CHECK(needs_renewal(issued, now + 29 * day, now, days30));
  CHECK(needs_renewal(issued, now - 1, now, days30));
  CHECK(needs_renewal(0, now + 29 * day, now, days30));  // notBefore unknown: renew_before alone

  // A one-hour certificate with renew_before 30 days: renewed 20 minutes before its end, not
  // at once (which would order again, for ever).
  const int64_t hour_from = now;
  CHECK(renewal_time(hour_from, hour_from + 3600, days30) == hour_from + 2400);
  CHECK_FALSE(needs_renewal(hour_from, hour_from + 3600, now + 60, days30));
  CHECK(needs_renewal(hour_from, hour_from + 3600, now + 2400, days30));
  // A 7-day certificate with renew_before 1 day: renew_before is the earlier limit here.
  CHECK(renewal_time(now, now + 7 * day, std::chrono::hours(24)) == now + 6 * day);
}

TEST_CASE("acme: storage names and request payloads", "[acme]") {
  CHECK(certificate_dir_name({"App.Test"}) == "app.test");
  CHECK(certificate_dir_name({"../x"}) == "_.._x");
  CHECK(certificate_dir_name({}) == "none");
  // Several names: the first host and a digest of the whole set, whatever its order and case.
  const std::string both = certificate_dir_name({"app.test", "www.app.test"});
  CHECK(both.starts_with("app.test+"));
  CHECK(both.size() == std::string("app.test+").size() + 16);
  CHECK(certificate_dir_name({"App.Test", "WWW.app.test"}) == both);
  CHECK(certificate_dir_name({"app.test", "www.app.test", "app.test"}) == both);
  CHECK(certificate_dir_name({"www.app.test", "app.test"}) == both);
  // Two routes sharing their first host, not their other names, keep apart.
  CHECK(certificate_dir_name({"app.test", "api.app.test"}) != both);
  CHECK(legacy_certificate_dir_name({"App.Test", "www.app.test"}) == "app.test");
  CHECK(nlohmann::json::parse(new_account_payload("ops@example.com")) ==
        nlohmann::json::parse(R"({"termsOfServiceAgreed":true,"contact":["mailto:ops@example.com"]})"));
  CHECK(nlohmann::json::parse(new_account_payload("")) == nlohmann::json::parse(R"({"termsOfServiceAgreed":true})"));
  CHECK(nlohmann::json::parse(new_order_payload({"a.test", "b.test"})) ==
        nlohmann::json::parse(
            R"({"identifiers":[{"type":"dns","value":"a.test"},{"type":"dns","value":"b.test"}]})"));
}

TEST_CASE("acme: URLs and HTTP responses of the blocking client", "[acme]") {
  Url u;
  REQUIRE(parse_https_url("https://127.0.0.1:14000/dir", &u));
  CHECK(u.host == "127.0.0.1");
  CHECK(u.port == "14000");
  CHECK(u.authority == "127.0.0.1:14000");
  CHECK(u.target == "/dir");
  REQUIRE(parse_https_url("https://[::1]/x?y", &u));
  CHECK(u.host == "::1");
  CHECK(u.port == "443");
  CHECK(u.target == "/x?y");
  CHECK_FALSE(parse_https_url("http://a/", &u));
  CHECK_FALSE(parse_https_url("https://a:b/", &u));

  HttpResponse r;
  REQUIRE(parse_http_response("HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nLocation: https://ca/o/1\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
                              &r));
  CHECK(r.status == 201);
  CHECK(r.header("replay-nonce") == "abc");
  CHECK(r.header("Location") == "https://ca/o/1");
  CHECK(r.body == "{\"a\":1}");
  REQUIRE(parse_http_response("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", &r));
  CHECK(r.status == 204);
  CHECK(r.body.empty());
  CHECK_FALSE(parse_http_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", &r));
  CHECK_FALSE(parse_http_response("garbage", &r));
}

TEST_CASE("acme: the challenge board answers only tokens it holds", "[acme]") {
  berth::tls::ChallengeBoard board;
  board.set_http("tok1", "tok1.thumb");
  CHECK(board.http_answer("/.well-known/acme-challenge/tok1") == std::optional<std::string>("tok1.thumb"));
  CHECK_FALSE(board.http_answer("/.well-known/acme-challenge/other"));
  CHECK_FALSE(board.http_answer("/tok1"));
  board.clear_http("tok1");
  CHECK_FALSE(board.http_answer("/.well-known/acme-challenge/tok1"));
  // What https_redirect passes through: one base64url token, with a query at most.
  using berth::tls::ChallengeBoard;
  CHECK(ChallengeBoard::is_http_challenge_path("/.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
  CHECK(ChallengeBoard::is_http_challenge_path("/.well-known/acme-challenge/a-b_c?x=1"));
  CHECK_FALSE(ChallengeBoard::is_http_challenge_path("/.well-known/acme-challenge/"));
  CHECK_FALSE(ChallengeBoard::is_http_challenge_path("/.well-known/acme-challenge/../../secret"));
  CHECK_FALSE(ChallengeBoard::is_http_challenge_path("/.well-known/acme-challenge/a/b"));
  CHECK_FALSE(ChallengeBoard::is_http_challenge_path("/.well-known/acme-challenge/a%2Fb"));
  CHECK_FALSE(ChallengeBoard::is_http_challenge_path("/.well-known/acme-challenge/a;p=1"));
  CHECK_FALSE(ChallengeBoard::is_http_challenge_path("/x/.well-known/acme-challenge/a"));
  std::string cert, key, error;
  REQUIRE(make_alpn_challenge_certificate("a.test", "k", &cert, &key, &error));
  CHECK(board.set_alpn("A.test", cert, key));
  CHECK_FALSE(board.set_alpn("b.test", "junk", "junk"));
  board.clear_alpn("a.test");
}
