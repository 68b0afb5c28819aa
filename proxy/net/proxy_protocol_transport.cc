#include "proxy/net/proxy_protocol_transport.h"

#include <uv.h>

#include <cstring>

#include "proxy/base/log.h"

namespace berth {

ProxyProtocolTransport::ProxyProtocolTransport(std::unique_ptr<Transport> inner, StatsSink* stats)
    : inner_(std::move(inner)), stats_(stats) {
  inner_->bind(this);
  info_ = inner_->info();  // the TCP peer, read while the socket is fresh
}

const ConnectionInfo& ProxyProtocolTransport::info() { return info_; }

int ProxyProtocolTransport::connect(const sockaddr*) { return UV_ENOTSUP; }

void ProxyProtocolTransport::on_transport_read(Block* block, ssize_t nread) {
  if (done_ || nread < 0) {
    if (failed_) {  // after a rejected header: nothing more goes up
      if (block) BufferPool::unref(block);
      return;
    }
    events_->on_transport_read(block, nread);
    return;
  }
  size_t used = 0;
  switch (parser_.feed(block->data(), static_cast<size_t>(nread), used)) {
    case ProxyHeaderParser::Status::kNeedMore:
      BufferPool::unref(block);
      return;
    case ProxyHeaderParser::Status::kInvalid:
      BufferPool::unref(block);
      failed_ = true;
      if (stats_) stats_->add(Counter::kProxyProtocolRejected);
      log::info("proxy_protocol_rejected").kv("peer", info_.peer_ip.text()).kv("reason", parser_.error());
      events_->on_transport_read(nullptr, UV_EPROTO);
      return;
    case ProxyHeaderParser::Status::kDone:
      break;
  }
  done_ = true;
  if (parser_.has_source()) {
    const ClientAddress& src = parser_.source();
    std::memcpy(info_.peer_ip.bytes, src.addr, sizeof info_.peer_ip.bytes);
    info_.peer_ip.family = src.family;
    info_.peer_port = src.port;
    info_.local_port = parser_.destination_port();  // the client's port at the balancer
  }
  const size_t rest = static_cast<size_t>(nread) - used;
  if (rest == 0) {
    BufferPool::unref(block);
    return;
  }
  // The block is this read's own: its first bytes become the connection's first bytes.
  std::memmove(block->data(), block->data() + used, rest);
  events_->on_transport_read(block, static_cast<ssize_t>(rest));
}

}  // namespace berth
