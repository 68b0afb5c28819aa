// A Stream for tests: records what it reads and how its writes and close end, and can answer
// each read with writes of its own (made inside the read callback, so they are batched).
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <unistd.h>

#include "proxy/net/stream.h"

namespace berth::test {

// What a ProbeStream saw; outlives the stream, which deletes itself after close.
struct Probe {
  std::string read;
  bool eof = false;
  int writes_done = 0;
  int write_errors = 0;
  bool closed = false;
};

class ProbeStream final : public Stream {
 public:
  using Reply = std::function<void(ProbeStream& s, Block* block, const char* data, size_t len)>;
  ProbeStream(IoContext* io, std::unique_ptr<Transport> transport, Probe* probe, Reply reply = {})
      : Stream(io, std::move(transport)), probe_(probe), reply_(std::move(reply)) {}

 private:
  void on_read(Block* block, ssize_t nread) override {
    if (nread < 0) {
      probe_->eof = true;
      return;
    }
    probe_->read.append(block->data(), static_cast<size_t>(nread));
    if (reply_) reply_(*this, block, block->data(), static_cast<size_t>(nread));
    BufferPool::unref(block);
  }
  void on_write_done(int status) override { status < 0 ? ++probe_->write_errors : ++probe_->writes_done; }
  void on_closed() override { probe_->closed = true; }

  Probe* probe_;
  Reply reply_;
};

// Turns the loop without blocking until `done` holds or about two seconds pass.
template <class Done>
bool run_until(IoContext& io, Done done) {
  for (int i = 0; i < 2000 && !done(); ++i) {
    uv_run(io.loop(), UV_RUN_NOWAIT);
    if (!done()) usleep(1000);
  }
  return done();
}

}  // namespace berth::test
