// The PROXY protocol header (HAProxy's, versions 1 and 2) that a load balancer in front of Berth
// sends first on each connection of a listener with proxy_protocol: true, naming the client it
// accepted. Pure code: bytes in, a verdict out, in any split across reads.
//
// v1: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (or TCP6, or "PROXY UNKNOWN ...\r\n"), at most
// 107 bytes. v2: a 12-byte signature, version/command, family/protocol, a 2-byte length and that
// many bytes of addresses and TLVs (TLVs are skipped, the length is bounded). LOCAL (v2) and
// UNKNOWN (v1) keep the connection's own peer address.
#pragma once

#include <cstddef>
#include <cstdint>

#include "proxy/net/client_address.h"

namespace berth {

class ProxyHeaderParser {
 public:
  enum class Status : uint8_t { kNeedMore, kDone, kInvalid };
  static constexpr size_t kMaxV1Bytes = 107;
  // The most a v2 header may declare after its 16 fixed bytes (addresses and TLVs).
  static constexpr size_t kMaxV2Length = 2048;

  // Feeds the next bytes of the connection. `used` is how many of them belong to the header (the
  // rest, after kDone, are the first bytes of the connection's protocol). Once kDone or
  // kInvalid, further calls return the same status and use nothing.
  Status feed(const char* data, size_t len, size_t& used);

  // After kDone: whether the header named a source (false: LOCAL / UNKNOWN, keep the peer).
  bool has_source() const { return has_source_; }
  const ClientAddress& source() const { return source_; }
  // With a source: the destination port it names, the port the client connected to at the
  // balancer (X-Forwarded-Port).
  uint16_t destination_port() const { return destination_port_; }
  // After kInvalid: why, for the log.
  const char* error() const { return error_; }
  uint8_t version() const { return version_; }

 private:
  Status fail(const char* why);
  Status finish_v1();
  Status finish_v2_addresses();

  Status status_ = Status::kNeedMore;
  uint8_t version_ = 0;         // 0 until the first byte decides
  uint8_t fixed_[16 + 36];      // v1 line is kept in line_; v2: fixed part and TCP6 addresses
  char line_[kMaxV1Bytes];
  size_t have_ = 0;             // bytes of the header seen so far
  size_t v2_total_ = 0;         // 16 + declared length, once known
  bool has_source_ = false;
  ClientAddress source_;
  uint16_t destination_port_ = 0;
  const char* error_ = "";
};

}  // namespace berth
