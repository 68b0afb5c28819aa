// 1 GiB bodies stream through berth in both directions without berth buffering them:
// integrity is checked end to end and berth's VmRSS is sampled during the transfer.

#include <sys/socket.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "env.h"

using namespace it;

namespace {

constexpr uint64_t kGiB = 1ull << 30;
constexpr size_t kBlock = 256 * 1024;

long rss_limit_kb() {
  const char* s = std::getenv("BERTH_SANITIZE");
  bool sanitized = s && std::string_view(s) == "1";
#ifdef BERTH_SANITIZE
  sanitized = true;
#endif
  return sanitized ? 256 * 1024 : 64 * 1024;
}

// A pattern buffer that can be sliced at any offset: pattern[off % 62 .. +kBlock).
const std::string& pattern_buffer() {
  static const std::string p = pattern(0, kBlock + kPattern.size());
  return p;
}
std::string_view pattern_slice(uint64_t off, size_t len) {
  return std::string_view(pattern_buffer()).substr(static_cast<size_t>(off % kPattern.size()), len);
}

bool send_raw(int fd, std::string_view d) {
  while (!d.empty()) {
    ssize_t n = ::send(fd, d.data(), d.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    d.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Samples the RSS of pid every 50 ms until stopped.
class RssSampler {
 public:
  explicit RssSampler(pid_t pid) : pid_(pid) {
    thread_ = std::thread([this] {
      while (!stop_) {
        long r = vmrss_kb(pid_);
        if (r > max_) max_ = r;
        ++samples_;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  ~RssSampler() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  long max_kb() const { return max_; }
  int samples() const { return samples_; }

 private:
  pid_t pid_;
  std::atomic<bool> stop_{false};
  std::atomic<long> max_{0};
  std::atomic<int> samples_{0};
  std::thread thread_;
};

struct StreamEnv : OriginEnv {
  StreamEnv() : OriginEnv("S", config_head(1) + "routes:\n  - {name: r-s, host: \"s.test\", service: s-s}\n", "s-s") {}
};

}  // namespace

TEST_CASE("1 GiB request body streams to the origin with bounded memory", "[stream]") {
  StreamEnv env;
  const bool chunked = GENERATE(false, true);
  INFO((chunked ? "chunked" : "Content-Length") << " upload");

  Client c(env.berth->port(), 60s);
  REQUIRE(c.connected());
  long before = vmrss_kb(env.berth->pid());
  RssSampler sampler(env.berth->pid());
  auto t0 = Clock::now();

  std::atomic<bool> writer_ok{true};
  std::atomic<uint64_t> written{0};
  int fd = c.fd();
  std::thread writer([&] {
    std::string head = "POST /upload HTTP/1.1\r\nHost: s.test\r\n";
    head += chunked ? "Transfer-Encoding: chunked\r\n\r\n"
                    : "Content-Length: " + std::to_string(kGiB) + "\r\n\r\n";
    if (!send_raw(fd, head)) {
      writer_ok = false;
      return;
    }
    uint64_t off = 0;
    while (off < kGiB) {
      size_t len = static_cast<size_t>(std::min<uint64_t>(kBlock, kGiB - off));
      bool ok;
      if (chunked) {
        char hex[32];
        std::snprintf(hex, sizeof hex, "%zx\r\n", len);
        ok = send_raw(fd, hex) && send_raw(fd, pattern_slice(off, len)) && send_raw(fd, "\r\n");
      } else {
        ok = send_raw(fd, pattern_slice(off, len));
      }
      if (!ok) {
        writer_ok = false;
        return;
      }
      off += len;
      written = off;
    }
    if (chunked && !send_raw(fd, "0\r\n\r\n")) writer_ok = false;
  });

  Response r = c.read_response();  // concurrently with the writer
  writer.join();
  double took = seconds_since(t0);
  sampler.stop();

  INFO("response: " << r.raw_head << r.body << " error: " << r.error);
  INFO("written " << written.load() << " bytes in " << took << " s; berth RSS before " << before
                  << " KiB, max " << sampler.max_kb() << " KiB over " << sampler.samples()
                  << " samples");
  CHECK(writer_ok);
  REQUIRE(r.status == 200);
  CHECK(r.body == "bytes=" + std::to_string(kGiB) + " sum=" + std::to_string(pattern_sum(kGiB)));
  CHECK(sampler.samples() > 0);
  CHECK(sampler.max_kb() > 0);
  CHECK(sampler.max_kb() < rss_limit_kb());
  CHECK(took < 60.0);
  CHECK(env.berth->running());
}

TEST_CASE("1 GiB response body streams to a slow client with bounded memory", "[stream]") {
  StreamEnv env;
  const bool chunked = GENERATE(false, true);
  INFO((chunked ? "chunked" : "Content-Length") << " download");

  Client c(env.berth->port(), 60s);
  REQUIRE(c.connected());
  long before = vmrss_kb(env.berth->pid());
  RssSampler sampler(env.berth->pid());
  auto t0 = Clock::now();
  REQUIRE(c.send(make_request("GET", "/download?size=" + std::to_string(kGiB) + (chunked ? "&chunked=1" : ""),
                              "s.test")));
  Response r = c.read_head();
  INFO("response: " << r.raw_head << " error: " << r.error);
  REQUIRE(r.status == 200);

  uint64_t got = 0;
  uint64_t mismatch_at = UINT64_MAX;
  uint64_t next_pause = 0;
  bool ok = c.read_body(r, false, [&](std::string_view d) {
    if (mismatch_at == UINT64_MAX) {
      size_t done = 0;
      while (done < d.size()) {
        size_t n = std::min(kBlock, d.size() - done);
        if (std::memcmp(d.data() + done, pattern_slice(got + done, n).data(), n) != 0) {
          mismatch_at = got + done;
          break;
        }
        done += n;
      }
    }
    got += d.size();
    // Read slowly for the first 256 MiB so berth has to hold the origin back.
    if (got < kGiB / 4 && got >= next_pause) {
      next_pause = got + (1 << 20);
      std::this_thread::sleep_for(std::chrono::milliseconds(4));
    }
    return got <= kGiB;
  });
  double took = seconds_since(t0);
  sampler.stop();

  INFO("body error: " << r.error);
  INFO("received " << got << " bytes in " << took << " s; berth RSS before " << before
                   << " KiB, max " << sampler.max_kb() << " KiB over " << sampler.samples()
                   << " samples");
  CHECK(ok);
  CHECK(r.body_complete);
  CHECK(got == kGiB);
  CHECK(mismatch_at == UINT64_MAX);
  CHECK(sampler.samples() > 0);
  CHECK(sampler.max_kb() > 0);
  CHECK(sampler.max_kb() < rss_limit_kb());
  CHECK(took < 60.0);
  // The connection is reusable after the big body.
  Response r2 = c.get("/after", "s.test");
  CHECK(r2.status == 200);
  CHECK(env.berth->running());
}
