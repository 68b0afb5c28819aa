// The ACME challenges Berth answers itself, shared by the ACME client (which sets them) and
// the workers (which answer them): http-01 key authorizations by token, for
// GET /.well-known/acme-challenge/<token> on the plain listeners, and tls-alpn-01 certificates
// by name, served to handshakes that offer ALPN `acme-tls/1`. A mutex guards both maps; it is
// taken only on those two paths (a challenge request or an acme-tls/1 offer), never for
// ordinary traffic, and held only for a lookup.
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace berth::tls {

class ChallengeBoard {
 public:
  static constexpr std::string_view kHttpPrefix = "/.well-known/acme-challenge/";

  void set_http(const std::string& token, const std::string& key_authorization);
  void clear_http(const std::string& token);
  // The key authorization for a request path under kHttpPrefix (nullopt: not one Berth set).
  std::optional<std::string> http_answer(std::string_view path) const;
  // Whether `path` (with its query, if any) is an http-01 challenge request: kHttpPrefix and one
  // token of base64url characters (RFC 8555 8.3), nothing else (no '/', no dot segment). Such a
  // path for a token Berth does not hold (another ACME client behind Berth) is passed through
  // https_redirect; one that only starts with kHttpPrefix is not.
  static bool is_http_challenge_path(std::string_view path);

  // A self-signed challenge certificate and key (PEM) for `name`; false if they do not load.
  bool set_alpn(const std::string& name, const std::string& cert_pem, const std::string& key_pem);
  void clear_alpn(const std::string& name);
  // Installs the challenge certificate for the connection's SNI name on `ssl`; false when
  // there is none (the handshake then goes on with the usual certificate).
  bool use_alpn_certificate(SSL* ssl) const;

  ~ChallengeBoard();

 private:
  struct AlpnCert {
    X509* cert = nullptr;
    EVP_PKEY* key = nullptr;
  };
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> http_;
  std::map<std::string, AlpnCert, std::less<>> alpn_;
};

// The process's board (the ACME client and every worker use this one).
ChallengeBoard& challenge_board();

}  // namespace berth::tls
