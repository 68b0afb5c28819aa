// The filters a config route asks for (routes[].access and routes[].headers), built once per
// config load into one chain shared by the route's hosts and every worker:
//   access.deny / access.allow  -> 403 forbidden-address
//   access.methods              -> 405 method-not-allowed (with Allow)
//   access.basic_auth           -> 401 auth-required (basic_auth.h)
//   access.rate_limit           -> 429 rate-limited (rate_limit.h)
//   headers.request / .response -> header edits on the way up and back
//   redirect                    -> 301/302/303/307/308 with Location (no error)
//   strip_prefix / add_prefix / rewrite -> the target sent upstream; 500 rewrite-failed, 400
//                                          bad-request for a dot segment
#pragma once

#include <memory>

#include "config/config.h"
#include "proxy/filter/filter.h"

namespace berth {

// Null when the route has none. `previous`: the chain the same route had in the configuration
// before (a reload); its rate limit and basic auth are taken over when their settings (for basic
// auth: the users and their hashes too) are the same, so a reload gives no client a fresh bucket
// and costs no verified user a new password check.
std::shared_ptr<const FilterChain> build_route_filters(const config::Route& route,
                                                       const FilterChain* previous = nullptr);

class AddressFilter final : public RequestFilter {
 public:
  AddressFilter(const std::vector<config::Cidr>& allow, const std::vector<config::Cidr>& deny)
      : allow_(allow), deny_(deny) {}
  std::string_view name() const override { return "access.address"; }
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;

 private:
  std::vector<config::Cidr> allow_, deny_;
};

class MethodFilter final : public RequestFilter {
 public:
  explicit MethodFilter(std::vector<std::string> methods);
  std::string_view name() const override { return "access.methods"; }
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;

 private:
  std::vector<std::string> methods_;  // upper-case
  std::string allow_;                 // "GET, POST"
};

class HeaderFilter final : public RequestFilter {
 public:
  HeaderFilter(const config::HeaderRules& request, const config::HeaderRules& response);
  std::string_view name() const override { return "headers"; }
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;

 private:
  http::FixedHeaderRules rules_;  // what every request of the route gets
};

// routes[].redirect: answers every request with the redirect (after the access checks).
class RedirectFilter final : public RequestFilter {
 public:
  explicit RedirectFilter(config::Redirect redirect) : redirect_(std::move(redirect)) {}
  std::string_view name() const override { return "redirect"; }
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;

 private:
  config::Redirect redirect_;
};

// routes[].strip_prefix / add_prefix / rewrite: sets edits.target (config::rewrite_target), and
// X-Forwarded-Prefix with what was stripped (the client's own X-Forwarded-Prefix is dropped
// whenever the route strips). A result that is no path answers 500 rewrite-failed; one with a
// dot segment or a refused encoding (http::unsafe_rewritten_path) 400 bad-request.
class RewriteFilter final : public RequestFilter {
 public:
  explicit RewriteFilter(config::PathRewrite rewrite) : rewrite_(std::move(rewrite)) {}
  std::string_view name() const override { return "rewrite"; }
  FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                          FilterReply& reply, const FilterWaiter& waiter) const override;

 private:
  config::PathRewrite rewrite_;
};

}  // namespace berth
