// What an idle keep-alive client connection carries (issue #10: at most 512 bytes of user-space
// memory each at 10,000 connections, measured by bench/run.sh's "idle memory"). A plain TCP
// connection is one allocation: ClientConn and its TcpTransport. These bounds keep the layout
// from growing back unnoticed; the sizes are printed with -s. Connections live in 64 KiB slabs
// of the worker's SlotPool (no heap header, no holes left by requests' allocations).
#include <catch2/catch.hpp>

#include <cstdio>

#include "proxy/datapath/client.h"
#include "proxy/net/tcp_transport.h"

namespace berth {
namespace {

static_assert(sizeof(ConnectionInfo) <= 48, "ConnectionInfo: the peer address is kept in binary");
static_assert(sizeof(Stream) <= 88);
static_assert(sizeof(ClientConn) <= 160);
static_assert(sizeof(TcpTransport) <= 208, "TcpTransport: a uv_poll_t and the peer's facts in binary");

TEST_CASE("connection layout: an idle plain connection is one small allocation", "[layout]") {
  std::printf("sizeof: ConnectionInfo %zu, Stream %zu, ClientConn %zu, TcpTransport %zu, one allocation %zu\n",
              sizeof(ConnectionInfo), sizeof(Stream), sizeof(ClientConn), sizeof(TcpTransport),
              sizeof(ClientConn) + sizeof(TcpTransport));
  CHECK(sizeof(ClientConn) + sizeof(TcpTransport) <= 368);
  CHECK(ClientConn::slot_bytes() == sizeof(ClientConn) + sizeof(TcpTransport));
}

}  // namespace
}  // namespace berth
