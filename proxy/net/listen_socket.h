// Listening sockets for the workers: one per worker per address, all bound with SO_REUSEPORT
// so the kernel spreads connections over the workers' own accept queues.
//
// SO_REUSEPORT would also let another process of the same user join the group: a second Berth
// started by mistake would silently take a share of the connections, with its own config. So
// before its sockets, Berth binds the address once without SO_REUSEPORT (listening_elsewhere),
// which any listener already there refuses.
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
// Copies the address of an IPv4 or IPv6 socket address into `bytes` (network order; 4 bytes for
// IPv4) and returns 4 or 6; 0, with `bytes` untouched, for any other family. An IPv4-mapped
// IPv6 address (::ffff:a.b.c.d: an IPv4 client of a dual-stack socket) is the IPv4 address it
// carries: 4, so logs, X-Forwarded-For and access rules see the address the client has.
uint8_t sockaddr_ip(const sockaddr* sa, uint8_t (&bytes)[16]);

// Opens a non-blocking listening socket. With port 0 the kernel picks one, and the result holds
// the actual port (bind the remaining workers' sockets to that port). On failure the result's fd
// is -1 and `error` says why.
ListenSocket open_listen_socket(const config::SocketAddress& addr, bool reuse_port, int backlog,
                                std::string& error);

// Non-empty (the reason, naming the address) when another socket already listens on addr, so
// that Berth's own SO_REUSEPORT sockets would share the port with it. "" for port 0.
std::string listening_elsewhere(const config::SocketAddress& addr);

// How many sockets of this network namespace, of any process, listen on exactly addr (read
// from /proc/net/tcp or tcp6): more than this process's own means another shares the port.
size_t listening_sockets_on(const config::SocketAddress& addr);

}  // namespace berth
