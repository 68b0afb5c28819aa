// The server side of TLS for one listener: its certificates loaded into OpenSSL, chosen per
// connection by SNI, with the listener's protocol floor, cipher suites, ALPN, session tickets
// and optional client certificates. Built on the control loop (it reads files), immutable
// afterwards and shared by every worker: new connections take the context of the current
// snapshot, so a reload swaps it for new handshakes while open connections keep theirs.
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/tls/sni.h"

namespace berth::tls {

// Why a handshake failed, for berth_tls_handshake_errors_total{cause}.
enum class HandshakeError : uint8_t {
  kProtocolVersion,    // the client offered only versions below the floor (TLS 1.0/1.1)
  kNoSharedCipher,     // no cipher suite, group or signature algorithm in common
  kClientCertificate,  // client_ca set and the client sent no certificate or a bad one
  kHttpRequest,        // plain HTTP sent to the TLS port
  kPeerClosed,         // the client closed the connection during the handshake
  kIncomplete,         // Berth closed it first (request_header deadline, drain)
  kOther,
  kCount
};
const char* handshake_error_name(HandshakeError cause);  // "protocol_version", ...
void count_handshake_error(HandshakeError cause);        // any thread
// Failed handshakes since start, all listeners and workers together (any thread). The hook
// for the metrics exporter: berth_tls_handshake_errors_total{cause=handshake_error_name(c)}.
uint64_t handshake_errors(HandshakeError cause);

// One certificate with its key, as PEM text (the certificate first, then its chain). Where it
// came from is for log lines and metrics: a config file path, later an ACME store entry.
struct CertificatePem {
  std::string origin;
  std::string cert_pem;
  std::string key_pem;
};

// What a loaded certificate says about itself (for logs, /api and expiry metrics).
struct CertificateFacts {
  std::string origin;
  std::vector<std::string> names;  // SAN DNS names (the subject CN when there are none)
  std::string key_type;            // "rsa", "ecdsa", "ed25519", ...
  int64_t not_after_unix = 0;
  // Whether some client can get it: false when, for each of its names, an earlier certificate
  // of the same key type holds that name too (a renewed one left behind in the list, say).
  bool served = false;
  // Its names for which it is the one of its key type that a client asking for the name gets
  // (the expiry metric's series), in the order of `names`.
  std::vector<std::string> served_for;
};

struct ServerOptions {
  int min_version = TLS1_2_VERSION;  // TLS1_2_VERSION or TLS1_3_VERSION
  bool verify_clients = false;       // client certificates required, signed by client_ca_pem
  std::string client_ca_pem;         // the CA file's text; must hold a certificate when verifying
  bool session_tickets = true;       // false: no tickets issued or accepted (no resumption)
};

class ServerContext {
 public:
  // Certificates in order (the first is the default for unknown or missing SNI). Null with
  // *error saying which one failed and why.
  static std::shared_ptr<const ServerContext> build(const std::vector<CertificatePem>& certificates,
                                                    const ServerOptions& options, std::string* error);
  // Reads the listener's files (control loop only) and builds. `extra` are appended after the
  // configured certificates (a store such as ACME's can add its own).
  static std::shared_ptr<const ServerContext> load(const config::ListenerTls& tls, std::string* error,
                                                   const std::vector<CertificatePem>& extra = {});
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // A server-mode SSL for an accepted connection; null if OpenSSL is out of memory. The server
  // name the client asks for in its ClientHello is written to *requested_name (which must
  // outlive the handshake): SSL_get_servername gives, after a TLS 1.2 resumption, the name the
  // session was first made for. *flight_made (which must outlive the handshake too) becomes
  // true once the server has written its first real flight, the one with the key exchange and
  // the signature (a Certificate or a Finished): a HelloRetryRequest is not one.
  SSL* new_session(std::string* requested_name, bool* flight_made) const;
  const std::vector<CertificateFacts>& certificates() const { return facts_; }

 private:
  ServerContext() = default;
  // One SSL_CTX per choice of certificates (at most one of each key type) that some name, or
  // the default, gets: OpenSSL then picks the one the client's offer supports.
  struct Group {
    SSL_CTX* ctx = nullptr;
  };
  static int servername_cb(SSL* ssl, int* alert, void* arg);
  static int client_hello_cb(SSL* ssl, int* alert, void* arg);
  SSL_CTX* make_ctx(const ServerOptions& options, std::string* error);

  std::vector<Group> groups_;
  SniIndex sni_;
  std::vector<CertificateFacts> facts_;
};

}  // namespace berth::tls
