#include "discovery/registry/registry_publish.h"

#include <algorithm>

#include "discovery/registry/registry_table.h"
#include "proxy/base/log.h"

namespace berth::discovery::registry {

namespace {
constexpr std::chrono::milliseconds kCallTimeout{3'000};
constexpr std::chrono::milliseconds kBackoffMax{5'000};
}  // namespace

RegistryPublisher::RegistryPublisher(const config::Registry& cfg, std::unique_ptr<Source> inner)
    : cfg_(cfg), inner_(std::move(inner)), host_prefix_(host_prefix(cfg.prefix, cfg.host_id)) {
  bool https = std::any_of(cfg_.etcd.begin(), cfg_.etcd.end(), [](const std::string& u) { return u.rfind("https://", 0) == 0; });
  if (https) {
    std::string error;
    tls_ = TlsContext::create(cfg_.tls, &error);
    if (!tls_) setup_error_ = error;
  }
}

RegistryPublisher::~RegistryPublisher() { stop(nullptr); }

void RegistryPublisher::start(uv_loop_t* loop, UpdateFn on_update) {
  loop_ = loop;
  inner_->start(loop, [this, on_update = std::move(on_update)](std::shared_ptr<const DiscoveredSet> set) {
    Publication publication = publication_from_set(*set, cfg_.prefix, cfg_.host_id, cfg_.advertise_address);
    want_ = std::move(publication.kvs);
    warn_about(publication);
    have_set_ = true;
    on_update(std::move(set));
    pump();
  });
  if (!setup_error_.empty()) {
    log::error("registry_setup_failed").kv("reason", setup_error_);
    return;
  }
  client_ = std::make_unique<EtcdClient>(loop_, cfg_.etcd, tls_);
  connect();
}

void RegistryPublisher::stop(std::function<void()> done) {
  if (stopped_) {
    if (done) done();
    return;
  }
  stopped_ = true;
  client_.reset();
  retry_timer_.close();
  keepalive_timer_.close();
  inner_->stop(std::move(done));
}

std::string RegistryPublisher::publish_problem() const {
  if (!setup_error_.empty()) return setup_error_;
  if (!problem_.empty()) return problem_;
  return ready_ ? std::string() : "not publishing yet: waiting for a lease from etcd";
}

void RegistryPublisher::connect() {
  if (stopped_) return;
  ready_ = false;
  busy_ = false;
  keepalive_answered_ = keepalive_sent_;  // a new lease: what the old one's left unanswered is moot
  uint64_t generation = ++generation_;
  client_->call("lease/grant", {{"TTL", cfg_.lease_ttl.count() / 1000}}, kCallTimeout,
                [this, generation](EtcdReply reply) {
                  if (generation == generation_) on_granted(reply);
                });
}

void RegistryPublisher::on_granted(const EtcdReply& reply) {
  if (!reply.ok()) {
    lost("lease grant: " + reply.error);
    return;
  }
  auto id = reply.body.find("ID");
  if (id == reply.body.end() || !(id->is_string() || id->is_number_integer())) {
    lost("lease grant reply without an ID");
    return;
  }
  lease_ = id->is_string() ? id->get<std::string>() : std::to_string(id->get<int64_t>());
  uint64_t generation = generation_;
  nlohmann::json body = {{"key", base64_encode(host_prefix_)},
                         {"range_end", base64_encode(prefix_range_end(host_prefix_))},
                         {"keys_only", true}};
  client_->call("kv/range", body, kCallTimeout, [this, generation](EtcdReply r) {
    if (generation == generation_) on_own_keys(r);
  });
}

void RegistryPublisher::on_own_keys(const EtcdReply& reply) {
  if (!reply.ok()) {
    lost("range of own keys: " + reply.error);
    return;
  }
  // Every key found is rewritten under the new lease (or deleted): "" never equals a value.
  have_.clear();
  written_at_.clear();
  if (auto kvs = reply.body.find("kvs"); kvs != reply.body.end() && kvs->is_array())
    for (const auto& kv : *kvs)
      if (auto key = base64_decode(kv.value("key", ""))) have_[*key] = "";
  ready_ = true;
  problem_.clear();
  backoff_ = std::chrono::milliseconds(100);
  log::info("registry_publishing")
      .kv("host_id", cfg_.host_id)
      .kv("lease", lease_)
      .kv("own_keys_found", static_cast<uint64_t>(have_.size()));
  uint64_t interval = static_cast<uint64_t>(std::max<int64_t>(500, cfg_.lease_ttl.count() / 3));
  keepalive_timer_.start(loop_, interval, [this] { keepalive(); }, interval);
  pump();
}

void RegistryPublisher::warn_about(Publication& publication) {
  for (const std::string& key : publication.too_large)
    if (std::find(too_large_.begin(), too_large_.end(), key) == too_large_.end())
      log::warn("registry_value_too_large").kv("key", key).kv("reason", "its value would be over 1 MiB (the files its "
                                                                      "labels name count): not published");
  too_large_ = std::move(publication.too_large);
  // Each value as a front door reads it (the same code, the default policy), once per value.
  for (auto it = checked_.begin(); it != checked_.end();)
    it = want_.count(it->first) ? std::next(it) : checked_.erase(it);
  for (const auto& [key, value] : want_) {
    auto [it, added] = checked_.try_emplace(key);
    if (!added && it->second.first == value) continue;
    std::string problem = front_door_problem(key, value, cfg_.prefix);
    if (!problem.empty() && (added || problem != it->second.second))
      log::warn("registry_refused_by_front_doors").kv("key", key).kv("reason", problem + ": published all the same");
    it->second = {value, std::move(problem)};
  }
}

void RegistryPublisher::pump() {
  if (!ready_ || busy_ || stopped_ || !have_set_) return;
  std::vector<ContainerChange> changes = diff_publication(have_, want_, host_prefix_);
  if (changes.empty()) return;
  // One container at a time, one transaction each; the next waits for this one's reply.
  ContainerChange change = std::move(changes.front());
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& [key, value] : change.puts)
    ops.push_back({{"request_put", {{"key", base64_encode(key)}, {"value", base64_encode(value)}, {"lease", lease_}}}});
  for (const std::string& key : change.deletes)
    ops.push_back({{"request_delete_range", {{"key", base64_encode(key)}}}});
  busy_ = true;
  uint64_t generation = generation_;
  client_->call("kv/txn", {{"success", ops}}, kCallTimeout,
                [this, generation, change = std::move(change)](EtcdReply reply) {
                  if (generation != generation_) return;
                  busy_ = false;
                  if (!reply.ok()) {
                    lost("transaction for container " + change.container + ": " + reply.error);
                    return;
                  }
                  ++writes_;
                  auto revision = json_int64(reply.body.value("header", nlohmann::json::object()), "revision");
                  for (const auto& [key, value] : change.puts) {
                    have_[key] = value;
                    if (revision && *revision > 0) written_at_[key] = *revision;
                    else written_at_.erase(key);
                  }
                  for (const std::string& key : change.deletes) {
                    have_.erase(key);
                    written_at_.erase(key);
                  }
                  log::debug("registry_published")
                      .kv("container", change.container)
                      .kv("puts", static_cast<uint64_t>(change.puts.size()))
                      .kv("deletes", static_cast<uint64_t>(change.deletes.size()));
                  pump();
                });
}

void RegistryPublisher::keepalive() {
  if (!ready_ || stopped_) return;
  uint64_t generation = generation_;
  // The last keepalive (lease_ttl / 3 ago) has no answer yet: its member is hung or slow. This
  // one goes to the next member at once, while that one may still answer, instead of waiting
  // for its timeout (3 s, longer than a short lease lives). A cluster slow everywhere still
  // renews: every keepalive sent is answered in the end, wherever it went.
  if (keepalive_answered_ < keepalive_sent_) client_->next_member();
  const uint64_t seq = ++keepalive_sent_;
  client_->call("lease/keepalive", {{"ID", lease_}}, kCallTimeout, [this, generation, seq](EtcdReply reply) {
    if (generation != generation_) return;
    keepalive_answered_ = std::max(keepalive_answered_, seq);
    if (!reply.ok()) {
      // etcd unreachable: the lease may still live; the next keepalive tells.
      log::warn("registry_keepalive_failed").kv("reason", reply.error);
      problem_ = "lease keepalive failed: " + reply.error;
      return;
    }
    auto ttl = json_int64(reply.body, "TTL");
    if (!ttl || *ttl <= 0) return lost("lease " + lease_ + " expired");
    problem_.clear();
  });
  verify_own_keys();
}

void RegistryPublisher::verify_own_keys() {
  if (!ready_ || busy_ || stopped_ || !have_set_) return;
  // Keys still to be rewritten (those found at start: a previous run's, under its lease) would
  // look like another Berth's: read once they are written.
  if (std::any_of(have_.begin(), have_.end(), [](const auto& kv) { return kv.second.empty(); })) return;
  uint64_t generation = generation_, writes = writes_;
  nlohmann::json body = {{"key", base64_encode(host_prefix_)},
                         {"range_end", base64_encode(prefix_range_end(host_prefix_))},
                         {"keys_only", true}};
  client_->call("kv/range", body, kCallTimeout, [this, generation, writes](EtcdReply reply) {
    // A write since the read was sent makes it moot: the next keepalive reads again.
    if (generation != generation_ || writes != writes_ || busy_ || !reply.ok()) return;
    on_verified(reply);
  });
}

void RegistryPublisher::on_verified(const EtcdReply& reply) {
  struct Held {
    std::string lease;
    int64_t mod_revision = 0;
  };
  std::map<std::string, Held> found;
  std::map<std::string, uint64_t> others;  // another lease -> its keys under our host_id
  if (auto kvs = reply.body.find("kvs"); kvs != reply.body.end() && kvs->is_array())
    for (const auto& kv : *kvs) {
      auto key = base64_decode(kv.value("key", ""));
      if (!key) continue;
      Held held{std::to_string(json_int64(kv, "lease").value_or(0)), json_int64(kv, "mod_revision").value_or(0)};
      if (held.lease != lease_ && held.lease != "0") ++others[held.lease];  // "0": a put without a lease
      found[*key] = std::move(held);
    }
  uint64_t missing = 0, taken = 0;
  for (auto it = have_.begin(); it != have_.end();) {
    auto f = found.find(it->first);
    auto at = written_at_.find(it->first);
    if (f == found.end()) {
      ++missing;
      written_at_.erase(it->first);
      it = have_.erase(it);  // to be put again
      continue;
    }
    // Held by another live lease: a second Berth with this host_id publishes the same container
    // id. Left to it (rewriting would start a tug of war, every read, and every front door would
    // flip the instance's address); written again once that lease's keys are gone.
    const bool other_live_lease = f->second.lease != lease_ && f->second.lease != "0";
    if (!other_live_lease &&
        (f->second.lease != lease_ || (at != written_at_.end() && f->second.mod_revision != at->second))) {
      ++taken;
      it->second.clear();  // "" never equals a value: to be put again
    }
    ++it;
  }
  std::vector<std::string> leases;
  for (const auto& [lease, keys] : others) leases.push_back(lease);
  if (!others.empty() && leases != clash_leases_) {
    std::string list;
    uint64_t keys = 0;
    for (const auto& [lease, n] : others) {
      list += (list.empty() ? "" : ",") + lease;
      keys += n;
    }
    log::warn("registry_host_id_clash")
        .kv("host_id", cfg_.host_id)
        .kv("lease", lease_)
        .kv("other_leases", list)
        .kv("other_keys", keys)
        .kv("reason", "another Berth publishes under this host_id (a cloned machine? give each its own "
                      "registry.host_id); each writes its own keys again when the other takes them");
  }
  clash_leases_ = std::move(leases);
  if (missing || taken) {
    log::warn("registry_own_keys_rewritten")
        .kv("host_id", cfg_.host_id)
        .kv("missing", missing)
        .kv("held_by_another_write", taken)
        .kv("reason", "keys this sidecar published were deleted or overwritten in etcd");
    pump();
  }
}

void RegistryPublisher::lost(const std::string& why) {
  if (stopped_) return;
  ++generation_;
  ready_ = false;
  busy_ = false;
  keepalive_timer_.stop();
  problem_ = why;
  log::warn("registry_publish_lost").kv("reason", why).kv("retry_ms", static_cast<int64_t>(backoff_.count()));
  retry_timer_.start(loop_, static_cast<uint64_t>(backoff_.count()), [this] { connect(); });
  backoff_ = std::min(backoff_ * 2, kBackoffMax);
}

}  // namespace berth::discovery::registry
