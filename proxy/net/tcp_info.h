// What the kernel knows of a TCP connection (TCP_INFO) that no socket event tells.
#pragma once

#include <cstdint>

namespace berth {

// How far the peer has taken the connection's output. acked: bytes it has acknowledged so far,
// growing while it reads even when the kernel does not yet report room to write; outstanding:
// bytes the kernel still holds for it (unsent or unacknowledged). Zeros when unknown.
struct PeerProgress {
  uint64_t acked = 0;
  uint64_t outstanding = 0;
};
PeerProgress tcp_peer_progress(int fd);

}  // namespace berth
