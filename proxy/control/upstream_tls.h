// The TLS client contexts of the services with upstream TLS, made on the control thread when a
// service object is published. Services with the same settings share one context (and so one
// set of worker connection pools): a discovery update that re-publishes a service keeps its
// pooled TLS connections. A configuration reload forgets them, so that files are read again.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "proxy/tls/client_context.h"

namespace berth {

class UpstreamTlsContexts {
 public:
  // The context for these settings (null when they are off or it cannot be built: logged).
  std::shared_ptr<const tls::ClientContext> get(const std::string& service, const config::UpstreamTls& settings);
  void forget_all() { contexts_.clear(); }

 private:
  std::map<std::string, std::weak_ptr<const tls::ClientContext>> contexts_;
};

}  // namespace berth
