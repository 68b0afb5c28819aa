// What the kernel knows of a TCP connection (TCP_INFO) that no socket event tells.
#pragma once

#include <cstdint>

namespace berth {

// Bytes of the connection's output the peer has acknowledged so far: it grows while the peer
// reads, even when the kernel does not yet report room to write. 0 when unknown.
uint64_t tcp_bytes_acked(int fd);

}  // namespace berth
