#include "proxy/tls/server_context.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>
#include <unordered_map>

#include "config/tls_files.h"
#include "proxy/tls/challenge_board.h"
#include "proxy/tls/session_ticket.h"

namespace berth::tls {

namespace {

// ---- handshake error counts

std::array<std::atomic<uint64_t>, static_cast<size_t>(HandshakeError::kCount)> g_handshake_errors{};

// ---- ALPN: HTTP/1.1 only for now (h2 is a later addition to this list), and `acme-tls/1`
// (RFC 8737) when the ACME client has a challenge certificate for the SNI name: that
// certificate is then installed on the connection, which carries no HTTP.
int alpn_select_cb(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                   unsigned int inlen, void*) {
  static const unsigned char kAcmeTls[] = {10, 'a', 'c', 'm', 'e', '-', 't', 'l', 's', '/', '1'};
  static const unsigned char kProtocols[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kAcmeTls, sizeof kAcmeTls, in, inlen) == OPENSSL_NPN_NEGOTIATED &&
      challenge_board().use_alpn_certificate(ssl)) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  if (SSL_select_next_proto(&selected, outlen, kProtocols, sizeof kProtocols, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;  // a client offering only other protocols still gets HTTP/1.1
}

constexpr const char* kCiphers12 =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* kCiphers13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr const char* kGroups = "X25519:P-256:P-384";

std::string openssl_error(const std::string& what) {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (!e) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return what + " (" + buf + ")";
}

std::optional<std::string> slurp(const std::string& path, std::string* error) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *error = "cannot read '" + path + "': " + std::generic_category().message(errno);
    return std::nullopt;
  }
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "cannot read '" + path + "': " + std::generic_category().message(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (4u << 20)) {
      *error = "'" + path + "' is larger than 4 MiB";
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return out;
}

std::vector<std::string> dns_names(X509* cert) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      std::string name = SniIndex::normalize(
          std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s)));
      if (!name.empty()) names.push_back(std::move(name));
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      std::string name = SniIndex::normalize(cn);
      if (!name.empty()) names.push_back(std::move(name));
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

const char* key_type_name(int id) {
  switch (id) {
    case EVP_PKEY_RSA: return "rsa";
    case EVP_PKEY_RSA_PSS: return "rsa-pss";
    case EVP_PKEY_EC: return "ecdsa";
    case EVP_PKEY_ED25519: return "ed25519";
    case EVP_PKEY_ED448: return "ed448";
    default: return "other";
  }
}

}  // namespace

const char* handshake_error_name(HandshakeError cause) {
  switch (cause) {
    case HandshakeError::kProtocolVersion: return "protocol_version";
    case HandshakeError::kNoSharedCipher: return "no_shared_cipher";
    case HandshakeError::kClientCertificate: return "client_certificate";
    case HandshakeError::kHttpRequest: return "http_request";
    case HandshakeError::kPeerClosed: return "peer_closed";
    case HandshakeError::kIncomplete: return "incomplete";
    case HandshakeError::kOther: case HandshakeError::kCount: break;
  }
  return "other";
}

void count_handshake_error(HandshakeError cause) {
  g_handshake_errors[static_cast<size_t>(cause)].fetch_add(1, std::memory_order_relaxed);
}

uint64_t handshake_errors(HandshakeError cause) {
  return g_handshake_errors[static_cast<size_t>(cause)].load(std::memory_order_relaxed);
}

ServerContext::~ServerContext() {
  for (Group& g : groups_) SSL_CTX_free(g.ctx);
}

SSL_CTX* ServerContext::make_ctx(const ServerOptions& options, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    *error = openssl_error("SSL_CTX_new failed");
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, options.min_version);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Idle connections give their record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // Stateless resumption only (tickets); no per-context session cache to lock or fill.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  // A session resumes only where it could have been made: the context names the client
  // certificate demand (the CA file's bytes) and the minimum version. Ticket keys are shared by
  // every listener, so with one fixed context a ticket from a listener without client_ca (or from
  // before client_ca was set or changed) resumed without a certificate.
  unsigned char sid_context[SHA256_DIGEST_LENGTH];
  const std::string sid_input =
      "berth tls-server v1 min=" + std::to_string(options.min_version) + " client_ca=" + options.client_ca_pem;
  SHA256(reinterpret_cast<const unsigned char*>(sid_input.data()), sid_input.size(), sid_context);
  static_assert(sizeof sid_context <= SSL_MAX_SID_CTX_LENGTH);
  SSL_CTX_set_session_id_context(ctx, sid_context, sizeof sid_context);
  if (options.session_tickets) {
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb);
    SSL_CTX_set_num_tickets(ctx, 1);
  } else {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  if (SSL_CTX_set_cipher_list(ctx, kCiphers12) != 1 || SSL_CTX_set_ciphersuites(ctx, kCiphers13) != 1 ||
      SSL_CTX_set1_groups_list(ctx, kGroups) != 1) {
    *error = openssl_error("cannot set the cipher suites");
    SSL_CTX_free(ctx);
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, nullptr);
  SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, nullptr);
  SSL_CTX_set_tlsext_servername_callback(ctx, servername_cb);
  SSL_CTX_set_tlsext_servername_arg(ctx, this);
  // Decided by the config, never by the file's content: a client_ca file found empty (written in
  // place, a full disk) must refuse the reload, not turn client certificates off.
  if (options.verify_clients) {
    if (std::string problem = config::check_ca_bundle(options.client_ca_pem); !problem.empty()) {
      *error = "client_ca: " + problem;
      SSL_CTX_free(ctx);
      return nullptr;
    }
    BIO* b = BIO_new_mem_buf(options.client_ca_pem.data(), static_cast<int>(options.client_ca_pem.size()));
    STACK_OF(X509_INFO)* infos = PEM_X509_INFO_read_bio(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    // Each CA listed is an anchor, an intermediate too: a client certificate it signed is
    // accepted without its root (which would trust every other intermediate under that root).
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
    STACK_OF(X509_NAME)* ca_names = sk_X509_NAME_new_null();
    int added = 0;
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); ++i) {
      X509_INFO* info = sk_X509_INFO_value(infos, i);
      if (!info->x509) continue;
      X509_STORE_add_cert(store, info->x509);
      sk_X509_NAME_push(ca_names, X509_NAME_dup(X509_get_subject_name(info->x509)));
      ++added;
    }
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    SSL_CTX_set_client_CA_list(ctx, ca_names);  // takes ownership
    if (added == 0) {
      *error = openssl_error("client_ca holds no PEM certificate");
      SSL_CTX_free(ctx);
      return nullptr;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  ERR_clear_error();
  return ctx;
}

std::shared_ptr<const ServerContext> ServerContext::build(const std::vector<CertificatePem>& certificates,
                                                          const ServerOptions& options, std::string* error) {
  std::shared_ptr<ServerContext> sc(new ServerContext());
  if (certificates.empty()) {
    *error = "no certificate";
    return nullptr;
  }
  // Each certificate with its key and chain, in order; freed when this returns (a context that
  // uses one holds references of its own).
  struct Loaded {
    X509* leaf = nullptr;
    EVP_PKEY* key = nullptr;
    STACK_OF(X509)* chain = nullptr;
    int key_type = 0;
    Loaded() = default;
    Loaded(const Loaded&) = delete;
    Loaded& operator=(const Loaded&) = delete;
    ~Loaded() {
      EVP_PKEY_free(key);
      X509_free(leaf);
      sk_X509_pop_free(chain, X509_free);
    }
  };
  std::vector<Loaded> loaded(certificates.size());
  for (size_t i = 0; i < certificates.size(); ++i) {
    const CertificatePem& pem = certificates[i];
    Loaded& l = loaded[i];
    // A chain cut off after its leaf would otherwise load and be served without its intermediate.
    if (std::string problem = config::check_certificates(pem.cert_pem); !problem.empty()) {
      *error = pem.origin + ": " + problem;
      return nullptr;
    }
    BIO* cb = BIO_new_mem_buf(pem.cert_pem.data(), static_cast<int>(pem.cert_pem.size()));
    l.leaf = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    l.chain = sk_X509_new_null();
    while (l.leaf) {
      X509* extra = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
      if (!extra) break;
      sk_X509_push(l.chain, extra);
    }
    BIO_free(cb);
    ERR_clear_error();  // the end of the chain reads as an error
    BIO* kb = BIO_new_mem_buf(pem.key_pem.data(), static_cast<int>(pem.key_pem.size()));
    l.key = l.leaf ? PEM_read_bio_PrivateKey(kb, nullptr, [](char*, int, int, void*) { return 0; }, nullptr) : nullptr;
    BIO_free(kb);
    if (!l.leaf) *error = pem.origin + ": " + openssl_error("no PEM certificate");
    else if (!l.key) *error = pem.origin + ": " + openssl_error("no usable PEM private key");
    else if (X509_check_private_key(l.leaf, l.key) != 1) *error = pem.origin + ": the key does not match the certificate";
    if (!l.leaf || !l.key || !error->empty()) {
      if (error->empty()) *error = pem.origin + ": cannot load";
      ERR_clear_error();
      return nullptr;
    }
    CertificateFacts facts;
    facts.origin = pem.origin;
    facts.names = dns_names(l.leaf);
    l.key_type = EVP_PKEY_get_base_id(l.key);
    facts.key_type = key_type_name(l.key_type);
    struct tm tm {};
    if (ASN1_TIME_to_tm(X509_get0_notAfter(l.leaf), &tm) == 1) facts.not_after_unix = timegm(&tm);
    sc->facts_.push_back(std::move(facts));
  }

  // Per name (exact, or a "*." wildcard as written): the first certificate of each key type that
  // holds it, in order. Names whose choice is the same share one context; OpenSSL then picks
  // among its certificates (one RSA, one ECDSA, ...) the one the client's offer supports.
  std::vector<std::string> names;  // in order of first appearance
  std::unordered_map<std::string, std::vector<size_t>> choice;
  for (size_t i = 0; i < loaded.size(); ++i)
    for (const std::string& name : sc->facts_[i].names) {
      auto [it, fresh] = choice.try_emplace(name);
      if (fresh) names.push_back(name);
      std::vector<size_t>& certs = it->second;
      const bool have_type = std::any_of(certs.begin(), certs.end(),
                                         [&](size_t c) { return loaded[c].key_type == loaded[i].key_type; });
      if (!have_type) {
        certs.push_back(i);
        sc->facts_[i].served_for.push_back(name);
      }
    }
  // An exact name lacking a key type that a wildcard over it has takes the wildcard's (an RSA
  // certificate for x.a.test beside an ECDSA one for *.a.test: ECDSA-only clients of x.a.test
  // get the wildcard, as they would without the RSA one).
  for (const std::string& name : names) {
    const size_t dot = name.find('.');
    if (name.rfind("*.", 0) == 0 || dot == std::string::npos) continue;
    auto wild = choice.find("*." + name.substr(dot + 1));
    if (wild == choice.end()) continue;
    std::vector<size_t>& certs = choice.find(name)->second;
    for (size_t w : wild->second)
      if (std::none_of(certs.begin(), certs.end(), [&](size_t c) { return loaded[c].key_type == loaded[w].key_type; }))
        certs.push_back(w);
  }
  std::map<std::vector<size_t>, size_t> group_of;  // a choice -> its context
  auto group_for = [&](const std::vector<size_t>& certs) -> std::optional<size_t> {
    if (auto it = group_of.find(certs); it != group_of.end()) return it->second;
    SSL_CTX* ctx = sc->make_ctx(options, error);
    if (!ctx) return std::nullopt;
    sc->groups_.push_back(Group{ctx});
    for (size_t c : certs) {
      sc->facts_[c].served = true;
      if (SSL_CTX_use_cert_and_key(ctx, loaded[c].leaf, loaded[c].key, loaded[c].chain, 1) != 1) {
        *error = certificates[c].origin + ": " + openssl_error("OpenSSL refused the certificate");
        return std::nullopt;
      }
    }
    group_of.emplace(certs, sc->groups_.size() - 1);
    return sc->groups_.size() - 1;
  };
  // The default (no SNI, or a name no certificate holds): the first certificate, with those of
  // other key types that hold its first name.
  const std::vector<size_t> first = names.empty() || sc->facts_[0].names.empty()
                                        ? std::vector<size_t>{0}
                                        : choice[sc->facts_[0].names.front()];
  if (!group_for(first)) return nullptr;
  sc->sni_.add(0, {});
  for (const std::string& name : names) {
    std::optional<size_t> g = group_for(choice[name]);
    if (!g) return nullptr;
    sc->sni_.add(*g, {name});
  }
  ERR_clear_error();
  return sc;
}

std::shared_ptr<const ServerContext> ServerContext::load(const config::ListenerTls& tls, std::string* error,
                                                         const std::vector<CertificatePem>& extra) {
  std::vector<CertificatePem> pems;
  for (const config::TlsCertificate& c : tls.certificates) {
    CertificatePem pem;
    pem.origin = c.cert;
    auto cert = slurp(c.cert, error);
    if (!cert) return nullptr;
    auto key = slurp(c.key, error);
    if (!key) return nullptr;
    // The same checks and words as the configuration's: which of the two files is wrong.
    if (std::string problem = config::check_tls_pair(*cert, *key); !problem.empty()) {
      *error = "'" + c.cert + "' and '" + c.key + "': " + problem;
      return nullptr;
    }
    pem.cert_pem = std::move(*cert);
    pem.key_pem = std::move(*key);
    pems.push_back(std::move(pem));
  }
  pems.insert(pems.end(), extra.begin(), extra.end());
  ServerOptions options;
  options.min_version = tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  options.session_tickets = tls.session_tickets;
  if (!tls.client_ca.empty()) {
    auto ca = slurp(tls.client_ca, error);
    if (!ca) return nullptr;
    options.verify_clients = true;
    options.client_ca_pem = std::move(*ca);
  }
  return build(pems, options, error);
}

namespace {
int requested_name_slot() {
  static const int slot = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}
}  // namespace

SSL* ServerContext::new_session(std::string* requested_name, bool* flight_made) const {
  SSL* ssl = SSL_new(groups_.front().ctx);
  if (!ssl) return nullptr;
  SSL_set_accept_state(ssl);
  SSL_set_ex_data(ssl, requested_name_slot(), requested_name);
  // Each handshake message the server writes: a Certificate or a ServerKeyExchange (a full
  // handshake) or a Finished (a resumed one) comes with the costly part done.
  SSL_set_msg_callback(ssl, [](int write_p, int, int content_type, const void* buf, size_t len, SSL*, void* arg) {
    if (!write_p || content_type != SSL3_RT_HANDSHAKE || len == 0) return;
    const unsigned char type = *static_cast<const unsigned char*>(buf);
    if (type == SSL3_MT_CERTIFICATE || type == SSL3_MT_SERVER_KEY_EXCHANGE || type == SSL3_MT_FINISHED)
      *static_cast<bool*>(arg) = true;
  });
  SSL_set_msg_callback_arg(ssl, flight_made);
  return ssl;
}

// Runs first on every ClientHello, before any session is resumed: the server_name extension as
// the client sent it (RFC 6066 section 3: a u16 list length, then entries of a u8 type, a u16
// length and the name; type 0 is a host name). A name OpenSSL would refuse (not printable ASCII)
// is not kept; the handshake then fails anyway.
int ServerContext::client_hello_cb(SSL* ssl, int*, void*) {
  auto* out = static_cast<std::string*>(SSL_get_ex_data(ssl, requested_name_slot()));
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (!out || SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2)
    return SSL_CLIENT_HELLO_SUCCESS;
  const size_t end = std::min(len, 2 + ((size_t{p[0]} << 8) | p[1]));
  for (size_t i = 2; i + 3 <= end;) {
    const size_t n = (size_t{p[i + 1]} << 8) | p[i + 2];
    const unsigned char type = p[i];
    i += 3;
    if (i + n > end) break;
    if (type == TLSEXT_NAMETYPE_host_name) {
      const std::string_view name(reinterpret_cast<const char*>(p + i), n);
      if (!name.empty() && name.size() <= 255 &&
          std::all_of(name.begin(), name.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
        out->assign(name);
      break;
    }
    i += n;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

// Runs early in the ClientHello: switches the connection to the context holding the
// certificates for the name asked (OpenSSL then chooses RSA or ECDSA among them).
int ServerContext::servername_cb(SSL* ssl, int*, void* arg) {
  const auto* self = static_cast<const ServerContext*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const size_t g = self->sni_.pick(name ? std::string_view(name) : std::string_view());
  if (g != 0 && g < self->groups_.size()) SSL_set_SSL_CTX(ssl, self->groups_[g].ctx);
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace berth::tls
