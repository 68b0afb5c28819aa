// The sidecar's publisher: wraps the host's Docker discovery source. Every set that source
// hands over goes on to the Server unchanged (the sidecar routes its host's apps locally, with
// or without etcd), and its routable instances are published to etcd under
// <prefix>/instances/<host-id>/<container-id>/<n>, attached to a lease kept alive at a third
// of lease_ttl (one sent while the last is unanswered goes to the next member: a hung member
// does not let the lease run out, a slow cluster still renews it). Writes happen on change only, one transaction
// per container, the deletes of gone containers last.
//
// Start and every return of etcd: grant a lease, range the host's keys (its own from a previous
// run included), then write what is true now under the new lease and delete keys of
// containers that are gone: the old keys stay until replaced, so no instance vanishes
// meanwhile. A keepalive that finds the lease gone (etcd lost quorum longer than the TTL)
// starts that over.
//
// Its keys are not trusted to stay as written: with every keepalive it reads its host's keys
// (keys only) and writes again any of its own that is gone (deleted by hand) or that another
// lease or a later write holds (a second Berth with the same host_id, e.g. a cloned machine,
// took them over); keys of another live lease under its host_id are logged as
// registry_host_id_clash, both leases named.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "discovery/registry/etcd_client.h"
#include "discovery/registry/registry_codec.h"
#include "discovery/source.h"
#include "discovery/uv_handle.h"

namespace berth::discovery::registry {

class RegistryPublisher final : public Source {
 public:
  RegistryPublisher(const config::Registry& cfg, std::unique_ptr<Source> inner);
  ~RegistryPublisher() override;

  std::string_view name() const override { return inner_->name(); }
  void start(uv_loop_t* loop, UpdateFn on_update) override;
  void stop(std::function<void()> done) override;
  // The host's own discovery decides readiness: the sidecar routes locally whatever etcd does.
  std::string stale_reason() const override { return inner_->stale_reason(); }
  SourceStats stats() const override { return inner_->stats(); }
  // Empty while the host's instances are published under a live lease; otherwise why not.
  std::string publish_problem() const;

 private:
  void connect();
  void on_granted(const EtcdReply& reply);
  void on_own_keys(const EtcdReply& reply);
  void pump();
  // Warns once per key left out of the publication for its size, and once per key (and reason)
  // that front doors will refuse (front_door_problem).
  void warn_about(Publication& publication);
  void keepalive();
  // Reads the host's keys and marks for rewriting those of ours that are gone or changed.
  void verify_own_keys();
  void on_verified(const EtcdReply& reply);
  void lost(const std::string& why);

  config::Registry cfg_;
  std::unique_ptr<Source> inner_;
  std::shared_ptr<TlsContext> tls_;
  std::string setup_error_;
  std::string problem_;  // the last failure since the lease was last kept alive ("": none)
  uv_loop_t* loop_ = nullptr;
  std::unique_ptr<EtcdClient> client_;
  std::string host_prefix_;
  std::map<std::string, std::string> want_;  // from the latest Docker set
  std::map<std::string, std::string> have_;  // in etcd under our lease ("" = to be rewritten)
  std::map<std::string, int64_t> written_at_;  // the revision of our last put of each key
  uint64_t writes_ = 0;                        // transactions done (a read older than one is moot)
  std::vector<std::string> clash_leases_;      // other leases under our host_id, as last warned about
  std::vector<std::string> too_large_;        // keys left out, as last warned about
  // Each published key's value, and why front doors refuse it ("": they do not), as last checked.
  std::map<std::string, std::pair<std::string, std::string>> checked_;
  std::string lease_;                        // lease ID as the gateway spells it
  bool ready_ = false;                       // lease granted and own keys known
  bool busy_ = false;                        // a transaction in flight
  bool have_set_ = false;                    // the host's discovery handed over its first set
                                             // (before it, "nothing" would delete our keys)
  bool stopped_ = false;
  uint64_t generation_ = 0;
  uint64_t keepalive_sent_ = 0, keepalive_answered_ = 0;  // keepalives numbered 1, 2, ...: the last sent, the last answered
  Timer retry_timer_, keepalive_timer_;
  std::chrono::milliseconds backoff_{100};
};

}  // namespace berth::discovery::registry
