// Per-route request policy as a chain of filters, run on the worker loop after a route matched
// and before an upstream is chosen. A filter lets the request pass (possibly with header edits),
// answers it locally, or answers later (pending: an auth subrequest, say) on the same loop.
// Filters are built once per snapshot and shared by every worker; what a filter must change
// per request (a rate limiter's buckets) lives in its per-worker FilterState.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/http/http_head.h"
#include "proxy/http/http_rewrite.h"
#include "proxy/http/request_path.h"

namespace berth {
struct Route;

using http::Header;
using http::HeaderEdits;

// A local answer from a filter.
struct FilterReply {
  uint16_t status = 0;
  std::string cause;             // x-berth-error value
  std::vector<Header> headers;   // e.g. WWW-Authenticate, Allow, Retry-After, Location
  // false: the reply is no error (a route's redirect): no x-berth-error header and no error
  // text; `cause` is only recorded (access log).
  bool error = true;
  // own_body: send `body` (of `content_type`) instead of Berth's short error text; a forward-auth
  // service's own answer, say.
  bool own_body = false;
  std::string content_type;
  std::string body;
  void clear() noexcept;
};

enum class FilterResult : uint8_t { kContinue, kReply, kPending };

struct FilterRequest;

// The request's client address in network byte order (4 bytes for IPv4, 16 for IPv6), from the
// binary form or else the text; false when it is unknown. An IPv4-mapped IPv6 address (a
// dual-stack listener's IPv4 client) is the IPv4 address it carries, so a client is one client
// to address rules and rate limits whichever listener it came through.
bool client_address_bytes(const FilterRequest& req, uint8_t (&out)[16], bool& ipv6);

// The request as filters see it. Views into the head are valid only during on_request: a filter
// that goes pending copies what it needs first.
struct FilterRequest {
  const http::RequestHead& head;
  const Route& route;
  std::string_view client_ip;
  // The client address in network byte order (4 bytes for IPv4), as the transport read it;
  // client_family 0 when unknown (then filters fall back to client_ip).
  const uint8_t* client_addr = nullptr;
  uint8_t client_family = 0;  // 0, 4 or 6
  // The worker's loop, for a filter that hands slow work to a background thread
  // (proxy/base/background.h) or waits for I/O (null in tests that run no loop: such a filter
  // then refuses).
  uv_loop_t* loop = nullptr;
  std::string_view scheme = "http";  // how the client reached Berth (X-Forwarded-Proto)
  // Monotonic time (CLOCK_MONOTONIC ns) the request began, when the data path read it anyway;
  // 0: unknown (a filter that needs the time reads the clock itself).
  int64_t now_ns = 0;
  // The percent-encodings refused on this route (Route::refused_encodings): a path a filter
  // makes (a rewrite) may carry no more than the client's may.
  uint8_t refused_encodings = http::kAllEncodedCharacters;
};

// Per-worker mutable state of one filter (made by RequestFilter::make_state, used only on that
// worker's loop, kept across snapshots while the filter object stays).
class FilterState {
 public:
  virtual ~FilterState() = default;
};

class FilterRun;

// Work a pending filter started for a request (a connection to an auth service, ...), stopped
// when the request goes away first (FilterWaiter::on_abort).
class FilterAbort {
 public:
  virtual void abort() noexcept = 0;

 protected:
  ~FilterAbort() = default;
};

// A pending filter's way back to its request. Copyable; done() may be called once, later, on the
// same loop. When the request went away meanwhile (client closed), or the filter call it was
// given to has already ended, done() does nothing and cancelled() is true; edits() and reply()
// are valid only while !cancelled().
//
// Every waiter of one FilterRun shares that run's one slot (allocated once per run object, which
// the data path pools with its exchange); a waiter belongs to the call whose number it carries,
// so a filter call allocates nothing.
class FilterWaiter {
 public:
  FilterWaiter() = default;
  bool cancelled() const noexcept;
  HeaderEdits& edits() const;
  FilterReply& reply() const;
  // kContinue: the next filter runs; kReply: reply() is sent. kPending is not allowed here.
  void done(FilterResult result) const;
  // `a` is aborted (once, on the loop) if the request goes away before done(); after done(), or
  // when the waiter is already cancelled, never. Set it before returning kPending.
  void on_abort(FilterAbort* a) const;

 private:
  friend class FilterRun;
  struct Slot {
    FilterRun* run = nullptr;      // null once the run object is gone
    uint64_t call = 0;             // the filter call that may still answer (0: none)
    FilterAbort* abort = nullptr;  // that call's work, stopped by FilterRun::cancel()
  };
  FilterWaiter(std::shared_ptr<Slot> slot, uint64_t call) : slot_(std::move(slot)), call_(call) {}
  std::shared_ptr<Slot> slot_;
  uint64_t call_ = 0;
};

class RequestFilter {
 public:
  virtual ~RequestFilter() = default;
  virtual std::string_view name() const = 0;
  // Per-worker state, made the first time a worker runs this filter (null: stateless).
  virtual std::unique_ptr<FilterState> make_state() const { return nullptr; }
  // Runs on a worker loop; must not block. kReply: fill `reply`. kPending: keep `waiter` and call
  // waiter.done() later on the same loop. `state` is this worker's make_state() (or null).
  virtual FilterResult on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                                  FilterReply& reply, const FilterWaiter& waiter) const = 0;
};

// The filters of one route, in order. Immutable once built; shared by workers and snapshots.
class FilterChain {
 public:
  explicit FilterChain(std::vector<std::shared_ptr<const RequestFilter>> filters);
  const std::vector<std::shared_ptr<const RequestFilter>>& filters() const noexcept { return filters_; }
  bool empty() const noexcept { return filters_.empty(); }
  // Does filter i keep per-worker state? (Asked once here, so a run looks up no state for the
  // stateless ones.)
  bool stateful(size_t i) const noexcept { return stateful_[i]; }

 private:
  std::vector<std::shared_ptr<const RequestFilter>> filters_;
  std::vector<bool> stateful_;
};

// One worker's filter states, by filter object. An entry keeps its filter alive, so a new filter
// can never be mistaken for a freed one at the same address. Entries for filters no longer
// published are dropped by retain() (the worker calls it when a snapshot arrives).
class FilterStates {
 public:
  FilterState* state_for(const std::shared_ptr<const RequestFilter>& filter);
  // Keeps the states of filters in `live` only.
  void retain(std::vector<const RequestFilter*> live);
  size_t size() const noexcept { return states_.size(); }

 private:
  struct Entry {
    std::shared_ptr<const RequestFilter> filter;
    std::unique_ptr<FilterState> state;
  };
  std::unordered_map<const RequestFilter*, Entry> states_;
};

// Receives the end of a chain that went pending.
class FilterRunOwner {
 public:
  virtual ~FilterRunOwner() = default;
  // The pending filter called done(): call FilterRun::proceed() to go on (with the head again).
  virtual void on_filter_done() = 0;
};

// Runs one request through a chain. Lives in the exchange; cancel() when the request goes away.
class FilterRun {
 public:
  FilterRun() = default;
  ~FilterRun() {
    cancel();
    if (slot_) slot_->run = nullptr;
  }
  FilterRun(const FilterRun&) = delete;
  FilterRun& operator=(const FilterRun&) = delete;

  // Starts the chain: kContinue (all passed; edits() holds their edits), kReply (reply()), or
  // kPending (owner->on_filter_done() follows, then call proceed()).
  FilterResult start(const FilterChain& chain, FilterStates& states, const FilterRequest& req,
                     FilterRunOwner* owner);
  // After on_filter_done(): the pending filter's verdict applied, then the rest of the chain.
  FilterResult proceed(const FilterRequest& req);
  // The request is gone: a pending filter's work is aborted (FilterWaiter::on_abort), and its
  // later done() does nothing. Idempotent.
  void cancel() noexcept;
  void reset() noexcept;
  bool pending() const noexcept { return slot_ && slot_->call != 0; }

  HeaderEdits& edits() noexcept { return edits_; }
  FilterReply& reply() noexcept { return reply_; }

 private:
  friend class FilterWaiter;
  FilterResult run_from(size_t index, const FilterRequest& req);
  void on_done(FilterResult result);

  const FilterChain* chain_ = nullptr;
  FilterStates* states_ = nullptr;
  FilterRunOwner* owner_ = nullptr;
  size_t next_ = 0;                                  // the filter to run next
  FilterResult resumed_ = FilterResult::kContinue;   // what the pending filter answered
  std::shared_ptr<FilterWaiter::Slot> slot_;         // shared by this run's waiters
  FilterWaiter waiter_;                              // the one handed to filter calls
  uint64_t calls_ = 0;                               // filter calls made, ever (numbers waiters)
  bool in_call_ = false;                             // inside a filter's on_request
  bool sync_done_ = false;                           // its done() came before it returned
  HeaderEdits edits_;
  FilterReply reply_;
};

}  // namespace berth
