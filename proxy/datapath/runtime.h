// Everything a worker needs to serve requests, published as one immutable snapshot.
#pragma once

#include <memory>

#include "config/config.h"
#include "proxy/http/http_head.h"
#include "proxy/filter/route_filters.h"
#include "proxy/model/route_table.h"

namespace berth {

struct Runtime {
  std::shared_ptr<const RouteTable> routes;
  config::Timeouts timeouts;
  config::Limits limits;
  http::Limits http_limits;
  uint64_t generation = 0;
};

inline std::shared_ptr<const Runtime> make_runtime(const config::Config& cfg, uint64_t generation) {
  auto rt = std::make_shared<Runtime>();
  rt->routes = RouteTable::from_config(cfg, generation, build_route_filters);
  rt->timeouts = cfg.timeouts;
  rt->limits = cfg.limits;
  rt->http_limits.max_header_bytes = cfg.limits.max_header_bytes;
  rt->http_limits.max_headers = cfg.limits.max_headers;
  rt->http_limits.max_request_line = cfg.limits.max_request_line;
  rt->generation = generation;
  return rt;
}

}  // namespace berth
