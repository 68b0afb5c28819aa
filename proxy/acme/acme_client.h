// One ACME conversation (RFC 8555) over blocking HTTPS, for the ACME thread: directory,
// nonces, the account (ES256 key, `kid` once registered), then per certificate newOrder, the
// authorizations with the configured challenge answered by Berth itself (through
// tls::challenge_board()), polling by POST-as-GET, finalize with a CSR and the download.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <initializer_list>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/acme/acme_crypto.h"
#include "proxy/acme/acme_store.h"
#include "proxy/acme/https_client.h"

namespace berth::acme {

class AcmeClient {
 public:
  AcmeClient(const config::Acme& cfg, const AcmeStore& store, const std::atomic<bool>& stopping)
      : cfg_(cfg), store_(store), stopping_(stopping) {}

  // Loads (or creates and stores) the account key, reads the directory and registers the
  // account (or finds it again). false with *error.
  bool ensure_account(std::string* error);
  // Orders, proves and downloads a certificate for `hosts` with a new P-256 key.
  bool obtain(const std::vector<std::string>& hosts, StoredCertificate* out, std::string* error);

  uint64_t orders() const { return orders_; }
  // From any thread: the request under way and every later one fail at once (stopping).
  void cancel() { http_.cancel(); }

 private:
  // POST with a JWS (payload "" = POST-as-GET), retrying badNonce with the nonce returned.
  bool post(const std::string& url, const std::string& payload, HttpResponse* out, std::string* error);
  bool fetch_nonce(std::string* error);
  bool expect(const HttpResponse& r, std::initializer_list<int> ok, const std::string& what, std::string* error);
  // POST-as-GET `url` every 500 ms until its "status" is no longer one of `waiting` (at most
  // 60 times). The final object is left in *body.
  bool poll(const std::string& url, std::initializer_list<std::string_view> waiting, nlohmann::json* body,
            std::string* error);
  bool authorize(const std::string& authz_url, std::string* error);

  const config::Acme& cfg_;
  const AcmeStore& store_;
  const std::atomic<bool>& stopping_;
  HttpsClient http_;
  bool http_ready_ = false;
  Pkey account_key_;
  std::string thumbprint_;
  std::string kid_;
  std::string nonce_;
  std::string new_nonce_url_, new_account_url_, new_order_url_;
  uint64_t orders_ = 0;
};

}  // namespace berth::acme
