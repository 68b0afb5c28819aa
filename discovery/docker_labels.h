// Container labels (and, in compatibility modes, nginx-proxy environment variables or Traefik
// labels) -> what the container asks to be routed. Pure: a ContainerFacts in, a ContainerSpec
// out. The label reference is discovery/README.labels.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "discovery/container_facts.h"

namespace berth::discovery {

struct LabelOptions {
  bool exposed_by_default = false;
  bool nginx_proxy = false;  // VIRTUAL_HOST / VIRTUAL_PORT / VIRTUAL_PATH
  bool traefik = false;      // traefik.http.routers.* / traefik.http.services.*
  // Files named by berth.access.* labels must lie under this directory (docker.access_files_dir;
  // "": labels may not name files).
  std::string access_files_dir;
};

struct RouteSpec {
  std::string name;                // "" = the container's main route; else berth.routes.NAME / router name
  std::vector<std::string> hosts;  // normalised patterns; empty = any host
  std::string path = "/";
  uint16_t port = 0;
  std::string service;
  int32_t priority = 0;
  bool https_redirect = false;     // berth.tls.redirect=true
  uint16_t https_redirect_code = 308;  // its status for GET and HEAD (Route::https_redirect_code)
  bool acme = false;               // berth.tls.acme=true: a certificate from the ACME server
  // Its matchers: the container's berth.match.* / berth.path_regex, with a named route's own
  // berth.routes.NAME.match.* / .path_regex (empty: none).
  config::RouteMatch match;
  // berth.mirror.* (or a named route's own berth.routes.NAME.mirror.*): the shadow service by
  // name, resolved among the discovered services by the builder (service "": none).
  config::RouteMirror mirror;
};

struct ContainerSpec {
  enum class Kind { kIgnored, kRouted, kRejected };
  Kind kind = Kind::kIgnored;
  std::string origin;              // "berth", "traefik", "nginx-proxy"
  std::vector<RouteSpec> routes;   // kRouted: at least one
  uint32_t weight = 1;
  std::string network;             // berth.network ("" = use the configured choice)
  config::ServicePolicy policy;    // berth.lb*, berth.health.* (for every service it declares)
  // berth.access.* (for every route it declares). basic_auth.htpasswd is a checked path; the
  // users are read from it by the builder (parse_container).
  config::RouteAccess access;
  // berth.encoded_characters.allow_encoded_* (for every route it declares): overrides the
  // top-level encoded_characters for the keys it names.
  config::EncodedCharacters encoded_characters;
  // berth.strip_prefix / berth.add_prefix / berth.redirect.* (for every route it declares).
  config::PathRewrite rewrite;
  config::Redirect redirect;
  // berth.match.* and berth.path_regex, for every route it declares (empty: none); each route's
  // own matchers are in RouteSpec::match.
  config::RouteMatch match;
  // Header rules for every route it declares (Traefik compatibility: the headers middleware's
  // customrequestheaders / customresponseheaders).
  config::HeaderRules request_headers, response_headers;
  std::string label;               // kRejected: the offending label (or env variable)
  std::string reason;              // kRejected: a sentence naming the label; kIgnored: why, if known
};

ContainerSpec parse_container_labels(const ContainerFacts& container, const LabelOptions& options);

// The service a container's instances are grouped under when berth.service is not set:
// "<compose project>-<compose service>" for compose containers, else the container name.
std::string default_service_name(const ContainerFacts& container);

}  // namespace berth::discovery
