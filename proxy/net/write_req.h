// A batch of bytes handed to a transport as one write: small owned bytes (heads, chunk headers,
// local replies) and references to bytes that live elsewhere (pool blocks, zero-copy; static
// strings). Pooled per loop by IoContext; every block it references stays alive until the
// transport reports the write done.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>

#include "proxy/base/buffer_pool.h"

namespace berth {

struct WriteReq {
  static constexpr uint8_t kMaxSegments = 16;
  static constexpr uint8_t kMaxBlocks = 8;
  struct Segment {
    const char* external;  // nullptr: bytes are owned[offset, offset+len)
    uint32_t offset;
    uint32_t len;
  };
  uv_write_t req;        // for a transport that hands the batch to uv_write as it is
  Block* blocks[kMaxBlocks] = {nullptr};
  uint8_t nblocks = 0;
  uint8_t nsegments = 0;
  Segment segments[kMaxSegments];
  std::string owned;     // chunk headers, heads, local replies
  WriteReq* next_free = nullptr;  // the free list; a transport's queue while it is taken
  uint32_t size = 0;     // for a transport that sends it in parts: its bytes, and those sent
  uint32_t sent = 0;

  const char* segment_data(uint8_t i) const {
    const Segment& s = segments[i];
    return s.external ? s.external : owned.data() + s.offset;
  }
  size_t total_bytes() const {
    size_t n = 0;
    for (uint8_t i = 0; i < nsegments; ++i) n += segments[i].len;
    return n;
  }
};

}  // namespace berth
