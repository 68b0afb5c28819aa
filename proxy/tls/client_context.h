// The client side of TLS for one upstream service (services.NAME.tls, berth.upstream.tls): its
// CA store, optional client certificate and verification settings loaded into one SSL_CTX.
// Built on the control loop (it reads files), immutable afterwards and shared by every worker,
// which makes one client-mode SSL per connection to an instance. Nothing here blocks on a
// worker: every file (the system CA bundle included) is read when the context is built.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>

#include "config/config.h"

namespace berth::tls {

// The last session a worker's connections to one instance were given (a TLS 1.2 session or a
// TLS 1.3 ticket), offered by the next connection there so that it resumes instead of a full
// handshake. Owned by one worker's endpoint pool: never shared between threads.
class SessionSlot {
 public:
  SessionSlot() = default;
  ~SessionSlot();
  SessionSlot(const SessionSlot&) = delete;
  SessionSlot& operator=(const SessionSlot&) = delete;
  SSL_SESSION* get() const { return session_; }
  void store(SSL_SESSION* session);  // takes the reference
  void clear() { store(nullptr); }

 private:
  SSL_SESSION* session_ = nullptr;
};

class ClientContext {
 public:
  // Reads the files the settings name (control loop only). Null with *error saying which file
  // failed and why.
  static std::shared_ptr<const ClientContext> load(const config::UpstreamTls& settings, std::string* error);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // A client-mode SSL for a new connection to the instance at `instance_ip` (textual): SNI is
  // the server name (none for an IP literal), and the certificate must name the server name or,
  // when there is none, the instance's address. `slot` (may be null) offers its session and
  // receives the new ones. Null if OpenSSL is out of memory.
  SSL* new_session(std::string_view instance_ip, SessionSlot* slot) const;
  const config::UpstreamTls& settings() const { return settings_; }

 private:
  ClientContext() = default;
  static int new_session_cb(SSL* ssl, SSL_SESSION* session);

  SSL_CTX* ctx_ = nullptr;
  config::UpstreamTls settings_;
};

// True for a textual IPv4 or IPv6 address (never sent as SNI, verified as an IP address).
bool is_ip_literal(std::string_view name);

}  // namespace berth::tls
