#include "proxy/net/proxy_protocol.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>

namespace berth {
namespace {

constexpr char kV1Prefix[] = "PROXY ";
constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr uint8_t kTcp4 = 0x11, kTcp6 = 0x21, kUnspec = 0x00;

bool parse_v1_port(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  auto r = std::from_chars(text.data(), text.data() + text.size(), value);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size() || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

}  // namespace

ProxyHeaderParser::Status ProxyHeaderParser::fail(const char* why) {
  error_ = why;
  status_ = Status::kInvalid;
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::feed(const char* data, size_t len, size_t& used) {
  used = 0;
  while (status_ == Status::kNeedMore && used < len) {
    const auto c = static_cast<uint8_t>(data[used]);
    if (version_ == 0) {
      if (c == 'P') version_ = 1;
      else if (c == kV2Signature[0]) version_ = 2;
      else return fail("the connection did not start with a PROXY protocol header");
    }
    if (version_ == 1) {
      if (have_ == kMaxV1Bytes) return fail("PROXY v1 header longer than 107 bytes");
      ++used;
      line_[have_++] = static_cast<char>(c);
      if (have_ <= 6 && c != static_cast<uint8_t>(kV1Prefix[have_ - 1])) return fail("malformed PROXY v1 header");
      if (c == '\n') {
        if (have_ < 2 || line_[have_ - 2] != '\r') return fail("PROXY v1 line not ended by CRLF");
        return finish_v1();
      }
      continue;
    }
    // Version 2: the fixed 16 bytes, then addresses (kept), then TLVs (skipped in bulk).
    if (have_ < 16) {
      ++used;
      fixed_[have_++] = c;
      if (have_ <= 12 && c != kV2Signature[have_ - 1]) return fail("malformed PROXY v2 signature");
      if (have_ < 16) continue;
      if ((fixed_[12] & 0xF0) != 0x20) return fail("PROXY v2 header with an unknown version");
      const uint8_t command = fixed_[12] & 0x0F;
      if (command > 1) return fail("PROXY v2 header with an unknown command");
      const size_t length = (static_cast<size_t>(fixed_[14]) << 8) | fixed_[15];
      if (length > kMaxV2Length) return fail("PROXY v2 header longer than allowed");
      if (command == 1) {
        const uint8_t family = fixed_[13];
        if (family == kTcp4 && length < 12) return fail("PROXY v2 TCP4 header too short for its addresses");
        if (family == kTcp6 && length < 36) return fail("PROXY v2 TCP6 header too short for its addresses");
        if (family != kTcp4 && family != kTcp6 && family != kUnspec)
          return fail("PROXY v2 header for a protocol other than TCP");
      }
      v2_total_ = 16 + length;
    } else if (have_ < sizeof fixed_) {
      const size_t n = std::min({len - used, sizeof fixed_ - have_, v2_total_ - have_});
      std::memcpy(fixed_ + have_, data + used, n);
      used += n;
      have_ += n;
    } else {
      const size_t n = std::min(len - used, v2_total_ - have_);
      used += n;
      have_ += n;
    }
    if (have_ == v2_total_) return finish_v2_addresses();
  }
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::finish_v1() {
  // Without "PROXY " and CRLF: "TCP4 src dst sport dport" or "UNKNOWN[ anything]".
  std::string_view rest(line_ + 6, have_ - 8);
  std::string_view fields[6];
  size_t count = 0;
  while (count < 6) {
    const size_t space = rest.find(' ');
    fields[count++] = rest.substr(0, space);
    if (space == std::string_view::npos) {
      rest = {};
      break;
    }
    rest.remove_prefix(space + 1);
  }
  if (fields[0] == "UNKNOWN") {
    status_ = Status::kDone;
    return status_;
  }
  if (fields[0] != "TCP4" && fields[0] != "TCP6") return fail("PROXY v1 header with an unknown protocol");
  if (count != 5 || !rest.empty()) return fail("PROXY v1 header without exactly two addresses and two ports");
  // The family by the text: TCP6 may name an IPv4-mapped address, which is IPv4 once parsed.
  const bool v6 = fields[0] == "TCP6";
  ClientAddress src, dst;
  uint16_t sport = 0, dport = 0;
  if (!parse_client_ip(fields[1], src) || !parse_client_ip(fields[2], dst) ||
      (fields[1].find(':') != std::string_view::npos) != v6 || (fields[2].find(':') != std::string_view::npos) != v6)
    return fail("PROXY v1 header with an address that does not match its protocol");
  if (!parse_v1_port(fields[3], sport) || !parse_v1_port(fields[4], dport)) return fail("PROXY v1 header with a bad port");
  source_ = src;
  source_.port = sport;
  destination_port_ = dport;
  has_source_ = true;
  status_ = Status::kDone;
  return status_;
}

ProxyHeaderParser::Status ProxyHeaderParser::finish_v2_addresses() {
  status_ = Status::kDone;
  if ((fixed_[12] & 0x0F) == 0 || fixed_[13] == kUnspec) return status_;  // LOCAL: keep the peer
  ClientAddress src;
  if (fixed_[13] == kTcp4) {
    std::memcpy(src.addr, fixed_ + 16, 4);
    src.family = 4;
    src.port = static_cast<uint16_t>((fixed_[24] << 8) | fixed_[25]);
    destination_port_ = static_cast<uint16_t>((fixed_[26] << 8) | fixed_[27]);
  } else {
    std::memcpy(src.addr, fixed_ + 16, 16);
    src.family = 6;
    src.port = static_cast<uint16_t>((fixed_[48] << 8) | fixed_[49]);
    destination_port_ = static_cast<uint16_t>((fixed_[50] << 8) | fixed_[51]);
  }
  format_client_ip(src);
  source_ = src;
  has_source_ = true;
  return status_;
}

}  // namespace berth
