// splitmix64: the one small, fast, well-mixed generator Berth uses for ids, seeds and hashing.
#pragma once

#include <cstdint>

namespace berth {

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

// The splitmix64 finaliser: a bijective mix of all 64 bits.
constexpr uint64_t mix64(uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Advances `state` and returns the next value of its splitmix64 stream.
constexpr uint64_t splitmix64(uint64_t& state) noexcept { return mix64(state += kGoldenGamma); }

}  // namespace berth
