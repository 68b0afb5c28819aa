#include "proxy/net/tcp_info.h"

// The kernel's header, not <netinet/tcp.h>: glibc's struct tcp_info ends before tcpi_bytes_acked.
#include <linux/sockios.h>  // SIOCOUTQ
#include <linux/tcp.h>
#include <netinet/in.h>  // IPPROTO_TCP
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstddef>

namespace berth {

uint64_t tcp_bytes_acked(int fd) {
  if (fd < 0) return 0;
  struct tcp_info info {};
  socklen_t len = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
      len >= offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof info.tcpi_bytes_acked)
    return info.tcpi_bytes_acked;
  return 0;
}

uint64_t tcp_bytes_outstanding(int fd) {
  int queued = 0;
  if (fd < 0 || ::ioctl(fd, SIOCOUTQ, &queued) != 0 || queued <= 0) return 0;
  return static_cast<uint64_t>(queued);
}

}  // namespace berth
