// Listening sockets for the workers: one per worker per address, all bound with SO_REUSEPORT
// so the kernel spreads connections over the workers' own accept queues.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace berth {

// A bound, listening, non-blocking socket and the port it is bound to (known when it is opened,
// so nobody asks the kernel again).
struct ListenSocket {
  int fd = -1;
  uint16_t port = 0;
};

// The port of an IPv4 or IPv6 socket address, in host order; 0 for any other family.
uint16_t sockaddr_port(const sockaddr* sa);

// Opens a non-blocking listening socket. With port 0 the kernel picks one, and the result holds
// the actual port (bind the remaining workers' sockets to that port). On failure the result's fd
// is -1 and `error` says why.
ListenSocket open_listen_socket(const config::SocketAddress& addr, bool reuse_port, int backlog,
                                std::string& error);

}  // namespace berth
