// RFC 3339 UTC timestamps to the millisecond ("2026-12-02T11:19:16.123Z"): the one formatter
// behind Berth's log lines, access log records and the admin API's times.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace berth {

// Appends the time `unix_ms` milliseconds after the epoch (negative times floor to the earlier
// second, as gmtime does). Each thread keeps the text of the last second it formatted, so a
// stream of nearby times costs a copy and three digits.
void append_rfc3339_ms(std::string& out, int64_t unix_ms);

// The same text written at `out` (kRfc3339MsBytes bytes); returns the end.
inline constexpr size_t kRfc3339MsBytes = 24;
char* put_rfc3339_ms(char* out, int64_t unix_ms);

inline std::string rfc3339_ms(int64_t unix_ms) {
  std::string s;
  append_rfc3339_ms(s, unix_ms);
  return s;
}

}  // namespace berth
