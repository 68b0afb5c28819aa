// The client address: who a request came from, as allow/deny, rate limits, hashing, the
// X-Forwarded-For sent upstream and the access log all see it. It is the peer address (the TCP
// peer, or the source a PROXY protocol header named), or, only when the peer lies in a
// trusted_proxies range, the right-most X-Forwarded-For entry that is not itself trusted.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "proxy/net/transport.h"

namespace berth {

struct ClientAddress {
  char ip[46] = {0};         // textual IPv4/IPv6 address; empty if unknown
  uint8_t addr[16] = {0};    // network byte order (4 bytes used for IPv4)
  uint8_t family = 0;        // 0 (unknown), 4 or 6
  uint16_t port = 0;         // 0 when not known (an X-Forwarded-For entry without a port)
  std::string_view text() const { return ip; }
};

// The connection's peer (what the transport reported) as a client address.
ClientAddress peer_address(const ConnectionInfo& conn);
// An accepted socket's peer (AF_INET or AF_INET6; family 0 for anything else), ip filled in.
ClientAddress socket_address(const sockaddr* sa);

// Fills `a.ip` from `a.addr` and `a.family` (empty for an unknown family). An IPv4-mapped IPv6
// address (::ffff:a.b.c.d) becomes the IPv4 address it carries first, whoever named it (a
// socket, a PROXY header, X-Forwarded-For): one address stands for the client everywhere.
void format_client_ip(ClientAddress& a);

// Sets `out` from a numeric address (IPv4 or IPv6, no port, no brackets; a mapped one is IPv4,
// as above). False if it is not one.
bool parse_client_ip(std::string_view text, ClientAddress& out);

// One X-Forwarded-For entry: "1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]" or
// "[2001:db8::1]:443", surrounding spaces allowed. False for anything else ("unknown", names).
bool parse_forwarded_entry(std::string_view entry, ClientAddress& out);

// Whether `a` lies in one of `ranges`.
bool in_ranges(const ClientAddress& a, std::span<const config::Cidr> ranges);

// What resolve_client_address found.
struct ResolvedClient {
  ClientAddress address;
  // How many X-Forwarded-For entries, counted from the right, were walked to reach the address
  // (0: the peer is the client). The entries left of them are the client's own claims.
  size_t entries_used = 0;
};

// The client address for one request. `peer` is the connection's peer; `xff` the values of
// every X-Forwarded-For line in order (each may hold several comma-separated entries). Walking
// from the right while the current hop is trusted: the first untrusted entry is the client; a
// malformed entry stops the walk at the last good hop; when every entry is trusted the
// left-most one is the client.
ResolvedClient resolve_client_address(const ClientAddress& peer, std::span<const config::Cidr> trusted,
                                      std::span<const std::string_view> xff);

// The last `count` comma-separated entries of the X-Forwarded-For values `xff`, joined by ", "
// (what is kept of the chain when entries_used of them were walked), appended to `out`.
void append_forwarded_tail(std::span<const std::string_view> xff, size_t count, std::string& out);

}  // namespace berth
