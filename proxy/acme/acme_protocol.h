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

// When a certificate valid from `not_before` to `not_after` (Unix seconds) is due for renewal:
// renew_before ahead of its end, but never earlier than when a third of its lifetime is left
// (a CA issuing certificates shorter than renew_before would otherwise be asked again at once,
// for ever). A not_before of 0 (unknown) leaves renew_before alone.
int64_t renewal_time(int64_t not_before, int64_t not_after, std::chrono::milliseconds renew_before);
inline bool needs_renewal(int64_t not_before, int64_t not_after, int64_t now, std::chrono::milliseconds renew_before) {
  return now >= renewal_time(not_before, not_after, renew_before);
}

// The storage directory name of a certificate for `hosts`: the first of them in sorted order
// (lower-case) made safe for a file name (lower-case letters, digits, '.', '-' and '_'), and when
// there are several names, '+' and 16 hex digits of a SHA-256 over all of them (sorted): two
// routes that share a host but not their other names keep apart, whatever the order of names.
std::string certificate_dir_name(const std::vector<std::string>& hosts);
// The name Berth used before (the first host alone): read when the current one holds nothing.
std::string legacy_certificate_dir_name(const std::vector<std::string>& hosts);

// The JSON payloads the client sends.
std::string new_account_payload(const std::string& email);
std::string new_order_payload(const std::vector<std::string>& hosts);

}  // namespace berth::acme
