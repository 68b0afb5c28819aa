// What the kernel knows of a TCP connection (TCP_INFO) that no socket event tells.
#pragma once

#include <cstdint>

namespace berth {

// How far the peer has taken the connection's output; 0 when unknown. Each is one system call,
// so a caller asks only for the count it uses.
// Bytes the peer has acknowledged so far (TCP_INFO): they grow while it reads, even when the
// kernel does not yet report room to write.
uint64_t tcp_bytes_acked(int fd);
// Bytes the kernel still holds for the peer, unsent or unacknowledged (SIOCOUTQ).
uint64_t tcp_bytes_outstanding(int fd);

}  // namespace berth
