#include "proxy/tls/client_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cstdlib>

namespace berth::tls {

namespace {

std::string openssl_error(const std::string& what) {
  const unsigned long e = ERR_peek_last_error();
  char buf[256] = "unknown error";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return what + ": " + buf;
}

// The SessionSlot of a connection, kept in its SSL.
int slot_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

bool is_ip_literal(std::string_view name) {
  if (name.empty() || name.size() > 45) return false;
  char text[46];
  name.copy(text, name.size());
  text[name.size()] = '\0';
  unsigned char addr[16];
  return inet_pton(AF_INET, text, addr) == 1 || inet_pton(AF_INET6, text, addr) == 1;
}

// An IPv4-mapped IPv6 literal (::ffff:a.b.c.d) as the IPv4 address it is ("a.b.c.d"): an
// instance at [::ffff:10.0.0.5] presents a certificate for the IP 10.0.0.5, and OpenSSL compares
// 16 bytes with 4. Other text unchanged.
std::string unmapped_ip(const std::string& name) {
  uint8_t addr[16];
  char text[INET_ADDRSTRLEN];
  if (inet_pton(AF_INET6, name.c_str(), addr) != 1 || !config::ipv4_mapped(addr) ||
      !inet_ntop(AF_INET, addr + 12, text, sizeof text))
    return name;
  return text;
}

SessionSlot::~SessionSlot() { SSL_SESSION_free(session_); }

void SessionSlot::store(SSL_SESSION* session) {
  SSL_SESSION_free(session_);
  session_ = session;
}

std::shared_ptr<const ClientContext> ClientContext::load(const config::UpstreamTls& settings, std::string* error) {
  std::shared_ptr<ClientContext> c(new ClientContext());
  c->settings_ = settings;
  ERR_clear_error();
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (!c->ctx_) {
    *error = openssl_error("cannot make a TLS client context");
    return nullptr;
  }
  SSL_CTX* ctx = c->ctx_;
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  static const unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn);
  // Sessions go to the connection's slot, not to a cache shared by the threads.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, new_session_cb);
  if (settings.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // Files only, read now: a hashed directory lookup would read files during handshakes.
    const int ok = settings.ca.empty() ? SSL_CTX_set_default_verify_file(ctx)
                                       : SSL_CTX_load_verify_file(ctx, settings.ca.c_str());
    if (ok != 1) {
      *error = openssl_error(settings.ca.empty() ? std::string("cannot load the system CA store")
                                                 : "cannot load the CA file '" + settings.ca + "'");
      return nullptr;
    }
    // OpenSSL says yes to a system store file that is missing (no ca-certificates package, a
    // slim image): every handshake would then fail verification. Said now, once, instead.
    if (settings.ca.empty() && sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx))) == 0) {
      const char* env = std::getenv(X509_get_default_cert_file_env());
      *error = std::string("the system CA store '") + (env && *env ? env : X509_get_default_cert_file()) +
               "' holds no certificate (install ca-certificates, or set tls.ca)";
      return nullptr;
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!settings.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, settings.cert.c_str()) != 1) {
      *error = openssl_error("cannot load the client certificate '" + settings.cert + "'");
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, settings.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      *error = openssl_error("cannot load the client key '" + settings.key + "'");
      return nullptr;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
      *error = openssl_error("'" + settings.key + "' does not match '" + settings.cert + "'");
      return nullptr;
    }
  }
  return c;
}

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

SSL* ClientContext::new_session(std::string_view instance_ip, SessionSlot* slot) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  SSL_set_connect_state(ssl);
  const std::string name = unmapped_ip(settings_.server_name.empty() ? std::string(instance_ip) : settings_.server_name);
  const bool ip = is_ip_literal(name);
  bool ok = true;
  if (!ip && !name.empty()) ok = SSL_set_tlsext_host_name(ssl, name.c_str()) == 1;
  if (ok && settings_.verify && !name.empty()) {
    if (ip) ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) == 1;
    else ok = SSL_set1_host(ssl, name.c_str()) == 1;
  }
  if (!ok) {
    ERR_clear_error();
    SSL_free(ssl);
    return nullptr;
  }
  if (slot) {
    SSL_set_ex_data(ssl, slot_index(), slot);
    if (SSL_SESSION* s = slot->get(); s && SSL_SESSION_is_resumable(s)) SSL_set_session(ssl, s);
  }
  return ssl;
}

int ClientContext::new_session_cb(SSL* ssl, SSL_SESSION* session) {
  auto* slot = static_cast<SessionSlot*>(SSL_get_ex_data(ssl, slot_index()));
  // A copy: OpenSSL marks the connection's own session unusable when the connection ends
  // without a close_notify, which is how pooled connections usually end.
  if (slot)
    if (SSL_SESSION* copy = SSL_SESSION_dup(session)) slot->store(copy);
  return 0;  // the connection keeps its own
}

}  // namespace berth::tls
