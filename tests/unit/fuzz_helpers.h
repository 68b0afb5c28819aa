// What the mutation tests (http_fuzz_test.cc, proxy_protocol_test.cc) share: seeded random edits
// of valid inputs, the run's seed and size (fixed unless BERTH_FUZZ_SEED / BERTH_FUZZ_SCALE say
// otherwise), and bytes shown as C escapes in failure messages.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace fuzz {

// Bytes as C escapes, for failure messages.
inline std::string shown(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c >= 0x7f) out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    else out += static_cast<char>(c);
  }
  return out;
}

// The run's random source and size: fixed unless the environment asks for other inputs.
inline std::mt19937_64 fuzz_rng(uint64_t fixed_seed) {
  const char* seed = std::getenv("BERTH_FUZZ_SEED");
  return std::mt19937_64(seed ? std::strtoull(seed, nullptr, 10) * 1000003u + fixed_seed : fixed_seed);
}
inline int fuzz_count(int fixed) {
  const char* scale = std::getenv("BERTH_FUZZ_SCALE");
  const long k = scale ? std::strtol(scale, nullptr, 10) : 1;
  return fixed * static_cast<int>(k > 0 ? k : 1);
}

// One to three random edits of s: a bit flipped, a byte in or out, one of `tokens` in, a line
// repeated, a letter's case changed.
inline std::string mutate(std::string s, std::mt19937_64& rng, const std::vector<std::string>& tokens) {
  auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    const size_t at = pick(s.size() + 1);
    switch (rng() % 7) {
      case 0:  // flip bits of a byte
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // a random byte in
        s.insert(at, 1, static_cast<char>(rng() & 0xff));
        break;
      case 2:  // a byte out
        if (!s.empty()) s.erase(pick(s.size()), 1);
        break;
      case 3:
      case 4: {  // a token in
        const std::string& t = tokens[pick(tokens.size())];
        s.insert(at, t);
        break;
      }
      case 5: {  // a line repeated
        const size_t start = s.rfind('\n', at == 0 ? 0 : at - 1);
        const size_t from = start == std::string::npos ? 0 : start + 1;
        const size_t end = s.find('\n', from);
        if (end != std::string::npos) s.insert(from, s.substr(from, end - from + 1));
        break;
      }
      default:  // a byte's case changed
        if (!s.empty()) {
          char& c = s[pick(s.size())];
          if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
          else if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
        }
    }
  }
  return s;
}

}  // namespace fuzz
