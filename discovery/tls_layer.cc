#include "discovery/tls_layer.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace berth::discovery {

namespace {
std::string openssl_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    text += (text.empty() ? "" : "; ") + std::string(buf);
  }
  return text.empty() ? "unknown OpenSSL error" : text;
}

bool is_ip(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}
}  // namespace

std::shared_ptr<TlsContext> TlsContext::create(const config::DockerTls& files, std::string* error) {
  std::shared_ptr<TlsContext> context(new TlsContext());
  context->ctx_ = SSL_CTX_new(TLS_client_method());
  auto fail = [&](const std::string& what) -> std::shared_ptr<TlsContext> {
    if (error) *error = what + ": " + openssl_errors();
    return nullptr;
  };
  if (!context->ctx_) return fail("cannot create a TLS context");
  SSL_CTX_set_min_proto_version(context->ctx_, TLS1_2_VERSION);
  SSL_CTX_set_verify(context->ctx_, SSL_VERIFY_PEER, nullptr);
  if (!files.ca.empty()) {
    if (SSL_CTX_load_verify_locations(context->ctx_, files.ca.c_str(), nullptr) != 1)
      return fail("cannot load docker.tls.ca " + files.ca);
  } else if (SSL_CTX_set_default_verify_paths(context->ctx_) != 1) {
    return fail("cannot load the system CA certificates");
  }
  if (!files.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(context->ctx_, files.cert.c_str()) != 1)
      return fail("cannot load docker.tls.cert " + files.cert);
    if (SSL_CTX_use_PrivateKey_file(context->ctx_, files.key.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail("cannot load docker.tls.key " + files.key);
    if (SSL_CTX_check_private_key(context->ctx_) != 1)
      return fail("docker.tls.key does not match docker.tls.cert");
  }
  return context;
}

TlsContext::~TlsContext() {
  if (ctx_) SSL_CTX_free(ctx_);
}

TlsSession::TlsSession(SSL_CTX* ctx, const std::string& server_name) {
  ssl_ = SSL_new(ctx);
  if (!ssl_) return;
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl_, rbio_, wbio_);  // the SSL owns both BIOs now
  SSL_set_connect_state(ssl_);
  if (is_ip(server_name)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), server_name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, server_name.c_str());
    SSL_set1_host(ssl_, server_name.c_str());
  }
}

TlsSession::~TlsSession() {
  if (ssl_) SSL_free(ssl_);
}

std::string TlsSession::last_error(const char* what) { return std::string("TLS ") + what + ": " + openssl_errors(); }

void TlsSession::drain(std::string* out) {
  char buf[16384];
  while (BIO_ctrl_pending(wbio_) > 0) {
    int n = BIO_read(wbio_, buf, sizeof buf);
    if (n <= 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
}

bool TlsSession::start(std::string* out, std::string* error) {
  if (!ssl_) {
    if (error) *error = last_error("setup failed");
    return false;
  }
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc != 1) {
    int err = SSL_get_error(ssl_, rc);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      if (error) *error = last_error("handshake failed");
      return false;
    }
  } else {
    established_ = true;
  }
  drain(out);
  return true;
}

bool TlsSession::flush_pending(std::string* out, std::string* error) {
  if (!established_ || pending_.empty()) return true;
  std::string data = std::move(pending_);
  pending_.clear();
  return send(data, out, error);
}

bool TlsSession::receive(std::string_view cipher, std::string* plain, std::string* out, bool* closed,
                         std::string* error) {
  if (!ssl_) return false;
  ERR_clear_error();
  if (!cipher.empty() && BIO_write(rbio_, cipher.data(), static_cast<int>(cipher.size())) <= 0) {
    if (error) *error = last_error("buffer write failed");
    return false;
  }
  if (!established_) {
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) {
      established_ = true;
    } else {
      int err = SSL_get_error(ssl_, rc);
      drain(out);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return true;
      if (error) *error = last_error("handshake failed");
      return false;
    }
    if (!flush_pending(out, error)) return false;
  }
  char buf[16384];
  for (;;) {
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      plain->append(buf, static_cast<size_t>(n));
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) break;
    if (err == SSL_ERROR_ZERO_RETURN) {
      *closed = true;
      break;
    }
    if (error) *error = last_error("read failed");
    return false;
  }
  drain(out);
  return true;
}

bool TlsSession::send(std::string_view plain, std::string* out, std::string* error) {
  if (!ssl_) return false;
  if (!established_) {
    pending_.append(plain);
    return true;
  }
  ERR_clear_error();
  while (!plain.empty()) {
    int n = SSL_write(ssl_, plain.data(), static_cast<int>(plain.size()));
    if (n <= 0) {
      if (error) *error = last_error("write failed");
      return false;
    }
    plain.remove_prefix(static_cast<size_t>(n));
  }
  drain(out);
  return true;
}

}  // namespace berth::discovery
