// The pure decisions of the ACME client (RFC 8555), kept apart from sockets so they are unit
// tested: problem documents, which challenge to answer, backoff after failures, when to renew,
// and where a certificate lives in storage.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::acme {

// An RFC 7807 problem document ({type, detail, status}).
struct Problem {
  std::string type;    // "urn:ietf:params:acme:error:badNonce", ...
  std::string detail;
  int status = 0;
  std::string text() const;  // "badNonce: detail (400)"
};
// nullopt when `body` is not a JSON object with a "type".
std::optional<Problem> parse_problem(std::string_view body, int http_status);
bool is_bad_nonce(const Problem& p);

struct ChallengeChoice {
  std::string url;
  std::string token;
  std::string status;
};
// The challenge of `type` ("http-01", "tls-alpn-01") in an authorization object; nullopt if the
// server offers none (the offer's order is random).
std::optional<ChallengeChoice> pick_challenge(const nlohmann::json& authz, std::string_view type);
// Why an authorization failed, from its challenges' "error" members ("" = none given).
std::string authorization_error(const nlohmann::json& authz);

// The wait before attempt number failures+1 after `failures` failures in a row (>= 1):
// 10 s, doubling, capped at 1 h.
std::chrono::seconds retry_delay(unsigned failures);

// Whether a certificate expiring at `not_after` (Unix seconds) is due for renewal at `now`.
bool needs_renewal(int64_t not_after, int64_t now, std::chrono::milliseconds renew_before);

// The storage directory name of a certificate for `hosts` (the first host, made safe for a
// file name: lower-case letters, digits, '.', '-' and '_').
std::string certificate_dir_name(const std::vector<std::string>& hosts);

// The JSON payloads the client sends.
std::string new_account_payload(const std::string& email);
std::string new_order_payload(const std::vector<std::string>& hosts);

}  // namespace berth::acme
