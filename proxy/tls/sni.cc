#include "proxy/tls/sni.h"

#include "proxy/base/ascii.h"

namespace berth::tls {

std::string SniIndex::normalize(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return {};
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    const auto b = static_cast<unsigned char>(c);
    if (b <= 0x20 || b >= 0x7f) return {};
    out.push_back(ascii_lower(c));
  }
  return out;
}

void SniIndex::add(size_t entry, const std::vector<std::string>& names) {
  if (!has_default_) {
    default_ = entry;
    has_default_ = true;
  }
  for (const std::string& raw : names) {
    std::string name = normalize(raw);
    if (name.empty()) continue;
    if (name.size() > 2 && name[0] == '*' && name[1] == '.') {
      std::string suffix = name.substr(2);
      // "*.com"-like wildcards over a single label are not honoured, like browsers.
      if (suffix.find('.') == std::string::npos || suffix.find('*') != std::string::npos) continue;
      wildcard_.emplace(std::move(suffix), entry);  // first wins
    } else if (name.find('*') == std::string::npos) {
      exact_.emplace(std::move(name), entry);
    }
  }
}

size_t SniIndex::pick(std::string_view server_name) const {
  std::string name = normalize(server_name);
  if (name.empty()) return default_;
  if (auto it = exact_.find(name); it != exact_.end()) return it->second;
  const size_t dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return it->second;
  }
  return default_;
}

}  // namespace berth::tls
