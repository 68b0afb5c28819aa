#include "proxy/acme/acme_client.h"

#include <chrono>
#include <thread>

#include "proxy/acme/acme_protocol.h"
#include "proxy/base/base64.h"
#include "proxy/base/log.h"
#include "proxy/tls/challenge_board.h"

namespace berth::acme {

namespace {
constexpr const char* kJose = "application/jose+json";
constexpr auto kPollInterval = std::chrono::milliseconds(500);
constexpr int kMaxPolls = 60;

std::string describe(const HttpResponse& r) {
  if (auto p = parse_problem(r.body, r.status)) return p->text();
  return "HTTP " + std::to_string(r.status);
}
}  // namespace

bool AcmeClient::expect(const HttpResponse& r, std::initializer_list<int> ok, const std::string& what,
                        std::string* error) {
  for (int s : ok)
    if (r.status == s) return true;
  *error = what + ": " + describe(r);
  return false;
}

bool AcmeClient::fetch_nonce(std::string* error) {
  HttpResponse r;
  if (!http_.request("GET", new_nonce_url_, "", "", &r, error)) return false;
  nonce_ = r.header("replay-nonce");
  if (nonce_.empty()) {
    *error = "newNonce: no Replay-Nonce in the answer (HTTP " + std::to_string(r.status) + ")";
    return false;
  }
  return true;
}

bool AcmeClient::post(const std::string& url, const std::string& payload, HttpResponse* out, std::string* error) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (nonce_.empty() && !fetch_nonce(error)) return false;
    const std::string jws = make_jws(account_key_.get(), kid_, nonce_, url, payload);
    nonce_.clear();
    if (jws.empty()) {
      *error = "cannot sign the request to " + url;
      return false;
    }
    if (!http_.request("POST", url, kJose, jws, out, error)) return false;
    nonce_ = out->header("replay-nonce");
    if (out->status == 400) {
      auto p = parse_problem(out->body, out->status);
      if (p && is_bad_nonce(*p)) {
        log::debug("acme_bad_nonce").kv("url", url).kv("attempt", attempt + 1);
        continue;  // again, with the nonce this answer carried
      }
    }
    return true;
  }
  *error = "the server refused 5 nonces in a row (badNonce) for " + url;
  return false;
}

bool AcmeClient::ensure_account(std::string* error) {
  if (!http_ready_) {
    if (!http_.init(cfg_.ca_bundle, error)) return false;
    http_ready_ = true;
  }
  if (!account_key_) {
    if (auto pem = store_.read_account_key()) {
      account_key_ = private_key_from_pem(*pem);
      if (!account_key_) {
        *error = store_.dir() + "/account.key is not an ECDSA P-256 private key";
        return false;
      }
    } else {
      account_key_ = generate_p256_key();
      if (!account_key_ || !store_.write_account_key(private_key_pem(account_key_.get()), error)) {
        if (error->empty()) *error = "cannot make the account key";
        account_key_.reset();
        return false;
      }
      log::info("acme_account_key_created").kv("file", store_.dir() + "/account.key");
    }
    thumbprint_ = jwk_thumbprint(account_key_.get());
  }
  if (!kid_.empty()) return true;
  HttpResponse dir;
  if (!http_.request("GET", cfg_.directory, "", "", &dir, error)) return false;
  if (!expect(dir, {200}, "directory " + cfg_.directory, error)) return false;
  nlohmann::json j = nlohmann::json::parse(dir.body, nullptr, false);
  if (!j.is_object()) {
    *error = "directory " + cfg_.directory + ": not a JSON object";
    return false;
  }
  new_nonce_url_ = j.value("newNonce", "");
  new_account_url_ = j.value("newAccount", "");
  new_order_url_ = j.value("newOrder", "");
  if (new_nonce_url_.empty() || new_account_url_.empty() || new_order_url_.empty()) {
    *error = "directory " + cfg_.directory + ": newNonce, newAccount or newOrder missing";
    return false;
  }
  HttpResponse r;
  if (!post(new_account_url_, new_account_payload(cfg_.email), &r, error)) return false;
  if (!expect(r, {200, 201}, "newAccount", error)) return false;
  kid_ = r.header("location");
  if (kid_.empty()) {
    *error = "newAccount: no Location (account URL) in the answer";
    return false;
  }
  log::info("acme_account").kv("account", kid_).kv("created", r.status == 201);
  return true;
}

bool AcmeClient::poll(const std::string& url, std::initializer_list<std::string_view> waiting, nlohmann::json* body,
                      std::string* error) {
  for (int i = 0; i < kMaxPolls; ++i) {
    if (stopping_.load()) {
      *error = "stopping";
      return false;
    }
    HttpResponse r;
    if (!post(url, "", &r, error)) return false;
    if (!expect(r, {200}, "poll " + url, error)) return false;
    *body = nlohmann::json::parse(r.body, nullptr, false);
    const std::string status = body->is_object() ? body->value("status", "") : "";
    bool wait = false;
    for (std::string_view w : waiting) wait = wait || status == w;
    if (!wait) return true;
    std::this_thread::sleep_for(kPollInterval);
  }
  *error = "still pending after " + std::to_string(kMaxPolls) + " polls: " + url;
  return false;
}

bool AcmeClient::authorize(const std::string& authz_url, std::string* error) {
  HttpResponse r;
  if (!post(authz_url, "", &r, error) || !expect(r, {200}, "authorization", error)) return false;
  nlohmann::json authz = nlohmann::json::parse(r.body, nullptr, false);
  if (!authz.is_object()) {
    *error = "authorization: not a JSON object";
    return false;
  }
  if (authz.value("status", "") == "valid") return true;  // proved earlier (reused)
  const std::string name = authz.contains("identifier") ? authz["identifier"].value("value", "") : "";
  const char* type = config::acme_challenge_name(cfg_.challenge);
  auto choice = pick_challenge(authz, type);
  if (!choice) {
    *error = "authorization for " + name + ": the server offers no " + type + " challenge";
    return false;
  }
  const std::string key_auth = key_authorization(choice->token, thumbprint_);
  tls::ChallengeBoard& board = tls::challenge_board();
  if (cfg_.challenge == config::Acme::Challenge::kHttp01) {
    board.set_http(choice->token, key_auth);
  } else {
    std::string cert, key;
    if (!make_alpn_challenge_certificate(name, key_auth, &cert, &key, error)) return false;
    if (!board.set_alpn(name, cert, key)) {
      *error = "cannot load the tls-alpn-01 certificate for " + name;
      return false;
    }
  }
  log::info("acme_challenge").kv("name", name).kv("type", type);
  HttpResponse answered;
  bool ok = post(choice->url, "{}", &answered, error) && expect(answered, {200}, "challenge " + name, error);
  nlohmann::json final_authz;
  ok = ok && poll(authz_url, {"pending"}, &final_authz, error);
  if (cfg_.challenge == config::Acme::Challenge::kHttp01) board.clear_http(choice->token);
  else board.clear_alpn(name);
  if (!ok) return false;
  const std::string status = final_authz.value("status", "");
  if (status != "valid") {
    std::string why = authorization_error(final_authz);
    *error = "authorization for " + name + " is " + status + (why.empty() ? std::string() : ": " + why);
    return false;
  }
  return true;
}

bool AcmeClient::obtain(const std::vector<std::string>& hosts, StoredCertificate* out, std::string* error) {
  if (!ensure_account(error)) return false;
  HttpResponse r;
  ++orders_;
  if (!post(new_order_url_, new_order_payload(hosts), &r, error) || !expect(r, {201}, "newOrder", error)) return false;
  const std::string order_url = r.header("location");
  nlohmann::json order = nlohmann::json::parse(r.body, nullptr, false);
  if (order_url.empty() || !order.is_object() || !order.contains("authorizations") ||
      !order["authorizations"].is_array()) {
    *error = "newOrder: the answer has no Location or authorizations";
    return false;
  }
  log::info("acme_order").kv("hosts", hosts.front()).kv("order", order_url);
  for (const nlohmann::json& a : order["authorizations"]) {
    if (!a.is_string() || !authorize(a.get<std::string>(), error)) {
      if (error->empty()) *error = "newOrder: an authorization is not a URL";
      return false;
    }
  }
  if (!poll(order_url, {"pending"}, &order, error)) return false;
  if (order.value("status", "") != "ready") {
    *error = "order is " + order.value("status", std::string("?")) + " before finalize";
    return false;
  }
  Pkey key = generate_p256_key();
  const std::string csr = key ? make_csr_der(key.get(), hosts) : std::string();
  if (csr.empty()) {
    *error = "cannot make the CSR";
    return false;
  }
  const std::string finalize_payload = nlohmann::json{{"csr", base64url_encode(csr)}}.dump();
  if (!post(order.value("finalize", ""), finalize_payload, &r, error) || !expect(r, {200}, "finalize", error))
    return false;
  if (!poll(order_url, {"processing", "ready"}, &order, error)) return false;
  const std::string cert_url = order.value("certificate", "");
  if (order.value("status", "") != "valid" || cert_url.empty()) {
    *error = "order is " + order.value("status", std::string("?")) + " after finalize";
    return false;
  }
  if (!post(cert_url, "", &r, error) || !expect(r, {200}, "certificate download", error)) return false;
  if (r.body.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
    *error = "certificate download: no PEM certificate in the answer";
    return false;
  }
  out->chain_pem = r.body;
  out->key_pem = private_key_pem(key.get());
  return true;
}

}  // namespace berth::acme
