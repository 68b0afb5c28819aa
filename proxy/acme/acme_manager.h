// Keeps a certificate for every group of host names that asks for one (routes with
// `acme: true`, containers labelled berth.tls.acme=true). It runs its own thread: ACME traffic
// (blocking sockets bounded by timeouts) never touches a worker loop or the control loop.
//
// The control loop hands it the wanted groups after every snapshot (set_wanted) and reads the
// certificates it holds (certificates()) when told that they changed (the `changed` callback,
// called on the ACME thread: the Server turns it into a uv_async_send). Certificates found in
// storage at start are served at once, with no new order; a certificate is ordered when there
// is none, or renewed when it expires within renew_before (but not before a third of its
// lifetime is left). A failure is logged (event=acme_order_failed) and retried after 10 s,
// doubling up to 1 h. Storage that cannot be used (at start, or for writing a new certificate)
// is logged (event=acme_storage_failed) and tried again with the same backoff; a certificate
// that could not be stored is served from memory meanwhile, not ordered again.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "proxy/acme/acme_store.h"
#include "proxy/tls/server_context.h"

namespace berth::acme {

class AcmeClient;

class AcmeManager {
 public:
  AcmeManager(config::Acme cfg, std::function<void()> changed);
  ~AcmeManager();  // stops and joins the thread
  AcmeManager(const AcmeManager&) = delete;
  AcmeManager& operator=(const AcmeManager&) = delete;

  // Control loop. Each group is the host names of one route (its certificate's SAN). Groups
  // with a wildcard or no name are kept as failed with the reason; others get a certificate.
  // Stored certificates of new groups are read here (the control loop may read files); true
  // when one was, so the caller rebuilds the TLS contexts.
  bool set_wanted(const std::vector<std::vector<std::string>>& groups);
  void start();
  // No more `changed` calls after this returns (any thread); the thread ends soon after.
  void stop();

  // The certificates held now, for the TLS listeners' `extra` (any thread).
  std::vector<tls::CertificatePem> certificates() const;
  // Per group: {hosts, state: pending|valid|failed, error, not_after, renew_at, stored,
  // failures, next_attempt}.
  nlohmann::json status_json() const;

 private:
  struct Entry {
    std::vector<std::string> hosts;
    std::string state = "pending";
    std::string error;
    std::string chain_pem, key_pem;  // empty: no certificate yet
    int64_t not_before = 0, not_after = 0;
    unsigned failures = 0;
    int64_t next_attempt = 0;  // Unix seconds
    bool unservable = false;   // a wildcard or empty host: never ordered
    // Issued but not in storage yet (the write failed): written again at next_write.
    bool unsaved = false;
    unsigned write_failures = 0;
    int64_t next_write = 0;
  };
  void run();
  // Each called on the ACME thread with mu_ held (unlocked around file and network work); false
  // when there was nothing to do now.
  bool prepare_storage(std::unique_lock<std::mutex>& lock, int64_t now);
  bool store_unsaved(std::unique_lock<std::mutex>& lock, int64_t now);
  bool order_due(std::unique_lock<std::mutex>& lock, AcmeClient& client, int64_t now);
  bool load_stored(Entry& e);

  config::Acme cfg_;
  AcmeStore store_;
  std::function<void()> changed_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Entry> entries_;  // key: the hosts joined with ','
  bool store_ready_ = false;
  std::string store_error_;  // why storage cannot be used, while it cannot
  unsigned store_failures_ = 0;
  int64_t next_prepare_ = 0;
  AcmeClient* client_ = nullptr;  // the ACME thread's, while it runs (stop() cancels its request)
  std::thread thread_;
};

}  // namespace berth::acme
