// Everything a worker needs to serve requests, published as one immutable snapshot.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.h"
#include "proxy/http/http_head.h"
#include "proxy/http/request_path.h"
#include "proxy/filter/route_filters.h"
#include "proxy/model/route_table.h"
#include "proxy/tls/server_context.h"

namespace berth {

struct Runtime {
  std::shared_ptr<const RouteTable> routes;
  config::Timeouts timeouts;
  config::Limits limits;
  http::Limits http_limits;
  // Percent-encodings a client's path is refused for (400), unless its route allows them
  // (Route::allow_encodings, refuse_encodings); http::EncodedCharacter bits.
  uint8_t refused_encodings = http::kAllEncodedCharacters;
  uint64_t generation = 0;
  // Per listener, in config order: its TLS context (null: plain HTTP). Set by the control side
  // (it loads the certificates, and swaps them when their files change).
  std::vector<std::shared_ptr<const tls::ServerContext>> tls;
  std::vector<config::Cidr> trusted_proxies;  // whose X-Forwarded-For names the client
  // Per listener, in config order: how its connections start.
  struct ListenerStart {
    bool proxy_protocol = false;                    // with a PROXY header
    std::vector<config::Cidr> proxy_protocol_from;  // from these peers only; empty: any peer
  };
  std::vector<ListenerStart> listeners;
};

// How a client's request head is parsed under this config.
inline http::Limits client_http_limits(const config::Config& cfg) {
  http::Limits l;
  l.max_header_bytes = cfg.limits.max_header_bytes;
  l.max_headers = cfg.limits.max_headers;
  l.max_request_line = cfg.limits.max_request_line;
  l.sanitize_path = cfg.sanitize_path;
  return l;
}

// The percent-encodings a request path is refused for where no route says otherwise
// (http::EncodedCharacter bits: config::EncodedCharacter's order).
inline uint8_t refused_encodings(const config::Config& cfg) {
  static_assert(http::kEncodedSlash == 1u << static_cast<unsigned>(config::EncodedCharacter::kSlash) &&
                http::kEncodedBackslash == 1u << static_cast<unsigned>(config::EncodedCharacter::kBackslash) &&
                http::kEncodedNull == 1u << static_cast<unsigned>(config::EncodedCharacter::kNullCharacter) &&
                http::kEncodedSemicolon == 1u << static_cast<unsigned>(config::EncodedCharacter::kSemicolon) &&
                http::kEncodedPercent == 1u << static_cast<unsigned>(config::EncodedCharacter::kPercent) &&
                http::kEncodedQuestionMark == 1u << static_cast<unsigned>(config::EncodedCharacter::kQuestionMark) &&
                http::kEncodedHash == 1u << static_cast<unsigned>(config::EncodedCharacter::kHash));
  return static_cast<uint8_t>(http::kAllEncodedCharacters & ~cfg.encoded_characters.allowed);
}

// previous: the routes of the configuration before (a reload), whose rate limits and basic auth
// named routes with the same settings keep (build_route_filters).
inline std::shared_ptr<const Runtime> make_runtime(const config::Config& cfg, uint64_t generation,
                                                   const RouteTable* previous = nullptr) {
  auto rt = std::make_shared<Runtime>();
  std::unordered_map<std::string_view, const FilterChain*> chains;  // by route name
  if (previous)
    for (const Route& r : previous->routes())
      if (r.filters && !r.name.empty()) chains.emplace(r.name, r.filters.get());
  rt->routes = RouteTable::from_config(cfg, generation, [&chains](const config::Route& route) {
    auto it = route.name.empty() ? chains.end() : chains.find(route.name);
    return build_route_filters(route, it == chains.end() ? nullptr : it->second);
  });
  rt->timeouts = cfg.timeouts;
  rt->limits = cfg.limits;
  rt->http_limits = client_http_limits(cfg);
  rt->refused_encodings = refused_encodings(cfg);
  rt->generation = generation;
  rt->trusted_proxies = cfg.trusted_proxies;
  for (const config::Listener& l : cfg.listeners) {
    rt->listeners.push_back({l.proxy_protocol, l.proxy_protocol_from});
  }
  return rt;
}

// A worker's handle on a snapshot: what a request holds to keep the snapshot it started with.
// Copying a shared_ptr<const Runtime> per request would change the snapshot's reference count,
// a cache line every worker writes. Instead each worker wraps each snapshot it applies in one
// holder with a plain count that only that worker's thread changes (so a RuntimeRef must never
// be copied or released on another thread while the worker runs); the holder lets go of the
// snapshot when the worker and its last request have.
class RuntimeRef {
 public:
  RuntimeRef() = default;
  // A new holder of `rt`, counted once (this handle).
  static RuntimeRef hold(std::shared_ptr<const Runtime> rt) {
    RuntimeRef ref;
    if (!rt) return ref;
    ref.holder_ = new Holder{std::move(rt)};
    ref.rt_ = ref.holder_->rt.get();
    return ref;
  }
  RuntimeRef(const RuntimeRef& other) noexcept : holder_(other.holder_), rt_(other.rt_) {
    if (holder_) ++holder_->refs;
  }
  RuntimeRef(RuntimeRef&& other) noexcept
      : holder_(std::exchange(other.holder_, nullptr)), rt_(std::exchange(other.rt_, nullptr)) {}
  RuntimeRef& operator=(RuntimeRef other) noexcept {
    std::swap(holder_, other.holder_);
    std::swap(rt_, other.rt_);
    return *this;
  }
  ~RuntimeRef() { reset(); }

  void reset() noexcept {
    if (holder_ && --holder_->refs == 0) delete holder_;
    holder_ = nullptr;
    rt_ = nullptr;
  }
  const Runtime* get() const noexcept { return rt_; }
  const Runtime& operator*() const noexcept { return *rt_; }
  const Runtime* operator->() const noexcept { return rt_; }
  explicit operator bool() const noexcept { return rt_ != nullptr; }
  // Handles to the same holder (tests).
  uint32_t use_count() const noexcept { return holder_ ? holder_->refs : 0; }

 private:
  // Its own cache line: the count is written by one worker only.
  struct alignas(64) Holder {
    std::shared_ptr<const Runtime> rt;
    uint32_t refs = 1;
  };
  Holder* holder_ = nullptr;
  const Runtime* rt_ = nullptr;  // holder_->rt.get(), without a second load per use
};

}  // namespace berth
