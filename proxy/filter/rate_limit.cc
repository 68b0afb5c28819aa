#include "proxy/filter/rate_limit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "proxy/base/random.h"
#include "proxy/http/http_head.h"

namespace berth {

namespace {
size_t table_slots(size_t wanted) {
  size_t n = TokenBuckets::kGroup;
  while (n < wanted) n <<= 1;
  return n;
}

// Zeroes every bit of a 16-byte address after the first `bits`.
void keep_leading_bits(uint8_t (&addr)[16], uint32_t bits) {
  for (uint32_t byte = 0; byte < 16; ++byte) {
    const uint32_t first = byte * 8;
    if (bits >= first + 8) continue;
    addr[byte] = bits <= first ? 0 : static_cast<uint8_t>(addr[byte] & (0xff00 >> (bits - first)));
  }
}
}  // namespace

TokenBuckets::TokenBuckets(uint32_t per_second, uint32_t burst, size_t table_size)
    : rate_per_ns_(static_cast<double>(per_second) / 1e9),
      burst_(static_cast<double>(burst)),
      per_second_(per_second),
      seed_(std::random_device{}() | (static_cast<uint64_t>(std::random_device{}()) << 32)),
      slots_(table_slots(table_size)),
      groups_(std::make_unique<Group[]>(slots_.size() / kGroup)),
      group_mask_(slots_.size() / kGroup - 1) {}

uint64_t TokenBuckets::key_hash(std::string_view key) const noexcept {
  const uint64_t hash = mix64(std::hash<std::string_view>{}(key) ^ seed_);
  return hash ? hash : 1;
}

uint64_t TokenBuckets::address_hash(const uint8_t* addr, bool ipv6) const noexcept {
  uint64_t hash;
  if (ipv6) {
    uint64_t hi, lo;
    std::memcpy(&hi, addr, 8);
    std::memcpy(&lo, addr + 8, 8);
    hash = mix64(mix64(hi ^ seed_) ^ lo);
  } else {
    uint32_t v4;
    std::memcpy(&v4, addr, 4);
    hash = mix64((uint64_t{v4} | uint64_t{4} << 32) ^ seed_);
  }
  return hash ? hash : 1;
}

TokenBuckets::Verdict TokenBuckets::take_hashed(uint64_t hash, int64_t now_ns) {
  const size_t group = static_cast<size_t>(hash >> 17) & group_mask_;
  Group& g = groups_[group];
  while (g.lock.test_and_set(std::memory_order_acquire)) {
  }
  Slot* slot = nullptr;
  Slot* free_slot = nullptr;
  Slot* oldest = nullptr;
  for (size_t i = 0; i < kGroup; ++i) {
    Slot& s = slots_[group * kGroup + i];
    if (s.key == hash) {
      slot = &s;
      break;
    }
    if (s.key == 0) {
      if (!free_slot) free_slot = &s;
    } else if (!oldest || s.last_ns < oldest->last_ns) {
      oldest = &s;
    }
  }
  if (!slot) {
    slot = free_slot ? free_slot : oldest;
    slot->key = hash;
    slot->tokens = burst_;
    slot->last_ns = now_ns;
  }
  if (now_ns > slot->last_ns) {
    slot->tokens = std::min(burst_, slot->tokens + static_cast<double>(now_ns - slot->last_ns) * rate_per_ns_);
    slot->last_ns = now_ns;
  }
  Verdict v;
  if (slot->tokens >= 1.0) {
    slot->tokens -= 1.0;
    v.allowed = true;
    v.remaining = static_cast<uint32_t>(slot->tokens);
  } else {
    v.retry_after_s = static_cast<uint32_t>(std::ceil((1.0 - slot->tokens) / static_cast<double>(per_second_)));
    if (v.retry_after_s == 0) v.retry_after_s = 1;
  }
  g.lock.clear(std::memory_order_release);
  return v;
}

RateLimitFilter::RateLimitFilter(const config::RateLimit& config)
    : config_(config),
      header_(config.header),
      policy_(std::to_string(config.per_second) + ";w=1;burst=" + std::to_string(config.burst)),
      burst_(config.burst),
      ipv6_prefix_(config.ipv6_prefix),
      buckets_(std::make_shared<TokenBuckets>(config.per_second, config.burst, config.table_size)) {}

FilterResult RateLimitFilter::on_request(const FilterRequest& req, FilterState*, HeaderEdits&, FilterReply& reply,
                                         const FilterWaiter&) const {
  // The request's start time when the data path has it (a clock read saved per request); it is
  // at most a head's read time old, and a bucket never refills backwards (take()).
  const int64_t now = req.now_ns ? req.now_ns
                                 : std::chrono::duration_cast<std::chrono::nanoseconds>(
                                       std::chrono::steady_clock::now().time_since_epoch())
                                       .count();
  TokenBuckets::Verdict v;
  if (!header_.empty()) {
    std::string_view key = "-";  // requests without the header share one bucket
    for (const http::Field& f : req.head.fields)
      if (http::iequals(req.head.name(f), header_)) {
        key = req.head.value(f);
        break;
      }
    v = buckets_->take(key, now);
  } else {
    // By address in binary; an IPv4-mapped client shares its IPv4 bucket, and an IPv6 client
    // shares its prefix's.
    uint8_t addr[16];
    bool ipv6 = false;
    if (client_address_bytes(req, addr, ipv6)) {
      if (ipv6) keep_leading_bits(addr, ipv6_prefix_);
      v = buckets_->take(addr, ipv6, now);
    } else {
      v = buckets_->take(req.client_ip, now);
    }
  }
  if (v.allowed) return FilterResult::kContinue;
  reply.status = 429;
  reply.cause = "rate-limited";
  reply.headers.push_back(Header{"Retry-After", std::to_string(v.retry_after_s)});
  reply.headers.push_back(Header{"RateLimit-Policy", policy_});
  reply.headers.push_back(Header{"RateLimit", "limit=" + std::to_string(burst_) + ", remaining=0, reset=" +
                                                 std::to_string(v.retry_after_s)});
  return FilterResult::kReply;
}

}  // namespace berth
