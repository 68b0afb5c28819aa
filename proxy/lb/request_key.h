// What a request contributes to endpoint selection: the hash key (client address, a header or
// a cookie) and the sticky cookie. Pure, allocation-free.
#pragma once

#include <optional>
#include <string_view>

#include "config/config.h"
#include "proxy/http/http_head.h"
#include "proxy/lb/lb.h"

namespace berth {

// The value of the first header with this name (case-insensitive).
std::optional<std::string_view> find_header(const http::RequestHead& req, std::string_view name);
// The value of cookie `name` in the request's Cookie header(s).
std::optional<std::string_view> find_cookie(const http::RequestHead& req, std::string_view name);

// The selection key of a request under `lb`. A hash on a header or cookie the request lacks
// leaves has_hash false (the selector then falls back to round robin).
PickKey make_pick_key(const http::RequestHead& req, const config::LoadBalancing& lb,
                      std::string_view client_ip);

}  // namespace berth
