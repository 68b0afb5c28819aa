// The admin listener, served on the control loop (never on a worker). Paths are registered by
// the control side (Server): /healthz, /readyz (says why not ready), /api/routes (the live route
// table), /api/stats, and the observability endpoints. GET and HEAD only; one request per
// connection.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.h"

namespace berth {

struct AdminRequest {
  std::string_view path;   // without the query
  std::string_view query;  // after '?', without it (still percent-encoded)
};

struct AdminResponse {
  uint16_t status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using AdminHandler = std::function<AdminResponse(const AdminRequest&)>;

// Wraps a handler of a large document (/api/status, /api/routes, /metrics): when building it
// took `slow_ms` of CPU time or more, the same document answers the requests of the next
// `reuse_ms` (without a query only). The control loop builds documents synchronously, so several
// pollers of a very large table (status pages, scrapers) would otherwise hold it for seconds,
// keeping /healthz, probes and reloads waiting; now they cost one build per `reuse_ms`. Small
// documents are always fresh (CPU time, not wall time: a build that was only descheduled is not
// slow). The clocks are for tests; null: uv_hrtime (monotonic) and the thread's CPU time.
AdminHandler reuse_slow_documents(AdminHandler build, uint64_t slow_ms = 50, uint64_t reuse_ms = 1000,
                                  std::function<uint64_t()> now_ms = nullptr, std::function<uint64_t()> cpu_ms = nullptr);

// The value of `name` in a query string ("a=1&b=x%2Fy"), percent-decoded ('+' is a space);
// empty when absent.
std::string admin_query_param(std::string_view query, std::string_view name);
// The same, nullopt when the query does not name the parameter at all ("a" and "a=" give "").
std::optional<std::string> admin_query_value(std::string_view query, std::string_view name);

// Whether a loopback admin listener answers a request with this Host (port included or not):
// an IP address, `localhost`, or none. A name that resolves to 127.0.0.1 only because an
// attacker's DNS says so (DNS rebinding) would let a web page in the operator's browser read
// the admin API from its own origin; that page's requests carry its own name as Host.
bool admin_host_allowed(std::string_view host);

class AdminServer {
 public:
  explicit AdminServer(uv_loop_t* loop);
  // Serves `path` (exact match) with `handler`, on the control loop. Register before start().
  void handle(std::string path, AdminHandler handler);
  // Binds and listens; returns false with `error` set. bound_port is the actual port. The socket
  // has SO_REUSEPORT, as the proxy listeners: a Berth taking over from this one (`share`,
  // --share-listeners) binds the same address; without `share` an address another socket
  // listens on is refused.
  bool start(const config::SocketAddress& addr, bool share, uint16_t& bound_port, std::string& error);
  // Closes the listener. Closing a listening socket resets the connections the kernel completed
  // and queued on it (at a hand-over, the new Berth's socket shares the address but does not get
  // them): they are taken first and answered, the connection limit aside (the backlog bounds
  // them).
  void stop();
  // Calls `done` once every open connection is answered or closed, each given at most
  // `within_ms` more (the process ends after; one closed with a request unread would be reset);
  // false, and `done` dropped, when none is open.
  bool finish(uint64_t within_ms, std::function<void()> done);

 private:
  struct Conn;
  static void on_connection(uv_stream_t* server, int status);
  // Serves a new connection: the one libuv accepted (fd -1) or `fd`, taken from the queue at
  // stop(). Over kMaxAdminConnections the oldest still waiting for its head is closed, unless
  // `queued`.
  void adopt(int fd, bool queued);
  void respond(Conn* c, std::string_view head);
  // Writes the answer and closes the connection once it is out.
  void send(Conn* c, uint16_t status, const std::string& type, const std::string& body, std::string_view extra,
            bool head_only);

  uv_loop_t* loop_;
  uv_tcp_t server_;
  bool started_ = false;
  bool loopback_ = false;  // bound to a loopback address: Host is checked (admin_host_allowed)
  size_t connections_ = 0;    // open (accepted, close() not yet called)
  std::list<Conn*> waiting_;  // open and still waiting for their request head, oldest first
  std::list<Conn*> open_;     // every open connection
  std::function<void()> after_finish_;
  std::map<std::string, AdminHandler, std::less<>> handlers_;
};

}  // namespace berth
