#include "discovery/registry/registry_watch.h"

#include <algorithm>
#include <ctime>
#include <limits>

#include "discovery/label_builder.h"
#include "proxy/base/clock.h"
#include "proxy/base/log.h"

namespace berth::discovery::registry {

namespace {
constexpr std::chrono::milliseconds kCallTimeout{3'000};
constexpr std::chrono::milliseconds kWatchHeadTimeout{3'000};
constexpr std::chrono::milliseconds kCheckInterval{3'000};
constexpr std::chrono::milliseconds kBackoffMax{5'000};

std::string now_text() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The revision that created a kv's key (it orders contested claims); a kv that does not say is
// taken for the newest, so it takes no claim from a key that does.
int64_t created_revision(const nlohmann::json& kv) {
  constexpr int64_t kNewest = std::numeric_limits<int64_t>::max();
  return json_int64(kv, "create_revision", kNewest).value_or(kNewest);
}
}  // namespace

RegistryWatch::RegistryWatch(const config::Registry& cfg, TablePolicy policy, size_t page_bytes)
    : cfg_(cfg),
      policy_(std::move(policy)),
      root_(instances_prefix(cfg.prefix)),
      table_(cfg.prefix, policy_),
      page_bytes_(page_bytes),
      grace_(cfg.empty_route_grace) {
  bool https = std::any_of(cfg_.etcd.begin(), cfg_.etcd.end(), [](const std::string& u) { return u.rfind("https://", 0) == 0; });
  if (https) {
    std::string error;
    tls_ = TlsContext::create(cfg_.tls, &error);
    if (!tls_) setup_error_ = error;
  }
}

RegistryWatch::~RegistryWatch() { stop(nullptr); }

void RegistryWatch::start(uv_loop_t* loop, UpdateFn on_update) {
  loop_ = loop;
  on_update_ = std::move(on_update);
  if (!setup_error_.empty()) {
    stale_ = "registry cannot start: " + setup_error_;
    log::error("registry_setup_failed").kv("reason", setup_error_);
    return;
  }
  client_ = std::make_unique<EtcdClient>(loop_, cfg_.etcd, tls_);
  sync();
}

void RegistryWatch::stop(std::function<void()> done) {
  stopped_ = true;
  client_.reset();
  retry_timer_.close();
  check_timer_.close();
  grace_timer_.close();
  publish_timer_.close();  // its handle is freed by the loop's next turn, before the loop ends
  if (done) done();
}

std::string RegistryWatch::stale_reason() const { return stale_; }

SourceStats RegistryWatch::stats() const {
  SourceStats s;
  s.connected = synced_;
  s.events.assign(event_counts_.begin(), event_counts_.end());
  return s;
}

void RegistryWatch::reserve_service_names(std::map<std::string, std::string> name_to_owner) {
  // A whole pass, published in the loop's next turn (never from inside the caller's update);
  // before the first range the table has nothing to publish yet.
  if (table_.reserve(std::move(name_to_owner)) && revision_ > 0 && !stopped_) publish_soon(realtime_ns());
}

void RegistryWatch::sync() {
  if (stopped_) return;
  synced_ = false;
  ++generation_;
  if (watch_id_) client_->cancel_watch(watch_id_);
  watch_id_ = 0;
  ranged_.clear();
  range_revision_ = 0;
  range_largest_ = 0;
  range_pages_ = 0;
  range_limit_ = range_page_limit(page_bytes_, 0);
  range_page(root_);
}

void RegistryWatch::range_page(const std::string& from) {
  uint64_t generation = generation_;
  nlohmann::json body = {{"key", base64_encode(from)},
                         {"range_end", base64_encode(prefix_range_end(root_))},
                         {"limit", range_limit_}};
  if (range_revision_ > 0) body["revision"] = std::to_string(range_revision_);
  client_->call("kv/range", body, kCallTimeout, [this, generation, from](EtcdReply reply) {
    if (generation != generation_) return;
    on_range(reply, from);
  });
}

void RegistryWatch::on_range(const EtcdReply& reply, const std::string& from) {
  if (!reply.ok()) {
    // A page grown on small values that met large ones may be over the client's cap or the
    // call's timeout: read it once more as small as the first page, before giving up.
    int64_t first_limit = range_page_limit(page_bytes_, 0);
    if (range_limit_ > first_limit) {
      log::info("registry_range_page_retried").kv("reason", reply.error).kv("limit", range_limit_)
          .kv("retry_limit", first_limit);
      range_limit_ = first_limit;
      range_page(from);
      return;
    }
    lost("range: " + reply.error);
    return;
  }
  if (range_revision_ == 0) {
    auto revision = json_int64(reply.body.value("header", nlohmann::json::object()), "revision");
    if (!revision || *revision <= 0) {
      lost("range reply without a revision");
      return;
    }
    range_revision_ = *revision;
  }
  ++range_pages_;
  std::string last;
  if (auto kvs = reply.body.find("kvs"); kvs != reply.body.end() && kvs->is_array()) {
    for (const auto& kv : *kvs) {
      auto key = base64_decode(kv.value("key", ""));
      auto value = base64_decode(kv.value("value", ""));
      if (!key) continue;
      range_largest_ = std::max(range_largest_, key->size() + (value ? value->size() : 0));
      last = std::max(last, *key);
      ranged_[*key] = StoredValue{value.value_or("\x01not base64"), created_revision(kv)};
    }
  }
  if (reply.body.value("more", false)) {
    if (last.empty() || last < from) {
      lost("range reply says there is more but holds no key to go on from");
      return;
    }
    range_limit_ = range_page_limit(page_bytes_, range_largest_);
    range_page(last + std::string(1, '\0'));  // the next key after the last one read
    return;
  }
  table_.reset(ranged_);  // reconcile: the pages are the truth at range_revision_
  ranged_.clear();
  revision_ = range_revision_;
  ++event_counts_["range"];
  publish(realtime_ns());
  watch();
}

void RegistryWatch::watch() {
  uint64_t generation = generation_;
  nlohmann::json create = {{"key", base64_encode(root_)},
                           {"range_end", base64_encode(prefix_range_end(root_))},
                           {"start_revision", std::to_string(revision_ + 1)}};
  EtcdClient::WatchCallbacks cb;
  cb.on_message = [this, generation](const nlohmann::json& result) {
    if (generation != generation_) return;
    on_watch_message(result);
  };
  cb.on_skipped = [this, generation] {
    if (generation != generation_) return;
    // What the line said (puts, deletes) is learnt again from a range, the watch made anew
    // from its revision: nothing is lost, and the line is not met again.
    log::warn("registry_watch_line_skipped").kv("reason", "a watch message larger than 16 MiB")
        .kv("action", "reading the whole range again");
    ++event_counts_["skipped"];
    sync();
  };
  cb.on_end = [this, generation](const std::string& why) {
    if (generation != generation_) return;
    watch_id_ = 0;
    lost("watch on " + client_->current_member() + " ended: " + why);
  };
  watch_id_ = client_->watch(create, kWatchHeadTimeout, std::move(cb));
}

void RegistryWatch::on_watch_message(const nlohmann::json& result) {
  int64_t received = realtime_ns();
  if (result.value("canceled", false)) {
    auto compacted = json_int64(result, "compact_revision");
    if (compacted && *compacted > 0) {
      log::warn("registry_watch_compacted").kv("compact_revision", *compacted).kv("revision", revision_);
      ++event_counts_["compacted"];
      sync();  // range again and reconcile
      return;
    }
    lost("watch canceled: " + result.value("cancel_reason", std::string("no reason given")));
    return;
  }
  if (result.value("created", false)) {
    bool was_stale = !unreachable_since_.empty();
    synced_ = true;
    backoff_ = std::chrono::milliseconds(100);
    stale_.clear();
    unreachable_since_.clear();
    log::info(was_stale ? "registry_resynced" : "registry_synced")
        .kv("member", client_->current_member())
        .kv("revision", revision_)
        .kv("keys", static_cast<uint64_t>(table_.size()))
        .kv("range_pages", range_pages_);
    if (!check_timer_.active())
      check_timer_.start(loop_, static_cast<uint64_t>(kCheckInterval.count()), [this] { check(); },
                         static_cast<uint64_t>(kCheckInterval.count()));
  }
  auto events = result.find("events");
  if (events == result.end() || !events->is_array() || events->empty()) return;
  bool changed = false;
  for (const auto& e : *events) {
    const auto& kv = e.value("kv", nlohmann::json::object());
    auto key = base64_decode(kv.value("key", ""));
    if (!key) continue;
    if (auto mod = json_int64(kv, "mod_revision"); mod && *mod > revision_) revision_ = *mod;
    if (e.value("type", std::string("PUT")) == "DELETE") {
      changed = table_.erase(*key) || changed;
      ++event_counts_["delete"];
    } else {
      auto value = base64_decode(kv.value("value", ""));
      changed = table_.put(*key, value.value_or("\x01not base64"), created_revision(kv)) || changed;
      ++event_counts_["put"];
    }
  }
  if (changed) publish_soon(received);
}

void RegistryWatch::publish_soon(int64_t received_ns) {
  if (unpublished_since_ns_ == 0) unpublished_since_ns_ = received_ns;
  if (publish_timer_.active()) return;
  // Started from an I/O callback, a 0 ms timer runs in the loop's next turn, after every watch
  // message this turn's reads brought.
  publish_timer_.start(loop_, 0, [this] {
    const int64_t since = unpublished_since_ns_;
    unpublished_since_ns_ = 0;
    if (!stopped_) publish(since);
  });
}

void RegistryWatch::check() {
  if (!synced_ || stopped_) return;
  uint64_t generation = generation_;
  nlohmann::json body = {{"key", base64_encode(root_)}, {"range_end", base64_encode(prefix_range_end(root_))},
                         {"count_only", true}};
  client_->call(
      "kv/range", body, kCallTimeout,
      [this, generation](EtcdReply reply) {
        if (generation != generation_ || reply.ok()) return;
        lost("check of " + reply.member + ": " + reply.error);
      },
      /*pinned=*/true);
}

void RegistryWatch::lost(const std::string& why) {
  if (stopped_) return;
  ++generation_;  // late replies and watch callbacks of this round are ignored
  if (watch_id_) client_->cancel_watch(watch_id_);
  watch_id_ = 0;
  synced_ = false;
  check_timer_.stop();
  client_->next_member();
  if (unreachable_since_.empty()) unreachable_since_ = now_text();
  stale_ = "etcd unreachable since " + unreachable_since_ + " (" + why +
           "); serving the last good table of " + std::to_string(table_.size()) + " keys";
  log::warn("registry_lost").kv("reason", why).kv("retry_ms", static_cast<int64_t>(backoff_.count()));
  retry_timer_.start(loop_, static_cast<uint64_t>(backoff_.count()), [this] { sync(); });
  backoff_ = std::min(backoff_ * 2, kBackoffMax);
}

void RegistryWatch::publish(int64_t received_ns) {
  // Only what changed is made again: unchanged services and routes stay the same objects, so
  // the Server rebuilds only those (health state and LB tables stay).
  // A grace period that ended publishes the same table without that route.
  std::shared_ptr<DiscoveredSet> set = table_.next();
  const bool table_changed = set != nullptr;
  if (table_changed) {
    std::map<std::string, std::string> now(set->rejected.begin(), set->rejected.end());
    for (const auto& [key, reason] : now) {
      auto it = logged_rejections_.find(key);
      if (it != logged_rejections_.end() && it->second == reason) continue;
      log::warn("registry_value_rejected").kv("key", key).kv("reason", reason);
    }
    logged_rejections_ = std::move(now);
    live_ = std::move(set);
  }
  if (!live_) return;
  DiscoveredSet live = *live_;  // pointers to services and routes: grace_ keeps the objects it can
  live.event_received_ns = received_ns;
  std::shared_ptr<const DiscoveredSet> out = grace_.apply(std::move(live), health_clock_ms());
  arm_grace_timer();
  if (!table_changed && published_ && same_set(*published_, *out)) return;
  published_ = out;
  on_update_(std::move(out));
}

void RegistryWatch::arm_grace_timer() {
  const std::optional<int64_t> next = grace_.next_expiry();
  if (!next) {
    grace_timer_.stop();
    return;
  }
  const int64_t wait = *next - health_clock_ms();
  grace_timer_.start(loop_, wait > 0 ? static_cast<uint64_t>(wait) + 1 : 1, [this] {
    if (!stopped_) publish(realtime_ns());
  });
}

}  // namespace berth::discovery::registry
