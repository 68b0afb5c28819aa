#include "proxy/acme/acme_protocol.h"

#include <openssl/evp.h>

#include <algorithm>

#include "proxy/base/ascii.h"

namespace berth::acme {

std::string Problem::text() const {
  std::string_view short_type = type;
  if (const size_t colon = short_type.rfind(':'); colon != std::string_view::npos) short_type.remove_prefix(colon + 1);
  std::string out(short_type);
  if (!detail.empty()) out += ": " + detail;
  if (status) out += " (" + std::to_string(status) + ")";
  return out;
}

std::optional<Problem> parse_problem(std::string_view body, int http_status) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return std::nullopt;
  Problem p;
  p.type = j["type"].get<std::string>();
  if (j.contains("detail") && j["detail"].is_string()) p.detail = j["detail"].get<std::string>();
  p.status = j.contains("status") && j["status"].is_number_integer() ? j["status"].get<int>() : http_status;
  return p;
}

bool is_bad_nonce(const Problem& p) { return p.type == "urn:ietf:params:acme:error:badNonce"; }

std::optional<ChallengeChoice> pick_challenge(const nlohmann::json& authz, std::string_view type) {
  if (!authz.is_object() || !authz.contains("challenges") || !authz["challenges"].is_array()) return std::nullopt;
  for (const nlohmann::json& c : authz["challenges"]) {
    if (!c.is_object() || c.value("type", "") != type) continue;
    ChallengeChoice choice{c.value("url", ""), c.value("token", ""), c.value("status", "")};
    if (choice.url.empty() || choice.token.empty()) continue;
    return choice;
  }
  return std::nullopt;
}

std::string authorization_error(const nlohmann::json& authz) {
  if (!authz.is_object() || !authz.contains("challenges") || !authz["challenges"].is_array()) return {};
  for (const nlohmann::json& c : authz["challenges"]) {
    if (!c.is_object() || !c.contains("error")) continue;
    auto p = parse_problem(c["error"].dump(), 0);
    if (p) return c.value("type", "") + ": " + p->text();
  }
  return {};
}

std::chrono::seconds retry_delay(unsigned failures) {
  constexpr int64_t kFirst = 10, kMax = 3600;
  int64_t delay = kFirst;
  for (unsigned i = 1; i < failures && delay < kMax; ++i) delay *= 2;
  return std::chrono::seconds(std::min(delay, kMax));
}

int64_t renewal_time(int64_t not_before, int64_t not_after, std::chrono::milliseconds renew_before) {
  int64_t ahead = std::chrono::duration_cast<std::chrono::seconds>(renew_before).count();
  if (not_before > 0 && not_after > not_before) ahead = std::min(ahead, (not_after - not_before) / 3);
  return not_after - ahead;
}

std::string legacy_certificate_dir_name(const std::vector<std::string>& hosts) {
  std::string name = hosts.empty() ? std::string("none") : hosts.front();
  for (char& c : name) {
    c = ascii_lower(c);
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  }
  if (name.empty() || name[0] == '.') name = "_" + name;
  return name;
}

std::string certificate_dir_name(const std::vector<std::string>& hosts) {
  std::vector<std::string> names;
  for (const std::string& h : hosts) names.push_back(ascii_lowered(h));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::string name = legacy_certificate_dir_name(names.empty() ? hosts : std::vector<std::string>{names.front()});
  if (names.size() < 2) return name;
  std::string all;
  for (const std::string& n : names) all.append(n).push_back(',');
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(all.data(), all.size(), digest, &len, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  name.push_back('+');
  for (unsigned i = 0; i < 8 && i < len; ++i) {
    name.push_back(kHex[digest[i] >> 4]);
    name.push_back(kHex[digest[i] & 15]);
  }
  return name;
}

std::string new_account_payload(const std::string& email) {
  nlohmann::json j = {{"termsOfServiceAgreed", true}};
  if (!email.empty()) j["contact"] = nlohmann::json::array({"mailto:" + email});
  return j.dump();
}

std::string new_order_payload(const std::vector<std::string>& hosts) {
  nlohmann::json ids = nlohmann::json::array();
  for (const std::string& h : hosts) ids.push_back({{"type", "dns"}, {"value", h}});
  return nlohmann::json{{"identifiers", ids}}.dump();
}

}  // namespace berth::acme
