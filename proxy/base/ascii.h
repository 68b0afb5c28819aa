// ASCII case folding for protocol text (host names, field names, label values, filters). Only
// A-Z fold: protocol names are ASCII, and std::tolower would follow the C locale.
#pragma once

#include <algorithm>
#include <string>
#include <string_view>

namespace berth {

constexpr char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline void ascii_lower_in_place(std::string& s) noexcept {
  for (char& c : s) c = ascii_lower(c);
}

inline std::string ascii_lowered(std::string_view s) {
  std::string out(s);
  ascii_lower_in_place(out);
  return out;
}

// Whether `text` contains `needle`, ASCII case aside.
inline bool ascii_icontains(std::string_view text, std::string_view needle) noexcept {
  return std::search(text.begin(), text.end(), needle.begin(), needle.end(),
                     [](char a, char b) { return ascii_lower(a) == ascii_lower(b); }) != text.end();
}

}  // namespace berth
