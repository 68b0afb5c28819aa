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
  std::string error;
  store_ready_ = store_.prepare(&error);
  if (!store_ready_) log::error("acme_storage_failed").kv("error", error);
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
  e.state = "valid";
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
    out.push_back({{"hosts", e.hosts},
                   {"state", e.state},
                   {"error", e.error},
                   {"not_after", e.not_after},
                   {"failures", e.failures},
                   {"next_attempt", e.next_attempt}});
  }
  return out;
}

void AcmeManager::run() {
  AcmeClient client(cfg_, store_, stopping_);
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_.load()) {
    // The next group due: no certificate or one to renew, and its backoff over.
    const int64_t now = now_unix();
    std::string due;
    for (const auto& [key, e] : entries_) {
      if (e.unservable || e.next_attempt > now) continue;
      if (!e.chain_pem.empty() && !needs_renewal(e.not_after, now, cfg_.renew_before)) continue;
      due = key;
      break;
    }
    if (due.empty() || !store_ready_) {
      cv_.wait_for(lock, std::chrono::seconds(1));
      continue;
    }
    const std::vector<std::string> hosts = entries_[due].hosts;
    const bool renewal = !entries_[due].chain_pem.empty();
    lock.unlock();
    log::info("acme_order_started").kv("hosts", join(hosts)).kv("renewal", renewal);
    StoredCertificate cert;
    std::string error;
    bool ok = client.obtain(hosts, &cert, &error);
    if (ok && !store_.write_certificate(hosts, cert, &error)) ok = false;
    const int64_t not_after = ok ? certificate_not_after(cert.chain_pem) : 0;
    lock.lock();
    if (stopping_.load()) break;
    auto it = entries_.find(due);
    if (it == entries_.end()) continue;  // no longer wanted
    Entry& e = it->second;
    if (ok) {
      e.chain_pem = std::move(cert.chain_pem);
      e.key_pem = std::move(cert.key_pem);
      e.not_after = not_after;
      e.state = "valid";
      e.error.clear();
      e.failures = 0;
      e.next_attempt = 0;
      log::info("acme_certificate_issued").kv("hosts", due).kv("not_after", not_after);
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
  }
}

}  // namespace berth::acme
