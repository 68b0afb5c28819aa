#include "proxy/acme/acme_manager.h"

#include <algorithm>
#include <ctime>

#include "config/tls_files.h"
#include "proxy/acme/acme_client.h"
#include "proxy/acme/acme_crypto.h"
#include "proxy/acme/acme_protocol.h"
#include "proxy/base/log.h"

namespace berth::acme {

namespace {
int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

std::string join(const std::vector<std::string>& hosts) {
  std::string out;
  for (const std::string& h : hosts) out += (out.empty() ? "" : ",") + h;
  return out;
}
}  // namespace

AcmeManager::AcmeManager(config::Acme cfg, std::function<void()> changed)
    : cfg_(std::move(cfg)), store_(cfg_.storage), changed_(std::move(changed)) {
  store_ready_ = store_.prepare(&store_error_);
  if (!store_ready_) {
    store_failures_ = 1;
    next_prepare_ = now_unix() + retry_delay(1).count();
    log::error("acme_storage_failed").kv("error", store_error_).kv("retry_in_s", retry_delay(1).count());
  }
}

AcmeManager::~AcmeManager() {
  stop();
  if (thread_.joinable()) thread_.join();
}

bool AcmeManager::load_stored(Entry& e) {
  auto stored = store_.read_certificate(e.hosts);
  if (!stored) return false;
  const std::string problem = config::check_tls_pair(stored->chain_pem, stored->key_pem);
  std::vector<std::string> names = certificate_names(stored->chain_pem);
  std::vector<std::string> wanted = e.hosts;
  std::sort(wanted.begin(), wanted.end());
  if (!problem.empty() || names != wanted) {
    log::warn("acme_stored_certificate_ignored")
        .kv("hosts", join(e.hosts))
        .kv("reason", problem.empty() ? std::string("its names differ from the route's hosts") : problem);
    return false;
  }
  e.chain_pem = std::move(stored->chain_pem);
  e.key_pem = std::move(stored->key_pem);
  e.not_after = certificate_not_after(e.chain_pem);
  e.not_before = certificate_not_before(e.chain_pem);
  e.state = "valid";
  // Found where an older Berth kept it: written under its own name too (the ACME thread's next
  // turn), before a route whose one host is that name claims the directory.
  e.unsaved = stored->legacy;
  e.next_write = 0;
  log::info("acme_certificate_loaded").kv("hosts", join(e.hosts)).kv("not_after", e.not_after);
  return true;
}

bool AcmeManager::set_wanted(const std::vector<std::vector<std::string>>& groups) {
  std::map<std::string, Entry> next;
  bool loaded = false;
  std::lock_guard<std::mutex> lock(mu_);
  for (std::vector<std::string> hosts : groups) {
    hosts.erase(std::unique(hosts.begin(), hosts.end()), hosts.end());
    const std::string key = join(hosts);
    if (next.count(key)) continue;
    auto old = entries_.find(key);
    if (old != entries_.end()) {
      next.emplace(key, std::move(old->second));
      continue;
    }
    Entry e;
    e.hosts = hosts;
    for (const std::string& h : hosts) {
      if (h.empty() || h.find('*') != std::string::npos) {
        e.unservable = true;
        e.state = "failed";
        e.error = h.empty() ? "a route with no host name cannot get a certificate"
                            : "wildcard '" + h + "' cannot be proved over " + acme_challenge_name(cfg_.challenge);
      }
    }
    if (!e.unservable && store_ready_) loaded = load_stored(e) || loaded;
    next.emplace(key, std::move(e));
  }
  entries_ = std::move(next);
  cv_.notify_all();
  return loaded;
}

void AcmeManager::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void AcmeManager::stop() {
  std::lock_guard<std::mutex> lock(mu_);
  stopping_.store(true);
  if (client_) client_->cancel();  // a server that does not answer must not hold up the exit
  changed_ = nullptr;
  cv_.notify_all();
}

std::vector<tls::CertificatePem> AcmeManager::certificates() const {
  std::vector<tls::CertificatePem> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, e] : entries_)
    if (!e.chain_pem.empty()) out.push_back({"acme:" + key, e.chain_pem, e.key_pem});
  return out;
}

nlohmann::json AcmeManager::status_json() const {
  nlohmann::json out = nlohmann::json::array();
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, e] : entries_) {
    // Without usable storage nothing is ordered: say so rather than "pending" for ever.
    const bool stalled = !store_ready_ && e.chain_pem.empty() && !e.unservable;
    out.push_back({{"hosts", e.hosts},
                   {"state", stalled ? std::string("failed") : e.state},
                   {"error", stalled ? "storage: " + store_error_ : e.error},
                   {"not_after", e.not_after},
                   {"renew_at", e.chain_pem.empty() ? 0 : renewal_time(e.not_before, e.not_after, cfg_.renew_before)},
                   {"stored", !e.chain_pem.empty() && !e.unsaved},
                   {"failures", stalled ? store_failures_ : e.failures},
                   {"next_attempt", stalled ? next_prepare_ : e.next_attempt}});
  }
  return out;
}

bool AcmeManager::prepare_storage(std::unique_lock<std::mutex>& lock, int64_t now) {
  if (store_ready_ || now < next_prepare_) return false;
  lock.unlock();
  std::string error;
  const bool ok = store_.prepare(&error);
  lock.lock();
  if (!ok) {
    store_error_ = error;
    const int64_t delay = retry_delay(++store_failures_).count();
    next_prepare_ = now_unix() + delay;
    log::error("acme_storage_failed").kv("error", error).kv("retry_in_s", delay);
    return true;
  }
  store_ready_ = true;
  store_error_.clear();
  store_failures_ = 0;
  log::info("acme_storage_ready").kv("storage", store_.dir());
  bool loaded = false;  // what a restart would have served at once
  for (auto& [key, e] : entries_)
    if (!e.unservable && e.chain_pem.empty()) loaded = load_stored(e) || loaded;
  if (loaded && changed_) changed_();
  return true;
}

bool AcmeManager::store_unsaved(std::unique_lock<std::mutex>& lock, int64_t now) {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const auto& kv) { return kv.second.unsaved && kv.second.next_write <= now; });
  if (it == entries_.end()) return false;
  const std::string key = it->first;
  const std::vector<std::string> hosts = it->second.hosts;
  const StoredCertificate cert{it->second.chain_pem, it->second.key_pem};
  lock.unlock();
  std::string error;
  const bool ok = store_.write_certificate(hosts, cert, &error);
  lock.lock();
  it = entries_.find(key);
  if (it == entries_.end() || it->second.chain_pem != cert.chain_pem) return true;  // replaced meanwhile
  Entry& e = it->second;
  if (ok) {
    e.unsaved = false;
    e.write_failures = 0;
    e.error.clear();
    log::info("acme_certificate_stored").kv("hosts", key);
  } else {
    const int64_t delay = retry_delay(++e.write_failures).count();
    e.next_write = now_unix() + delay;
    e.error = "issued, not stored: " + error;
    log::error("acme_storage_failed").kv("hosts", key).kv("error", error).kv("retry_in_s", delay);
  }
  return true;
}

bool AcmeManager::order_due(std::unique_lock<std::mutex>& lock, AcmeClient& client, int64_t now) {
  // The next group due: no certificate or one to renew, and its backoff over.
  std::string due;
  for (const auto& [key, e] : entries_) {
    if (e.unservable || e.next_attempt > now) continue;
    if (!e.chain_pem.empty() && !needs_renewal(e.not_before, e.not_after, now, cfg_.renew_before)) continue;
    due = key;
    break;
  }
  if (due.empty()) return false;
  const std::vector<std::string> hosts = entries_[due].hosts;
  const bool renewal = !entries_[due].chain_pem.empty();
  lock.unlock();
  log::info("acme_order_started").kv("hosts", join(hosts)).kv("renewal", renewal);
  StoredCertificate cert;
  std::string error, store_error;
  const bool ok = client.obtain(hosts, &cert, &error);
  // A certificate the CA issued is served even when it cannot be stored: ordering it again
  // would cost an issuance each time, and the site would stay on the default certificate.
  const bool stored = ok && store_.write_certificate(hosts, cert, &store_error);
  lock.lock();
  if (stopping_.load()) return true;
  auto it = entries_.find(due);
  if (it == entries_.end()) return true;  // no longer wanted
  Entry& e = it->second;
  if (ok) {
    e.not_after = certificate_not_after(cert.chain_pem);
    e.not_before = certificate_not_before(cert.chain_pem);
    e.chain_pem = std::move(cert.chain_pem);
    e.key_pem = std::move(cert.key_pem);
    e.state = "valid";
    e.error.clear();
    e.failures = 0;
    e.next_attempt = 0;
    e.unsaved = !stored;
    e.write_failures = stored ? 0 : 1;
    log::info("acme_certificate_issued")
        .kv("hosts", due)
        .kv("not_after", e.not_after)
        .kv("renew_at", renewal_time(e.not_before, e.not_after, cfg_.renew_before));
    if (!stored) {
      e.next_write = now_unix() + retry_delay(1).count();
      e.error = "issued, not stored: " + store_error;
      log::error("acme_storage_failed").kv("hosts", due).kv("error", store_error).kv("retry_in_s", retry_delay(1).count());
    }
    if (changed_) changed_();
  } else {
    ++e.failures;
    e.error = error;
    if (e.chain_pem.empty()) e.state = "failed";
    const int64_t delay = retry_delay(e.failures).count();
    e.next_attempt = now_unix() + delay;
    log::error("acme_order_failed")
        .kv("hosts", due)
        .kv("error", error)
        .kv("failures", e.failures)
        .kv("retry_in_s", delay);
  }
  return true;
}

void AcmeManager::run() {
  AcmeClient client(cfg_, store_, stopping_);
  std::unique_lock<std::mutex> lock(mu_);
  client_ = &client;
  while (!stopping_.load()) {
    const int64_t now = now_unix();
    if (prepare_storage(lock, now)) continue;
    if (store_ready_ && (store_unsaved(lock, now) || order_due(lock, client, now))) continue;
    cv_.wait_for(lock, std::chrono::seconds(1));
  }
  client_ = nullptr;
}

}  // namespace berth::acme
