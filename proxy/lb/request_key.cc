#include "proxy/lb/request_key.h"

namespace berth {

std::optional<std::string_view> find_header(const http::RequestHead& req, std::string_view name) {
  for (const http::Field& f : req.fields)
    if (http::iequals(req.name(f), name)) return req.value(f);
  return std::nullopt;
}

std::optional<std::string_view> find_cookie(const http::RequestHead& req, std::string_view name) {
  for (const http::Field& f : req.fields) {
    if (!http::iequals(req.name(f), "cookie")) continue;
    std::string_view rest = req.value(f);
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
      std::string_view value = pair.substr(eq + 1);
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
      return value;
    }
  }
  return std::nullopt;
}

PickKey make_pick_key(const http::RequestHead& req, const config::LoadBalancing& lb, std::string_view client_ip) {
  using Policy = config::LoadBalancing::Policy;
  using HashOn = config::LoadBalancing::HashOn;
  PickKey key;
  if (lb.policy == Policy::kHash) {
    std::optional<std::string_view> source;
    switch (lb.hash_on) {
      case HashOn::kClientIp: source = client_ip; break;
      case HashOn::kHeader: source = find_header(req, lb.hash_name); break;
      case HashOn::kCookie: source = find_cookie(req, lb.hash_name); break;
    }
    if (source) {
      key.hash = hash_bytes(*source);
      key.has_hash = true;
    }
  } else if (lb.policy == Policy::kSticky) {
    if (auto cookie = find_cookie(req, lb.cookie)) key.has_sticky = parse_instance_id(*cookie, key.sticky);
  }
  return key;
}

}  // namespace berth
