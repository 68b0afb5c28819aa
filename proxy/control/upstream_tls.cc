#include "proxy/control/upstream_tls.h"

#include "proxy/base/log.h"

namespace berth {

std::shared_ptr<const tls::ClientContext> UpstreamTlsContexts::get(const std::string& service,
                                                                   const config::UpstreamTls& settings) {
  if (!settings.enabled) return nullptr;
  std::string key = settings.ca + '\n' + settings.server_name + '\n' + settings.cert + '\n' + settings.key + '\n' +
                    (settings.verify ? "1" : "0");
  auto it = contexts_.find(key);
  if (it != contexts_.end())
    if (auto ctx = it->second.lock()) return ctx;
  std::string error;
  auto ctx = tls::ClientContext::load(settings, &error);
  if (!ctx) {
    log::error("upstream_tls_context_failed").kv("service", service).kv("error", error);
    return nullptr;
  }
  // Entries whose context is gone are dropped as new ones come.
  for (auto e = contexts_.begin(); e != contexts_.end();) e = e->second.expired() ? contexts_.erase(e) : std::next(e);
  contexts_[std::move(key)] = ctx;
  return ctx;
}

}  // namespace berth
