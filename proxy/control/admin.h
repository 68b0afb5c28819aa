// The admin listener, served on the control loop (never on a worker): /healthz, /readyz (says
// why not ready), /api/routes (the live route table), /api/stats. Metrics and a status page
// come later on the same listener.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "config/config.h"

namespace berth {

struct AdminHandlers {
  std::function<std::string()> routes_json;
  std::function<std::string()> stats_json;
  // Empty when ready; otherwise the reason.
  std::function<std::string()> not_ready_reason;
};

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, AdminHandlers handlers);
  // Binds and listens; returns false with `error` set. bound_port is the actual port.
  bool start(const config::SocketAddress& addr, uint16_t& bound_port, std::string& error);
  void stop();

 private:
  struct Conn;
  static void on_connection(uv_stream_t* server, int status);
  void respond(Conn* c, std::string_view head);

  uv_loop_t* loop_;
  uv_tcp_t server_;
  bool started_ = false;
  AdminHandlers handlers_;
};

}  // namespace berth
