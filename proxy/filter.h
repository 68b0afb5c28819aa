// Per-route request policy as a chain. Each filter sees the validated request head before an
// upstream is chosen and either lets it pass or answers it locally. Access control (basic auth,
// IP lists, rate limits, forward auth) plugs in here; filters are built once per snapshot.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace berth {
namespace http { struct RequestHead; }
struct Route;

struct RequestContext {
  const http::RequestHead& head;
  const Route& route;
  std::string_view client_ip;
};

struct FilterVerdict {
  uint16_t status = 0;       // 0 = continue down the chain
  const char* cause = "";    // x-berth-error value of the local reply
  static FilterVerdict pass() { return {}; }
  static FilterVerdict reply(uint16_t status, const char* cause) { return {status, cause}; }
};

// Filters are shared by every worker: on_request must be safe to call concurrently.
class RequestFilter {
 public:
  virtual ~RequestFilter() = default;
  virtual std::string_view name() const = 0;
  virtual FilterVerdict on_request(const RequestContext& ctx) const = 0;
};

using FilterChain = std::vector<std::shared_ptr<const RequestFilter>>;

inline FilterVerdict run_filters(const FilterChain& chain, const RequestContext& ctx) {
  for (const auto& f : chain) {
    FilterVerdict v = f->on_request(ctx);
    if (v.status) return v;
  }
  return FilterVerdict::pass();
}

}  // namespace berth
