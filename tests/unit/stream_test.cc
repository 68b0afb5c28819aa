// A Stream over a transport that is not TCP: an in-memory one that captures what is written,
// lets the test inject reads and complete writes, shutdown and close, and reports facts a TLS
// transport would. The stream's batching, backpressure and close sequence must not care.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "proxy/net/stream.h"
#include "tests/unit/stream_probe.h"

using namespace berth;
using berth::test::Probe;
using berth::test::ProbeStream;
using berth::test::run_until;

namespace {

// What crossed the in-memory wire; outlives the transport (deleted with its stream).
struct Wire {
  std::string sent;
  int writes = 0;
  int zero_copy_segments = 0;  // segments pointing into a block the write references
  bool reading = false;
  bool refuse_writes = false;
  bool shutdown = false;
  bool closed = false;
};

class MemoryTransport final : public Transport {
 public:
  MemoryTransport(IoContext* io, Wire* wire) : io_(io), wire_(wire) {
    // A handle only so that closing ends from the loop, as the contract asks.
    uv_idle_init(io->loop(), &idle_);
    idle_.data = this;
    info_.scheme = "test";
    info_.peer_ip.family = 4;  // 192.0.2.10
    const uint8_t ip[4] = {192, 0, 2, 10};
    std::memcpy(info_.peer_ip.bytes, ip, sizeof ip);
    info_.peer_port = 5555;
    info_.local_port = 8443;
    tls_.version = "TLSv1.3";
    tls_.sni = "app.example";
    info_.tls = &tls_;
  }

  // Bytes arriving from the peer, in a pool block as the TCP transport would hand them.
  void inject(std::string_view bytes) {
    REQUIRE(wire_->reading);
    Block* b = io_->pool().acquire();
    std::memcpy(b->data(), bytes.data(), bytes.size());
    events_->on_transport_read(b, static_cast<ssize_t>(bytes.size()));
  }
  void inject_eof() { events_->on_transport_read(nullptr, UV_EOF); }
  void complete_writes(int status = 0) {
    std::vector<WriteReq*> done;
    done.swap(pending_);
    buffered_ = 0;
    for (WriteReq* wr : done) events_->on_transport_write_done(wr, status);
  }
  void complete_shutdown(int status = 0) { events_->on_transport_shutdown(status); }

  const ConnectionInfo& info() override { return info_; }
  int connect(const sockaddr*) override { return UV_ENOTSUP; }
  int read_start() override {
    wire_->reading = true;
    return 0;
  }
  void read_stop() override { wire_->reading = false; }
  int write(WriteReq* wr) override {
    if (wire_->refuse_writes) return UV_EPIPE;
    ++wire_->writes;
    for (uint8_t i = 0; i < wr->nsegments; ++i) {
      const char* p = wr->segment_data(i);
      wire_->sent.append(p, wr->segments[i].len);
      for (uint8_t k = 0; k < wr->nblocks; ++k)
        if (p >= wr->blocks[k]->data() && p < wr->blocks[k]->data() + wr->blocks[k]->capacity)
          ++wire_->zero_copy_segments;
    }
    buffered_ += wr->total_bytes();
    pending_.push_back(wr);
    return 0;
  }
  int shutdown() override {
    wire_->shutdown = true;
    return 0;
  }
  void close() override {
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&idle_))) return;
    uv_close(reinterpret_cast<uv_handle_t*>(&idle_), [](uv_handle_t* h) {
      auto* self = static_cast<MemoryTransport*>(h->data);
      self->complete_writes(UV_ECANCELED);
      self->wire_->closed = true;
      self->events_->on_transport_closed();
    });
  }
  size_t buffered_bytes() const override { return buffered_; }
  uint64_t peer_acked() override { return 0; }
  uint64_t peer_outstanding() override { return 0; }
  void reset_on_close() override {}
  bool has_unread_input() override { return false; }
  Waiting waiting_input() override { return Waiting::kNothing; }
  bool write_failed() const override { return false; }

 private:
  IoContext* io_;
  Wire* wire_;
  uv_idle_t idle_;
  TlsInfo tls_;
  ConnectionInfo info_;
  std::vector<WriteReq*> pending_;
  size_t buffered_ = 0;
};

struct Fixture {
  IoContext io;
  Wire wire;
  Probe probe;
  MemoryTransport* mem = nullptr;
  ProbeStream* stream = nullptr;
  explicit Fixture(ProbeStream::Reply reply = {}) {
    auto t = std::make_unique<MemoryTransport>(&io, &wire);
    mem = t.get();
    stream = new ProbeStream(&io, std::move(t), &probe, std::move(reply));
  }
};

// Answers each read with a head, the bytes themselves (zero-copy) and a trailer.
void frame_reply(ProbeStream& s, Block* block, const char* data, size_t len) {
  s.write_copy("<");
  s.write_block(block, data, len);
  s.write_copy(">");
}

}  // namespace

TEST_CASE("memory transport: reads in, batched zero-copy writes out", "[stream][transport]") {
  Fixture f(frame_reply);
  f.stream->set_reading(true);
  CHECK(f.wire.reading);

  f.mem->inject("ping");
  CHECK(f.probe.read == "ping");
  CHECK(f.wire.writes == 1);  // three writes, one batch
  CHECK(f.wire.sent == "<ping>");
  CHECK(f.wire.zero_copy_segments == 1);
  CHECK(f.stream->write_queue_bytes() == 6);
  CHECK(f.io.pool().blocks_out() == 1);  // the read block, held by the pending write

  f.mem->complete_writes();
  CHECK(f.probe.writes_done == 1);
  CHECK(f.stream->write_queue_bytes() == 0);
  CHECK(f.io.pool().blocks_out() == 0);

  f.stream->set_reading(false);
  CHECK_FALSE(f.wire.reading);
  f.stream->set_reading(true);
  f.mem->inject_eof();
  CHECK(f.probe.eof);

  f.stream->close();
  REQUIRE(run_until(f.io, [&] { return f.probe.closed; }));
  CHECK(f.wire.closed);
}

TEST_CASE("memory transport: scheme and connection facts come from the transport", "[stream][transport]") {
  Fixture f;
  const ConnectionInfo& info = f.stream->transport().info();
  CHECK(info.scheme == "test");
  CHECK(std::string(info.peer_ip.text().view) == "192.0.2.10");
  CHECK(info.peer_port == 5555);
  CHECK(info.local_port == 8443);
  REQUIRE(info.tls != nullptr);
  CHECK(info.tls->version == "TLSv1.3");
  CHECK(info.tls->sni == "app.example");
  f.stream->close();
  REQUIRE(run_until(f.io, [&] { return f.probe.closed; }));
}

TEST_CASE("memory transport: shutdown waits for pending writes, then the stream closes", "[stream][transport]") {
  Fixture f;
  CHECK(f.stream->write_copy("last words"));
  CHECK(f.wire.writes == 1);  // outside a read callback: sent at once
  f.stream->close_after_flush();
  CHECK_FALSE(f.wire.shutdown);  // a write is still pending

  f.mem->complete_writes();
  CHECK(f.wire.shutdown);
  CHECK_FALSE(f.stream->write_copy("too late"));  // nothing more once shutdown is under way
  CHECK_FALSE(f.stream->closing());
  f.mem->complete_shutdown();
  CHECK(f.stream->closing());  // the default on_flushed_shutdown closes
  CHECK_FALSE(f.probe.closed);  // ...and memory goes only once the loop has closed the handles
  REQUIRE(run_until(f.io, [&] { return f.probe.closed; }));
  CHECK(f.wire.sent == "last words");
  CHECK(f.io.open_streams() == 0);
}

TEST_CASE("memory transport: a refused write closes the stream", "[stream][transport]") {
  Fixture f;
  f.wire.refuse_writes = true;
  CHECK_FALSE(f.stream->write_copy("x"));
  CHECK(f.stream->closing());
  CHECK_FALSE(f.stream->write_copy("y"));
  REQUIRE(run_until(f.io, [&] { return f.probe.closed; }));
}

TEST_CASE("memory transport: writes pending at close are cancelled, their blocks freed", "[stream][transport]") {
  Fixture f(frame_reply);
  f.stream->set_reading(true);
  f.mem->inject("body");
  CHECK(f.io.pool().blocks_out() == 1);
  f.stream->close();
  REQUIRE(run_until(f.io, [&] { return f.probe.closed; }));
  CHECK(f.probe.write_errors == 0);
  CHECK(f.io.pool().blocks_out() == 0);
}

TEST_CASE("memory transport: a failed write is reported, then the stream closes", "[stream][transport]") {
  Fixture f;
  CHECK(f.stream->write_copy("x"));
  f.mem->complete_writes(UV_EPIPE);
  CHECK(f.probe.write_errors == 1);
  CHECK(f.stream->closing());
  REQUIRE(run_until(f.io, [&] { return f.probe.closed; }));
}

TEST_CASE("memory transport: bytes still in the batch can be taken back to a mark, never once sent",
          "[stream][transport]") {
  // Inside one read callback: "A" stays, the head and the body after the mark go (their block is
  // let go), and what comes after the take-back is sent with "A" in one write.
  Fixture f([](ProbeStream& s, Block* block, const char* data, size_t len) {
    s.write_copy("A");
    const Stream::WriteMark mark = s.write_mark();
    s.write_copy("HEAD");  // joins "A"'s owned segment
    s.write_block(block, data, len, "5\r\n", "\r\n");
    CHECK(s.retract_to(mark));
    CHECK_FALSE(s.retract_to(mark));  // one take-back per mark
    s.write_copy("B");
  });
  f.stream->set_reading(true);
  f.mem->inject("hello");
  CHECK(f.wire.writes == 1);
  CHECK(f.wire.sent == "AB");
  f.mem->complete_writes();
  CHECK(f.io.pool().blocks_out() == 0);

  // A mark on an empty batch takes back the whole batch.
  Fixture g([](ProbeStream& s, Block* block, const char* data, size_t len) {
    const Stream::WriteMark mark = s.write_mark();
    s.write_block(block, data, len);
    CHECK(s.retract_to(mark));
  });
  g.stream->set_reading(true);
  g.mem->inject("gone");
  CHECK(g.wire.writes == 0);
  CHECK(g.io.pool().blocks_out() == 0);

  // Outside a read callback a write goes at once: nothing after the mark can be taken back.
  const Stream::WriteMark mark = g.stream->write_mark();
  CHECK(g.stream->write_copy("sent"));
  CHECK_FALSE(g.stream->retract_to(mark));
  CHECK(g.wire.sent == "sent");
  g.mem->complete_writes();
  f.stream->close();
  g.stream->close();
  REQUIRE(run_until(f.io, [&] { return f.probe.closed; }));
  REQUIRE(run_until(g.io, [&] { return g.probe.closed; }));
}
