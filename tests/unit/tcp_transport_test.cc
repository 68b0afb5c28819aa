// A Stream over the plain TCP transport on a real loop: writes made in a read callback leave
// as one write, the backpressure figure follows what the kernel has not taken, a flushed
// shutdown delivers everything then EOF, close is idempotent and frees only after the loop's
// close callbacks, and the accepting side learns the scheme, peer and local port.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "proxy/net/tcp_transport.h"
#include "tests/unit/stream_probe.h"

using namespace berth;
using berth::test::Probe;
using berth::test::ProbeStream;
using berth::test::run_until;

namespace {

// A connected pair: [0] goes under the stream, [1] is the test's end (non-blocking).
struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) == 0);
    fcntl(fd[1], F_SETFL, fcntl(fd[1], F_GETFL) | O_NONBLOCK);
  }
  ~SocketPair() {
    if (fd[1] >= 0) ::close(fd[1]);  // fd[0] belongs to the stream
  }
  // Everything readable right now; `eof` set when the stream's side has shut down.
  std::string drain(bool* eof = nullptr) {
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd[1], buf, sizeof buf);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 && eof) *eof = true;
      return out;
    }
  }
};

std::unique_ptr<TcpTransport> tcp_over(IoContext& io, int fd) {
  auto t = std::make_unique<TcpTransport>(&io);
  REQUIRE(t->open(fd) == 0);
  return t;
}

}  // namespace

TEST_CASE("tcp stream: writes made in a read callback leave as one write", "[stream][tcp]") {
  IoContext io;
  SocketPair sp;
  Probe probe;
  auto* s = new ProbeStream(&io, tcp_over(io, sp.fd[0]), &probe,
                            [](ProbeStream& st, Block* block, const char* data, size_t len) {
                              st.write_copy("HTTP/1.1 200 OK\r\n\r\n");
                              st.write_block(block, data, len, "5\r\n", "\r\n");  // zero-copy body
                              st.write_copy2("0\r\n", "\r\n");
                            });
  s->set_reading(true);
  s->set_reading(true);  // idempotent
  REQUIRE(::write(sp.fd[1], "hello", 5) == 5);

  REQUIRE(run_until(io, [&] { return probe.writes_done >= 1; }));
  for (int i = 0; i < 5; ++i) uv_run(io.loop(), UV_RUN_NOWAIT);
  CHECK(probe.read == "hello");
  CHECK(probe.writes_done == 1);  // three writes, one batch, one writev
  CHECK(sp.drain() == "HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  CHECK(s->write_queue_bytes() == 0);
  CHECK(io.pool().blocks_out() == 0);  // the read block went back once written

  // Outside a read callback a write goes at once.
  CHECK(s->write_copy("later"));
  REQUIRE(run_until(io, [&] { return probe.writes_done == 2; }));
  CHECK(sp.drain() == "later");

  ::shutdown(sp.fd[1], SHUT_WR);
  REQUIRE(run_until(io, [&] { return probe.eof; }));
  s->close();
  REQUIRE(run_until(io, [&] { return probe.closed; }));
  CHECK(io.open_streams() == 0);
}

TEST_CASE("tcp stream: the backpressure figure is what the kernel has not taken", "[stream][tcp]") {
  IoContext io;
  SocketPair sp;
  int small = 4096;
  setsockopt(sp.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  setsockopt(sp.fd[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  Probe probe;
  auto* s = new ProbeStream(&io, tcp_over(io, sp.fd[0]), &probe);

  const std::string big(1 << 20, 'x');
  REQUIRE(s->write_copy(big));
  const size_t queued = s->write_queue_bytes();
  CHECK(queued > 0);
  CHECK(queued <= big.size());
  CHECK(probe.writes_done == 0);

  std::string got;
  REQUIRE(run_until(io, [&] {
    got += sp.drain();
    return probe.writes_done == 1;
  }));
  got += sp.drain();
  CHECK(got.size() == big.size());
  CHECK(s->write_queue_bytes() == 0);

  s->close();
  REQUIRE(run_until(io, [&] { return probe.closed; }));
}

TEST_CASE("tcp stream: close after flush sends everything, then EOF, then frees", "[stream][tcp]") {
  IoContext io;
  SocketPair sp;
  Probe probe;
  auto* s = new ProbeStream(&io, tcp_over(io, sp.fd[0]), &probe);
  CHECK(s->write_copy("goodbye"));
  s->close_after_flush();

  bool eof = false;
  std::string got;
  REQUIRE(run_until(io, [&] {
    got += sp.drain(&eof);
    return probe.closed && eof;
  }));
  CHECK(got == "goodbye");
  CHECK(probe.write_errors == 0);
  CHECK(io.open_streams() == 0);
}

TEST_CASE("tcp stream: close is idempotent and cancels pending writes without leaks", "[stream][tcp]") {
  IoContext io;
  SocketPair sp;
  int small = 4096;
  setsockopt(sp.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  Probe probe;
  auto* s = new ProbeStream(&io, tcp_over(io, sp.fd[0]), &probe);

  // A body block referenced by a write the kernel cannot take yet.
  Block* block = io.pool().acquire();
  std::memset(block->data(), 'b', block->capacity);
  for (int i = 0; i < 8; ++i) REQUIRE(s->write_block(block, block->data(), block->capacity));
  BufferPool::unref(block);
  CHECK(s->write_queue_bytes() > 0);
  CHECK(io.pool().blocks_out() == 1);  // kept alive by the pending writes

  s->close();
  s->close();
  CHECK(s->closing());
  CHECK_FALSE(probe.closed);  // freed only from the loop's close callbacks
  REQUIRE(run_until(io, [&] { return probe.closed; }));
  CHECK(probe.write_errors == 0);  // cancelled writes are not reported to a closing stream
  CHECK(io.pool().blocks_out() == 0);
  CHECK(io.open_streams() == 0);
}

TEST_CASE("tcp stream: the loop's streams close together", "[stream][tcp]") {
  IoContext io;
  SocketPair a, b;
  Probe pa, pb;
  auto* sa = new ProbeStream(&io, tcp_over(io, a.fd[0]), &pa);
  new ProbeStream(&io, tcp_over(io, b.fd[0]), &pb);
  sa->set_reading(true);
  CHECK(io.open_streams() == 2);
  io.close_streams();
  io.close_streams();
  REQUIRE(run_until(io, [&] { return pa.closed && pb.closed; }));
  CHECK(io.open_streams() == 0);
}

TEST_CASE("tcp transport: an accepted connection reports scheme, peer and local port", "[stream][tcp]") {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(lfd, 4) == 0);
  socklen_t len = sizeof addr;
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  const uint16_t listen_port = ntohs(addr.sin_port);

  int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  sockaddr_in client{};
  len = sizeof client;
  getsockname(cfd, reinterpret_cast<sockaddr*>(&client), &len);
  int afd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  REQUIRE(afd >= 0);

  IoContext io;
  Probe probe;
  auto* s = new ProbeStream(&io, tcp_over(io, afd), &probe);
  const ConnectionInfo& info = s->transport().info();
  CHECK(info.scheme == "http");
  CHECK(std::string(info.peer_ip.text().view) == "127.0.0.1");
  CHECK(info.peer_port == ntohs(client.sin_port));
  CHECK(info.local_port == listen_port);
  CHECK(info.tls == nullptr);

  CHECK_FALSE(s->transport().has_unread_input());
  CHECK(s->transport().waiting_input() == Transport::Waiting::kNothing);
  REQUIRE(::write(cfd, "unread", 6) == 6);
  CHECK(run_until(io, [&] { return s->transport().has_unread_input(); }));
  // Looked at, not read: it stays.
  CHECK(s->transport().waiting_input() == Transport::Waiting::kBytes);
  CHECK(s->transport().waiting_input() == Transport::Waiting::kBytes);

  s->close();
  REQUIRE(run_until(io, [&] { return probe.closed; }));
  ::close(cfd);
  ::close(lfd);
}

TEST_CASE("tcp transport: the peer's end waits, seen without reading it", "[stream][tcp]") {
  IoContext io;
  SocketPair sp;
  Probe probe;
  auto* s = new ProbeStream(&io, tcp_over(io, sp.fd[0]), &probe);
  CHECK(s->transport().waiting_input() == Transport::Waiting::kNothing);
  ::shutdown(sp.fd[1], SHUT_WR);
  CHECK(s->transport().waiting_input() == Transport::Waiting::kEnd);
  s->close();
  REQUIRE(run_until(io, [&] { return probe.closed; }));
}

namespace {

// Records what a bare TcpTransport reports, and whether it came from inside a call.
struct Events final : TransportEvents {
  IoContext* io = nullptr;
  bool in_call = false;
  bool reported_in_call = false;
  int connected = 1;  // 1: not reported yet
  int writes_done = 0;
  int write_status = 0;
  bool closed = false;
  void note() { reported_in_call = reported_in_call || in_call; }
  void on_transport_read(Block* block, ssize_t) override {
    note();
    if (block) BufferPool::unref(block);
  }
  void on_transport_write_done(WriteReq* wr, int status) override {
    note();
    ++writes_done;
    write_status = status;
    io->release_write(wr);
  }
  void on_transport_connected(int status) override {
    note();
    connected = status;
  }
  void on_transport_shutdown(int) override { note(); }
  void on_transport_closed() override {
    note();
    closed = true;
  }
};

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// A loopback listener on an ephemeral port (or, closed at once, a port that refuses).
int listen_loopback(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = loopback(0);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(::listen(fd, 4) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return fd;
}

// A transport bound to `ev` that connects to the loopback `port`; returns once the outcome is
// reported (connect itself reports nothing).
TcpTransport* connect_loopback(IoContext& io, Events& ev, uint16_t port) {
  ev.io = &io;
  auto* t = new TcpTransport(&io);
  t->bind(&ev);
  const sockaddr_in to = loopback(port);
  ev.in_call = true;
  REQUIRE(t->connect(reinterpret_cast<const sockaddr*>(&to)) == 0);
  ev.in_call = false;
  REQUIRE(run_until(io, [&] { return ev.connected != 1; }));
  return t;
}

}  // namespace

TEST_CASE("tcp transport: connect, write and close report later, never from inside the call", "[stream][tcp]") {
  IoContext io;
  uint16_t port = 0;
  const int lfd = listen_loopback(port);
  Events ev;
  TcpTransport* t = connect_loopback(io, ev, port);
  CHECK(ev.connected == 0);
  const int afd = ::accept(lfd, nullptr, nullptr);
  REQUIRE(afd >= 0);

  WriteReq* wr = io.acquire_write();
  wr->owned = "hello";
  wr->nsegments = 1;
  wr->segments[0] = {nullptr, 0, 5};
  ev.in_call = true;
  REQUIRE(t->write(wr) == 0);
  ev.in_call = false;
  CHECK(ev.writes_done == 0);
  REQUIRE(run_until(io, [&] { return ev.writes_done == 1; }));
  CHECK(ev.write_status == 0);
  char buf[16] = {0};
  CHECK(::read(afd, buf, sizeof buf) == 5);
  CHECK(std::string(buf) == "hello");

  ev.in_call = true;
  t->close();
  t->close();
  ev.in_call = false;
  REQUIRE(run_until(io, [&] { return ev.closed; }));
  CHECK_FALSE(ev.reported_in_call);
  delete t;
  ::close(afd);
  ::close(lfd);
}

TEST_CASE("tcp transport: a refused connect is reported from the loop", "[stream][tcp]") {
  IoContext io;
  uint16_t port = 0;
  ::close(listen_loopback(port));  // nothing listens there now
  Events ev;
  TcpTransport* t = connect_loopback(io, ev, port);
  CHECK(ev.connected == UV_ECONNREFUSED);
  t->close();
  REQUIRE(run_until(io, [&] { return ev.closed; }));
  CHECK_FALSE(ev.reported_in_call);
  delete t;
}
