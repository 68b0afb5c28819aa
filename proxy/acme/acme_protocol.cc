#include "proxy/acme/acme_protocol.h"

#include <algorithm>

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

bool needs_renewal(int64_t not_after, int64_t now, std::chrono::milliseconds renew_before) {
  const int64_t before_s = std::chrono::duration_cast<std::chrono::seconds>(renew_before).count();
  return not_after - now < before_s;
}

std::string certificate_dir_name(const std::vector<std::string>& hosts) {
  std::string name = hosts.empty() ? std::string("none") : hosts.front();
  for (char& c : name) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  }
  if (name.empty() || name[0] == '.') name = "_" + name;
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
