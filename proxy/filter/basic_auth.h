// HTTP Basic authentication (routes[].access.basic_auth): 401 auth-required with
// WWW-Authenticate unless the request carries a user and password that match the htpasswd file.
//
// Password hashes (bcrypt, SHA-512 crypt, yescrypt) are slow by design, so they are never
// checked on a worker loop: the filter goes pending and libcrypt runs on a background thread
// at idle priority (proxy/base/background.h); the answer comes back to the loop. Credentials verified once are remembered per worker (a
// bounded cache keyed by a SHA-256 of user and password, never the password itself), so a
// client that sends the same credentials again passes at once. Checks in flight per worker are
// bounded: beyond the bound, 503 auth-busy (Retry-After: 1) instead of an unbounded queue.
// A 401 does not tell which users exist: an unknown user's password is checked at the costliest
// entry's cost, and a failed check of a cheaper entry is padded to that cost's measured time.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "config/config.h"
#include "proxy/filter/filter.h"

namespace berth {

// "Basic <base64(user:password)>" -> user and password; false when absent or malformed.
bool parse_basic_credentials(std::string_view authorization, std::string& user, std::string& password);

// Whether `password` matches crypt `hash` (libcrypt; constant-time comparison). Slow: call it
// off the event loops.
bool verify_password(const std::string& password, const std::string& hash);

class BasicAuthFilter final : public RequestFilter {
 public:
  static constexpr size_t kMaxChecksInFlight = 64;  // per worker
  static constexpr size_t kCacheEntries = 1024;      // per worker

  explicit BasicAuthFilter(const config::BasicAuth& config);
  std::string_view name() const override { return "access.basic_auth"; }
  const config::BasicAuth& config() const noexcept { return config_; }
  // What an unknown user's password is checked against ("" when the file has no users).
  const std::string& unknown_user_setting() const { return unknown_user_setting_; }
  std::unique_ptr<FilterState> make_state() const override;
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;

  using Digest = std::array<uint8_t, 32>;
  struct DigestHash {
    size_t operator()(const Digest& d) const noexcept;
  };
  // Per worker: the credentials verified so far, and the checks running. Shared with checks in
  // flight, which may finish after the state was dropped with its filter.
  struct Shared {
    std::unordered_map<Digest, bool, DigestHash> verified;
    size_t in_flight = 0;
  };

 private:
  void challenge(FilterReply& reply) const;
  void pass(HeaderEdits& edits) const;

  struct User {
    std::string hash;
    bool cheaper = false;  // costs less than the costliest entry: a failed check is padded
  };
  config::BasicAuth config_;  // as built from (a reload with the same keeps this filter)
  std::unordered_map<std::string, User> users_;
  std::string challenge_;  // WWW-Authenticate value
  // The salt and cost of the costliest user's hash, without the hash: an unknown user's
  // password is checked against it, so it costs what a known user's does and never matches.
  std::string unknown_user_setting_;
  // How long a check at that cost takes here (nanoseconds, smoothed over the checks that ran at
  // it; 0 until one has). A failed check of a cheaper entry waits out the difference, so no 401
  // comes sooner than an unknown user's. Shared with checks in flight.
  std::shared_ptr<std::atomic<int64_t>> costliest_ns_ = std::make_shared<std::atomic<int64_t>>(0);
};

}  // namespace berth
