#include "proxy/net/tcp_info.h"

// The kernel's header, not <netinet/tcp.h>: glibc's struct tcp_info ends before tcpi_bytes_acked.
#include <linux/sockios.h>  // SIOCOUTQ
#include <linux/tcp.h>
#include <netinet/in.h>  // IPPROTO_TCP
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstddef>

namespace berth {

PeerProgress tcp_peer_progress(int fd) {
  PeerProgress p;
  if (fd < 0) return p;
  struct tcp_info info {};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
      len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked)
    p.acked = info.tcpi_bytes_acked;
  int queued = 0;
  if (::ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > 0) p.outstanding = static_cast<uint64_t>(queued);
  return p;
}

}  // namespace berth
