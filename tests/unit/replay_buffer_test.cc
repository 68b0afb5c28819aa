// The bounded copy of a request body kept for a retry: what is kept for a known and an unknown
// length, when the copy is dropped, and how it is framed again for the next instance.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "proxy/http/replay_buffer.h"

using namespace berth;

namespace {

constexpr uint64_t kUnknown = ReplayBuffer::kUnknownLength;

// Feeds pieces of the given sizes, taken in order from a body of distinct bytes.
std::string feed(ReplayBuffer& rb, const std::vector<size_t>& pieces) {
  std::string body;
  for (size_t n : pieces) {
    std::string piece;
    for (size_t i = 0; i < n; ++i) piece.push_back(static_cast<char>('a' + (body.size() + i) % 26));
    rb.add(piece.data(), piece.size());
    body += piece;
  }
  return body;
}

}  // namespace

TEST_CASE("replay buffer: what is kept, by length and bound", "[replay]") {
  struct Case {
    const char* name;
    uint64_t bound;
    uint64_t length;  // Content-Length, or kUnknown (chunked)
    std::vector<size_t> pieces;
    bool replayable;
  };
  const std::vector<Case> cases = {
      {"length within the bound", 8192, 4096, {1000, 3096}, true},
      {"length exactly the bound", 4096, 4096, {4096}, true},
      {"length above the bound: nothing copied", 4096, 4097, {4097}, false},
      {"length above the bound, nothing read yet", 4096, 10000, {}, true},
      {"zero length", 8192, 0, {}, true},
      {"bound 0, some body", 0, 1, {1}, false},
      {"chunked within the bound", 8192, kUnknown, {1, 2, 4000, 5}, true},
      {"chunked reaching the bound exactly", 100, kUnknown, {60, 40}, true},
      {"chunked over the bound: dropped", 100, kUnknown, {60, 41}, false},
      {"chunked over, then more: stays dropped", 100, kUnknown, {101, 1, 1}, false},
      {"chunked, bound 0, empty body", 0, kUnknown, {}, true},
      {"chunked, many small pieces up to an odd bound", 10000, kUnknown, std::vector<size_t>(100, 100), true},
  };
  for (const auto& c : cases) {
    SECTION(c.name) {
      ReplayBuffer rb;
      rb.start(c.bound, c.length);
      const std::string body = feed(rb, c.pieces);
      CHECK(rb.replayable() == c.replayable);
      CHECK(rb.seen() == body.size());
      if (c.replayable) CHECK(rb.bytes() == body);
      else CHECK(rb.bytes().empty());
      CHECK(rb.capacity() <= std::max<uint64_t>(c.bound, 15));  // 15: the empty string's own room
    }
  }
}

TEST_CASE("replay buffer: a buffer never started keeps nothing", "[replay]") {
  ReplayBuffer rb;
  CHECK(rb.replayable());  // no body read: nothing to replay
  feed(rb, {10});
  CHECK_FALSE(rb.replayable());
  CHECK(rb.seen() == 10);
}

TEST_CASE("replay buffer: framed again as it goes upstream", "[replay]") {
  ReplayBuffer rb;
  rb.start(8192, kUnknown);
  const std::string body = feed(rb, {3, 20});  // two chunks from the client, one on replay
  std::string out;
  rb.append_framed(true, false, out);
  CHECK(out == "17\r\n" + body + "\r\n");
  out.clear();
  rb.append_framed(true, true, out);
  CHECK(out == "17\r\n" + body + "\r\n0\r\n\r\n");
  out = "HEAD";
  rb.append_framed(false, true, out);
  CHECK(out == "HEAD" + body);

  ReplayBuffer empty;
  empty.start(8192, kUnknown);
  out.clear();
  empty.append_framed(true, true, out);
  CHECK(out == "0\r\n\r\n");  // a chunked body with no data still ends
  out.clear();
  empty.append_framed(true, false, out);
  CHECK(out.empty());
}

TEST_CASE("replay buffer: reset and reuse; a large copy is not kept around", "[replay]") {
  ReplayBuffer rb;
  rb.start(1 << 20, 1 << 20);
  feed(rb, {1 << 20});
  REQUIRE(rb.replayable());
  CHECK(rb.capacity() >= (1 << 20));
  rb.reset();
  CHECK(rb.seen() == 0);
  CHECK(rb.bytes().empty());
  CHECK(rb.capacity() <= 64 * 1024);
  // Reused for the next request, with a different bound.
  rb.start(10, kUnknown);
  const std::string body = feed(rb, {4, 6});
  CHECK(rb.bytes() == body);
  feed(rb, {1});
  CHECK_FALSE(rb.replayable());
  ReplayBuffer chunked;  // a chunked copy dropped past the bound lets its memory go at once
  chunked.start(1 << 20, kUnknown);
  feed(chunked, {1 << 19, 1 << 19});
  REQUIRE(chunked.capacity() >= (1 << 20));
  feed(chunked, {1});
  CHECK(chunked.capacity() <= 64 * 1024);
  rb.start(10, 5);  // start() forgets the previous body
  CHECK(rb.replayable());
  CHECK(rb.seen() == 0);
}
