// Token buckets: burst, refill, Retry-After, per-key isolation, bounded memory under a flood of
// keys, and exact counts when several threads share one table.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "proxy/filter/rate_limit.h"

using berth::TokenBuckets;

TEST_CASE("rate limit: a burst, then one token per 1/rate, with Retry-After", "[rate_limit]") {
  TokenBuckets b(2, 4, 64);  // 2 per second, burst 4
  const int64_t t0 = 1'000'000'000;
  for (int i = 0; i < 4; ++i) {
    auto v = b.take("10.0.0.1", t0);
    CHECK(v.allowed);
    CHECK(v.remaining == static_cast<uint32_t>(3 - i));
  }
  auto refused = b.take("10.0.0.1", t0);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after_s == 1);
  CHECK(b.take("10.0.0.2", t0).allowed);         // another key: its own bucket
  CHECK_FALSE(b.take("10.0.0.1", t0 + 400'000'000).allowed);  // 0.8 token back
  CHECK(b.take("10.0.0.1", t0 + 500'000'000).allowed);        // 1 token
  CHECK_FALSE(b.take("10.0.0.1", t0 + 500'000'000).allowed);
  CHECK(b.take("10.0.0.1", t0 + 60'000'000'000).allowed);     // refilled, capped at the burst
  for (int i = 0; i < 3; ++i) CHECK(b.take("10.0.0.1", t0 + 60'000'000'000).allowed);
  CHECK_FALSE(b.take("10.0.0.1", t0 + 60'000'000'000).allowed);

  TokenBuckets slow(1, 1, 16);
  CHECK(slow.take("k", t0).allowed);
  CHECK(slow.take("k", t0).retry_after_s == 1);
}

TEST_CASE("rate limit: a flood of distinct keys does not grow the table", "[rate_limit]") {
  TokenBuckets b(1, 1, 1024);
  CHECK(b.slots() == 1024);
  for (int i = 0; i < 100000; ++i) b.take("flood-" + std::to_string(i), 1'000 + i);
  CHECK(b.slots() == 1024);
  // A key in use keeps working (it is recycled at worst, never refused for lack of room).
  CHECK(b.take("steady", 200'000).allowed);
}

TEST_CASE("rate limit: exact across threads sharing the table", "[rate_limit]") {
  TokenBuckets b(1, 1000, 4096);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (b.take("one-client", 5'000).allowed) ++allowed;  // no time passes: no refill
    });
  for (auto& t : threads) t.join();
  CHECK(allowed.load() == 1000);
}

TEST_CASE("rate limit: keyed by a binary client address, each address its own bucket", "[rate_limit]") {
  TokenBuckets b(1, 2, 64);
  const uint8_t a4[4] = {10, 0, 0, 1};
  const uint8_t b4[4] = {10, 0, 0, 2};
  uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8};
  a6[15] = 1;
  const int64_t t0 = 1'000'000'000;
  CHECK(b.take(a4, false, t0).allowed);
  CHECK(b.take(a4, false, t0).allowed);
  CHECK_FALSE(b.take(a4, false, t0).allowed);  // a burst of 2
  CHECK(b.take(b4, false, t0).allowed);        // the next address: untouched
  CHECK(b.take(a6, true, t0).allowed);
  CHECK(b.take(a6, true, t0).allowed);
  CHECK_FALSE(b.take(a6, true, t0).allowed);
  a6[15] = 2;
  CHECK(b.take(a6, true, t0).allowed);
}
