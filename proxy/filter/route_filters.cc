#include "proxy/filter/route_filters.h"

#include <cstring>
#include <string>

#include "proxy/filter/basic_auth.h"
#include "proxy/filter/forward_auth.h"
#include "proxy/filter/rate_limit.h"
#include "proxy/model/route_table.h"

namespace berth {
namespace {

void add_rules(const config::HeaderRules& rules, std::vector<std::string>& remove, std::vector<Header>& add) {
  for (const std::string& name : rules.remove) remove.push_back(name);
  for (const auto& [name, value] : rules.set) {
    remove.push_back(name);  // set: whatever the message carried goes first
    add.push_back(Header{name, value});
  }
  for (const auto& [name, value] : rules.add) add.push_back(Header{name, value});
}

}  // namespace

namespace {
// The route's filter of type F from before the reload when its settings are the same (its
// per-worker and shared state go on), else a new one.
template <typename F, typename Config>
std::shared_ptr<const RequestFilter> kept_or_new(const Config& config, const FilterChain* previous) {
  if (previous)
    for (const auto& f : previous->filters())
      if (const auto* same = dynamic_cast<const F*>(f.get()); same && same->config() == config) return f;
  return std::make_shared<F>(config);
}
}  // namespace

std::shared_ptr<const FilterChain> build_route_filters(const config::Route& route, const FilterChain* previous) {
  std::vector<std::shared_ptr<const RequestFilter>> filters;
  if (!route.access.allow.empty() || !route.access.deny.empty())
    filters.push_back(std::make_shared<AddressFilter>(route.access.allow, route.access.deny));
  if (!route.access.methods.empty()) filters.push_back(std::make_shared<MethodFilter>(route.access.methods));
  // Before authentication: password guessing spends the guesser's budget, not the hash pool's.
  if (route.access.rate_limit.enabled())
    filters.push_back(kept_or_new<RateLimitFilter>(route.access.rate_limit, previous));
  if (route.access.basic_auth.enabled())
    filters.push_back(kept_or_new<BasicAuthFilter>(route.access.basic_auth, previous));
  // After the local checks: a request they refuse costs the authentication service nothing.
  if (route.access.forward_auth.enabled())
    filters.push_back(std::make_shared<ForwardAuthFilter>(route.access.forward_auth));
  if (!route.request_headers.empty() || !route.response_headers.empty())
    filters.push_back(std::make_shared<HeaderFilter>(route.request_headers, route.response_headers));
  // Last: the access checks hold for a redirect too, and an authentication service sees the
  // client's own target.
  if (route.redirect.enabled()) filters.push_back(std::make_shared<RedirectFilter>(route.redirect));
  if (route.rewrite.enabled()) filters.push_back(std::make_shared<RewriteFilter>(route.rewrite));
  if (filters.empty()) return nullptr;
  return std::make_shared<const FilterChain>(std::move(filters));
}

FilterResult AddressFilter::on_request(const FilterRequest& req, FilterState*, HeaderEdits&, FilterReply& reply,
                                       const FilterWaiter&) const {
  uint8_t addr[16] = {};
  bool ipv6 = false;
  const bool known = client_address_bytes(req, addr, ipv6);
  const bool denied = known && config::any_contains(deny_, addr, ipv6);
  const bool allowed = allow_.empty() || (known && config::any_contains(allow_, addr, ipv6));
  if (!denied && allowed) return FilterResult::kContinue;
  reply.status = 403;
  reply.cause = "forbidden-address";
  return FilterResult::kReply;
}

MethodFilter::MethodFilter(std::vector<std::string> methods)
    : methods_(config::methods_let_through(std::move(methods))) {
  for (const std::string& m : methods_) {
    if (!allow_.empty()) allow_.append(", ");
    allow_.append(m);
  }
}

FilterResult MethodFilter::on_request(const FilterRequest& req, FilterState*, HeaderEdits&, FilterReply& reply,
                                      const FilterWaiter&) const {
  for (const std::string& m : methods_)
    if (req.head.method == m) return FilterResult::kContinue;
  reply.status = 405;
  reply.cause = "method-not-allowed";
  reply.headers.push_back(Header{"Allow", allow_});
  return FilterResult::kReply;
}

namespace {
http::FixedHeaderRules fixed_rules(const config::HeaderRules& request, const config::HeaderRules& response) {
  std::vector<std::string> remove_request, remove_response;
  std::vector<Header> add_request, add_response;
  add_rules(request, remove_request, add_request);
  add_rules(response, remove_response, add_response);
  return http::FixedHeaderRules(std::move(remove_request), add_request, std::move(remove_response), add_response);
}
}  // namespace

HeaderFilter::HeaderFilter(const config::HeaderRules& request, const config::HeaderRules& response)
    : rules_(fixed_rules(request, response)) {}

FilterResult HeaderFilter::on_request(const FilterRequest&, FilterState*, HeaderEdits& edits, FilterReply&,
                                      const FilterWaiter&) const {
  // Pointed to, not copied: the rules live as long as the chain, and the chain as long as the
  // exchange's snapshot. One such filter per chain.
  edits.fixed = &rules_;
  edits.fixed_after_request = static_cast<uint32_t>(edits.add_request.size());
  edits.fixed_after_response = static_cast<uint32_t>(edits.add_response.size());
  return FilterResult::kContinue;
}

FilterResult RedirectFilter::on_request(const FilterRequest& req, FilterState*, HeaderEdits&, FilterReply& reply,
                                       const FilterWaiter&) const {
  reply.status = redirect_.code;
  reply.cause = "redirect";
  reply.error = false;
  Header location{"Location", {}};
  config::expand_redirect(redirect_.to, req.head.path, req.head.host, location.value);
  reply.headers.push_back(std::move(location));
  return FilterResult::kReply;
}

FilterResult RewriteFilter::on_request(const FilterRequest& req, FilterState*, HeaderEdits& edits, FilterReply& reply,
                                       const FilterWaiter&) const {
  std::string stripped;
  switch (config::rewrite_target(rewrite_, req.route.path_prefix, req.head.path, edits.target, stripped)) {
    case config::RewriteOutcome::kUnchanged:
      break;
    case config::RewriteOutcome::kRewritten:
      // The client's dots and encodings were checked before routing, but a rewrite may put
      // them back together ("/docs-../admin" -> "/docs/../admin"): the route that matched
      // would send a path the instance reads as another route's. The dots come from what the
      // client sent, so it gets the 400 its own path would, not a 500 that blames Berth.
      if (http::unsafe_rewritten_path(edits.target, req.refused_encodings) != nullptr) {
        edits.target.clear();
        reply.status = 400;
        reply.cause = "bad-request";
        return FilterResult::kReply;
      }
      break;
    case config::RewriteOutcome::kFailed:
      edits.target.clear();
      reply.status = 500;
      reply.cause = "rewrite-failed";
      return FilterResult::kReply;
  }
  if (rewrite_.strip != config::PathRewrite::Strip::kNone) {
    edits.remove_request.emplace_back("X-Forwarded-Prefix");
    if (!stripped.empty()) edits.add_request.push_back(Header{"X-Forwarded-Prefix", std::move(stripped)});
  }
  return FilterResult::kContinue;
}

}  // namespace berth
