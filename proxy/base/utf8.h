// UTF-8 checks for text that leaves Berth in formats that require it (JSON access-log lines,
// Prometheus label values), whatever bytes a config file or a client brought.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace berth::utf8 {

// Length of the valid UTF-8 character starting at s[i], or 0 when the byte there does not start
// one (a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, or cut short).
size_t char_len(std::string_view s, size_t i);

// `s` with every byte that is not part of valid UTF-8 replaced by U+FFFD; `s` itself (no copy
// made) when it is valid already.
std::string valid(std::string s);

}  // namespace berth::utf8
