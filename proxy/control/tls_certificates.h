// The TLS contexts of the listeners, kept current: loaded with the configuration (start and
// SIGHUP) and loaded again when a certificate, key or client CA file changes on disk (polled
// on the control loop). A change that does not load (bad PEM, a key that does not match) is
// refused with a log line and the context in use stays. Workers get the contexts through the
// Runtime snapshot: new handshakes use the new one, open connections keep theirs.
#pragma once

#include <sys/types.h>

#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "proxy/tls/server_context.h"

namespace berth {

class TlsCertificates {
 public:
  // Loads every TLS listener's files. false with *error naming the listener and the problem.
  // Listener i with keep[i] takes running's context i as it is, its files not read again (one
  // the file no longer names, which serves until a restart).
  bool load(const std::vector<config::Listener>& listeners, std::string* error,
            const TlsCertificates* running = nullptr, const std::vector<bool>& keep = {});
  // Per listener, in config order (null: plain HTTP).
  const std::vector<std::shared_ptr<const tls::ServerContext>>& contexts() const { return contexts_; }
  // Looks at the files; reloads each listener whose files changed. True when a context was
  // replaced (the caller publishes a new snapshot). Control loop only (it reads files).
  bool poll_files();
  bool any() const;
  // Certificates added after every TLS listener's configured ones (ACME's): the contexts are
  // built again with them, listener by listener. True when a context was replaced; a listener
  // whose context does not build keeps the one in use (logged), and one kept from a running
  // set (load's keep) is left as it is. Control loop only.
  bool set_extra(std::vector<tls::CertificatePem> extra);

 private:
  struct FileStamp {
    std::string path;
    timespec mtime{};
    // The inode's change time: a chmod or chown (a key made readable to Berth after a reload
    // was refused for it) changes nothing else.
    timespec ctime{};
    off_t size = -1;
    ino_t inode = 0;
    bool operator==(const FileStamp& o) const {
      return path == o.path && mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec &&
             ctime.tv_sec == o.ctime.tv_sec && ctime.tv_nsec == o.ctime.tv_nsec && size == o.size && inode == o.inode;
    }
  };
  static std::vector<FileStamp> stamp(const config::ListenerTls& tls);
  // Listener i's context built again with `extra`; null (logged) when it does not load.
  std::shared_ptr<const tls::ServerContext> reload(size_t i, const std::vector<tls::CertificatePem>& extra);

  std::vector<config::Listener> listeners_;
  std::vector<std::shared_ptr<const tls::ServerContext>> contexts_;
  std::vector<std::vector<FileStamp>> stamps_;  // per listener, as last looked at
  std::vector<bool> kept_;                       // per listener: taken as it ran (load's keep)
  std::vector<tls::CertificatePem> extra_;
};

}  // namespace berth
