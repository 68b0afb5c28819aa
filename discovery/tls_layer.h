// TLS for a tcp:// Docker endpoint: an OpenSSL session over memory BIOs, so it sits between
// the libuv socket and the HTTP parser without owning any I/O. Client certificates optional.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

namespace berth::discovery {

class TlsContext {
 public:
  // Loads the CA (or the system CAs when none is given) and the client cert/key pair.
  static std::shared_ptr<TlsContext> create(const config::DockerTls& files, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;
  SSL_CTX* get() const { return ctx_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
};

class TlsSession {
 public:
  // server_name: checked against the certificate (name or IP) and sent as SNI when a name.
  TlsSession(SSL_CTX* ctx, const std::string& server_name);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Starts the handshake; ciphertext to send is appended to *out.
  bool start(std::string* out, std::string* error);
  // Ciphertext from the peer: plaintext appended to *plain, ciphertext to send to *out.
  // *closed is set when the peer sent close_notify.
  bool receive(std::string_view cipher, std::string* plain, std::string* out, bool* closed, std::string* error);
  // Plaintext to send (queued until the handshake completes); ciphertext appended to *out.
  bool send(std::string_view plain, std::string* out, std::string* error);
  bool established() const { return established_; }

 private:
  bool flush_pending(std::string* out, std::string* error);
  void drain(std::string* out);
  std::string last_error(const char* what);

  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // network -> SSL
  BIO* wbio_ = nullptr;  // SSL -> network
  bool established_ = false;
  std::string pending_;
};

}  // namespace berth::discovery
