#include "proxy/filter/filter.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "config/config.h"

namespace berth {

bool client_address_bytes(const FilterRequest& req, uint8_t (&out)[16], bool& ipv6) {
  if (req.client_family == 4 || req.client_family == 6) {
    ipv6 = req.client_family == 6;
    std::memcpy(out, req.client_addr, ipv6 ? 16 : 4);
  } else {
    char text[64];
    std::string_view ip = req.client_ip;
    if (ip.empty() || ip.size() >= sizeof text) return false;
    ip.copy(text, ip.size());
    text[ip.size()] = '\0';
    if (inet_pton(AF_INET, text, out) == 1) ipv6 = false;
    else if (inet_pton(AF_INET6, text, out) == 1) ipv6 = true;
    else return false;
  }
  if (ipv6 && config::ipv4_mapped(out)) {
    std::memmove(out, out + 12, 4);
    ipv6 = false;
  }
  return true;
}

void FilterReply::clear() noexcept {
  status = 0;
  cause.clear();
  headers.clear();
  error = true;
  own_body = false;
  content_type.clear();
  body.clear();
}

bool FilterWaiter::cancelled() const noexcept { return !slot_ || !slot_->run || slot_->call != call_; }
HeaderEdits& FilterWaiter::edits() const { return slot_->run->edits_; }
FilterReply& FilterWaiter::reply() const { return slot_->run->reply_; }

void FilterWaiter::done(FilterResult result) const {
  if (cancelled()) return;
  FilterRun* run = slot_->run;
  slot_->call = 0;  // once
  slot_->abort = nullptr;
  run->on_done(result == FilterResult::kPending ? FilterResult::kContinue : result);
}

void FilterWaiter::on_abort(FilterAbort* a) const {
  if (!cancelled()) slot_->abort = a;
}

FilterChain::FilterChain(std::vector<std::shared_ptr<const RequestFilter>> filters) : filters_(std::move(filters)) {
  stateful_.reserve(filters_.size());
  for (const auto& f : filters_) stateful_.push_back(f->make_state() != nullptr);
}

FilterState* FilterStates::state_for(const std::shared_ptr<const RequestFilter>& filter) {
  auto it = states_.find(filter.get());
  if (it == states_.end()) it = states_.emplace(filter.get(), Entry{filter, filter->make_state()}).first;
  return it->second.state.get();
}

void FilterStates::retain(std::vector<const RequestFilter*> live) {
  std::sort(live.begin(), live.end());  // n log n: a snapshot may carry thousands of routes
  for (auto it = states_.begin(); it != states_.end();) {
    if (!std::binary_search(live.begin(), live.end(), it->first)) it = states_.erase(it);
    else ++it;
  }
}

FilterResult FilterRun::start(const FilterChain& chain, FilterStates& states, const FilterRequest& req,
                              FilterRunOwner* owner) {
  reset();
  chain_ = &chain;
  states_ = &states;
  owner_ = owner;
  return run_from(0, req);
}

FilterResult FilterRun::run_from(size_t index, const FilterRequest& req) {
  const auto& filters = chain_->filters();
  for (next_ = index; next_ < filters.size(); ++next_) {
    const std::shared_ptr<const RequestFilter>& f = filters[next_];
    if (!slot_) {
      slot_ = std::make_shared<FilterWaiter::Slot>();
      slot_->run = this;
      waiter_.slot_ = slot_;
    }
    slot_->call = waiter_.call_ = ++calls_;
    in_call_ = true;
    sync_done_ = false;
    FilterState* state = chain_->stateful(next_) ? states_->state_for(f) : nullptr;
    FilterResult r = f->on_request(req, state, edits_, reply_, waiter_);
    in_call_ = false;
    if (r == FilterResult::kPending && !sync_done_) return FilterResult::kPending;  // done() comes later
    if (sync_done_) r = resumed_;  // done() was called before on_request returned
    cancel();                      // a verdict was returned: a late done() does nothing
    if (r == FilterResult::kReply) return FilterResult::kReply;
  }
  return FilterResult::kContinue;
}

void FilterRun::on_done(FilterResult result) {
  resumed_ = result;
  if (in_call_) {
    sync_done_ = true;
    return;
  }
  if (owner_) owner_->on_filter_done();
}

FilterResult FilterRun::proceed(const FilterRequest& req) {
  if (resumed_ == FilterResult::kReply) return FilterResult::kReply;
  return run_from(next_ + 1, req);
}

void FilterRun::cancel() noexcept {
  if (!slot_) return;
  slot_->call = 0;
  if (FilterAbort* a = std::exchange(slot_->abort, nullptr)) a->abort();
}

void FilterRun::reset() noexcept {
  cancel();
  chain_ = nullptr;
  states_ = nullptr;
  owner_ = nullptr;
  next_ = 0;
  resumed_ = FilterResult::kContinue;
  in_call_ = sync_done_ = false;
  edits_.clear();
  reply_.clear();
}

}  // namespace berth
