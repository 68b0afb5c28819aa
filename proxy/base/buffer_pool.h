// Per-worker pool of fixed-size, reference-counted read blocks. libuv's alloc callback takes a
// block for each read; the block goes back to the pool as soon as nothing references it, so an
// idle connection holds no buffer. Body bytes are forwarded straight from the block: each
// pending write holds a reference until libuv has written it. Single-threaded (one per loop).
#pragma once

#include <cstddef>
#include <cstdint>

#include "proxy/base/low_water.h"

namespace berth {

class BufferPool;

struct Block {
  BufferPool* pool;
  Block* next_free;
  uint32_t refs;
  uint32_t capacity;
  // When a connection keeps some of the block's bytes for later (a pipelined request waiting for
  // the response before it), the monotonic ns they were read at; 0 until then.
  int64_t read_ns;
  char* data() { return reinterpret_cast<char*>(this + 1); }
  static Block* from_data(char* p) { return reinterpret_cast<Block*>(p) - 1; }
};

class BufferPool {
 public:
  // 128 KiB: one read takes a whole 64 KiB body with its head (64 KiB blocks took two reads and
  // two writes for it). Blocks are mappings of their own, so only the pages a read fills become
  // resident: a small request still costs one page.
  explicit BufferPool(uint32_t block_size = 128 * 1024, uint32_t max_free = 256);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  Block* acquire();  // refs == 1
  static void ref(Block* b) { ++b->refs; }
  static void unref(Block* b) {
    if (--b->refs == 0) b->pool->recycle(b);
  }
  uint32_t block_size() const { return block_size_; }
  size_t blocks_out() const { return out_; }
  size_t blocks_free() const { return free_count_; }
  // Unmaps free blocks beyond `keep_warm` that LowWater finds unused (the least recently used
  // first): a burst of concurrent reads does not leave its peak resident, and a steady load keeps
  // the blocks it cycles through. Called periodically. Returns how many it released.
  size_t trim(size_t keep_warm);

 private:
  void recycle(Block* b);
  Block* map_block() const;
  void unmap_block(Block* b) const;
  uint32_t block_size_;
  uint32_t max_free_;
  Block* free_ = nullptr;
  uint32_t free_count_ = 0;
  LowWater free_low_;
  size_t out_ = 0;
};

// A slice of a block that keeps the block alive.
struct Slice {
  Block* block = nullptr;
  uint32_t off = 0;
  uint32_t len = 0;
  const char* data() const { return block->data() + off; }
  bool empty() const { return len == 0; }
  void reset() {
    if (block) BufferPool::unref(block);
    block = nullptr;
    off = len = 0;
  }
};

}  // namespace berth
