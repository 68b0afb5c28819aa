// Rate limits (routes[].access.rate_limit): a token bucket per key (the client address, or a
// request header's value) per route, exact across workers: the buckets live in one table that
// every worker's filter shares, each group of slots behind its own tiny spin lock (held for a
// few arithmetic operations; the workers of one route meet only when their keys share a group).
//
// Memory is bounded by the table size: a key takes a slot of its group (8 slots); a new key in a
// full group replaces the one touched longest ago, so a flood of distinct keys recycles slots
// instead of growing the table (a replaced key starts again with a full bucket).
//
// A request over the limit gets 429 rate-limited with Retry-After and the RateLimit-Policy and
// RateLimit fields (draft-ietf-httpapi-ratelimit-headers-07 syntax).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/filter/filter.h"

namespace berth {

class TokenBuckets {
 public:
  static constexpr size_t kGroup = 8;
  TokenBuckets(uint32_t per_second, uint32_t burst, size_t table_size);

  struct Verdict {
    bool allowed = false;
    uint32_t remaining = 0;      // whole tokens left after this request
    uint32_t retry_after_s = 0;  // when refused: seconds until a token is back (>= 1)
  };
  // Takes one token from `key`'s bucket at monotonic time now_ns. Any thread.
  Verdict take(std::string_view key, int64_t now_ns) { return take_hashed(key_hash(key), now_ns); }
  // The same keyed by a client address in network byte order (4 or 16 bytes): no text to hash.
  Verdict take(const uint8_t* addr, bool ipv6, int64_t now_ns) { return take_hashed(address_hash(addr, ipv6), now_ns); }
  size_t slots() const { return slots_.size(); }

 private:
  // Seeded, so clients cannot aim their keys at one group; never 0 (a free slot).
  uint64_t key_hash(std::string_view key) const noexcept;
  uint64_t address_hash(const uint8_t* addr, bool ipv6) const noexcept;
  Verdict take_hashed(uint64_t hash, int64_t now_ns);

  struct Slot {
    uint64_t key = 0;        // hash of the key; 0 = free
    double tokens = 0;
    int64_t last_ns = 0;
  };
  struct Group {
    std::atomic_flag lock = ATOMIC_FLAG_INIT;
  };
  double rate_per_ns_;
  double burst_;
  uint32_t per_second_;
  uint64_t seed_;
  std::vector<Slot> slots_;
  std::unique_ptr<Group[]> groups_;
  size_t group_mask_;
};

class RateLimitFilter final : public RequestFilter {
 public:
  explicit RateLimitFilter(const config::RateLimit& config);
  std::string_view name() const override { return "access.rate_limit"; }
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;
  const config::RateLimit& config() const noexcept { return config_; }

 private:
  config::RateLimit config_;
  std::string header_;  // "" = client address
  std::string policy_;  // RateLimit-Policy value
  uint32_t burst_;
  uint32_t ipv6_prefix_;  // leading bits of an IPv6 client's address that make its key
  std::shared_ptr<TokenBuckets> buckets_;  // shared by every worker running this filter
};

}  // namespace berth
