// berth: the executable. Parses the command line, validates the configuration, runs Server.
#include <signal.h>
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "config/config.h"
#include "proxy/base/log.h"
#include "proxy/control/server.h"

// Generated at configure time into the build tree (packaging/berth_version.h.in).
#include <berth_version.h>

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: berth [--config FILE] [--log-level debug|info|warn|error] [--share-listeners]\n"
               "       berth --check-config FILE\n"
               "       berth --version\n"
               "Default config: /etc/berth/berth.yaml. SIGHUP reloads it; SIGTERM/SIGINT drain and exit;\n"
               "SIGUSR1 reopens the access log file. --share-listeners: listen on addresses another\n"
               "process (the Berth being replaced) listens on too, instead of refusing to start.\n");
}

void raise_fd_limit() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "/etc/berth/berth.yaml";
  std::string check_path;
  bool share_listeners = false;
  berth::log::Level level = berth::log::Level::kInfo;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* what) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "berth: %s needs a value\n", what);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--config" || a == "-c") config_path = next("--config");
    else if (a == "--check-config") check_path = next("--check-config");
    else if (a == "--share-listeners") share_listeners = true;
    else if (a == "--log-level") {
      std::string l = next("--log-level");
      if (l == "debug") level = berth::log::Level::kDebug;
      else if (l == "info") level = berth::log::Level::kInfo;
      else if (l == "warn") level = berth::log::Level::kWarn;
      else if (l == "error") level = berth::log::Level::kError;
      else {
        std::fprintf(stderr, "berth: unknown log level '%s'\n", l.c_str());
        return 2;
      }
    } else if (a == "--version") {
      std::printf("berth %s (commit %s)\n", BERTH_VERSION, BERTH_GIT_COMMIT);
      return 0;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "berth: unknown argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }

  if (!check_path.empty()) {
    berth::config::LoadResult r = berth::config::load_file(check_path);
    for (const auto& e : r.errors) std::fprintf(stderr, "%s\n", e.to_string().c_str());
    if (!r.ok()) return 1;
    std::printf("%s: ok (%zu routes, %zu services)\n", check_path.c_str(), r.config->routes.size(),
                r.config->services.size());
    return 0;
  }

  berth::log::set_min_level(level);
  std::signal(SIGPIPE, SIG_IGN);
  // A reload (SIGHUP) or log reopen (SIGUSR1) sent while Berth starts would kill it (their
  // default action): held pending until the control loop handles them (Server::run), every
  // thread started meanwhile inheriting the mask. A reload sent then runs once the loop is up.
  sigset_t deferred;
  sigemptyset(&deferred);
  sigaddset(&deferred, SIGHUP);
  sigaddset(&deferred, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &deferred, nullptr);
  raise_fd_limit();
  berth::config::LoadResult r = berth::config::load_file(config_path);
  if (!r.ok()) {
    for (const auto& e : r.errors) berth::log::error("config_invalid").kv("error", e.to_string());
    return 1;
  }
  berth::log::start_writer();
  int rc;
  {
    berth::Server server(config_path, std::move(*r.config));
    server.share_listeners(share_listeners);
    rc = server.run();
  }
  berth::log::stop_writer();
  return rc;
}
