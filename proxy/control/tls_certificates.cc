#include "proxy/control/tls_certificates.h"

#include <sys/stat.h>

#include "proxy/base/log.h"

namespace berth {

std::vector<TlsCertificates::FileStamp> TlsCertificates::stamp(const config::ListenerTls& tls) {
  std::vector<std::string> paths;
  for (const config::TlsCertificate& c : tls.certificates) {
    paths.push_back(c.cert);
    paths.push_back(c.key);
  }
  if (!tls.client_ca.empty()) paths.push_back(tls.client_ca);
  std::vector<FileStamp> out;
  for (std::string& path : paths) {
    FileStamp s;
    s.path = std::move(path);
    struct stat st {};
    if (::stat(s.path.c_str(), &st) == 0) {
      s.mtime = st.st_mtim;
      s.ctime = st.st_ctim;
      s.size = st.st_size;
      s.inode = st.st_ino;
    }
    out.push_back(std::move(s));
  }
  return out;
}

bool TlsCertificates::load(const std::vector<config::Listener>& listeners, std::string* error,
                           const TlsCertificates* running, const std::vector<bool>& keep) {
  std::vector<std::shared_ptr<const tls::ServerContext>> contexts;
  std::vector<std::vector<FileStamp>> stamps;
  for (size_t i = 0; i < listeners.size(); ++i) {
    const config::Listener& l = listeners[i];
    if (running && i < keep.size() && keep[i] && i < running->contexts_.size()) {
      contexts.push_back(running->contexts_[i]);
      stamps.push_back(running->stamps_[i]);
      continue;
    }
    if (!l.tls) {
      contexts.emplace_back();
      stamps.emplace_back();
      continue;
    }
    // Stamped before reading: a change made while loading is seen by the next poll.
    stamps.push_back(stamp(*l.tls));
    std::string problem;
    auto ctx = tls::ServerContext::load(*l.tls, &problem, extra_);
    if (!ctx) {
      *error = "listener " + l.address.to_string() + ": " + problem;
      return false;
    }
    for (const tls::CertificateFacts& f : ctx->certificates()) {
      std::string names;
      for (const std::string& n : f.names) names += (names.empty() ? "" : ",") + n;
      log::info("tls_certificate")
          .kv("listener", l.address.to_string())
          .kv("file", f.origin)
          .kv("names", names)
          .kv("key", f.key_type)
          .kv("not_after", f.not_after_unix);
      if (!f.served)
        log::warn("tls_certificate_unused")
            .kv("listener", l.address.to_string())
            .kv("file", f.origin)
            .kv("why", "each of its names is held by an earlier certificate with the same key type");
    }
    contexts.push_back(std::move(ctx));
  }
  listeners_ = listeners;
  contexts_ = std::move(contexts);
  stamps_ = std::move(stamps);
  kept_.assign(listeners.size(), false);
  for (size_t i = 0; i < listeners.size() && i < keep.size(); ++i) kept_[i] = running && keep[i];
  return true;
}

bool TlsCertificates::any() const {
  for (const auto& c : contexts_)
    if (c) return true;
  return false;
}

std::shared_ptr<const tls::ServerContext> TlsCertificates::reload(size_t i,
                                                                  const std::vector<tls::CertificatePem>& extra) {
  std::string problem;
  auto ctx = tls::ServerContext::load(*listeners_[i].tls, &problem, extra);
  if (!ctx) {
    log::error("tls_certificate_reload_refused")
        .kv("listener", listeners_[i].address.to_string())
        .kv("error", problem)
        .kv("action", "keeping the certificates in use");
  }
  return ctx;
}

bool TlsCertificates::set_extra(std::vector<tls::CertificatePem> extra) {
  size_t replaced = 0, refused = 0;
  std::vector<std::shared_ptr<const tls::ServerContext>> contexts = contexts_;
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (!listeners_[i].tls || (i < kept_.size() && kept_[i])) continue;
    if (auto ctx = reload(i, extra)) {
      contexts[i] = std::move(ctx);
      ++replaced;
    } else {
      ++refused;
    }
  }
  if (replaced == 0 && refused > 0) return false;  // the set itself does not build: not taken
  extra_ = std::move(extra);
  contexts_ = std::move(contexts);
  if (replaced == 0) return false;
  log::info("tls_certificates_reloaded")
      .kv("reason", "acme")
      .kv("extra", static_cast<uint64_t>(extra_.size()))
      .kv("listeners", static_cast<uint64_t>(replaced));
  return true;
}

bool TlsCertificates::poll_files() {
  bool changed = false;
  for (size_t i = 0; i < listeners_.size(); ++i) {
    if (!listeners_[i].tls) continue;
    std::vector<FileStamp> now = stamp(*listeners_[i].tls);
    if (now == stamps_[i]) continue;
    stamps_[i] = now;  // a refused change is tried again when a file changes again (content, owner or mode)
    auto ctx = reload(i, extra_);
    if (!ctx) continue;
    contexts_[i] = std::move(ctx);
    changed = true;
    log::info("tls_certificates_reloaded")
        .kv("listener", listeners_[i].address.to_string())
        .kv("certificates", static_cast<uint64_t>(contexts_[i]->certificates().size()));
  }
  return changed;
}

}  // namespace berth
