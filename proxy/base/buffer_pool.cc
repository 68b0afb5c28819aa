#include "proxy/base/buffer_pool.h"

#include <cstdlib>
#include <new>

namespace berth {

BufferPool::BufferPool(uint32_t block_size, uint32_t max_free)
    : block_size_(block_size), max_free_(max_free) {}

BufferPool::~BufferPool() {
  while (free_) {
    Block* b = free_;
    free_ = b->next_free;
    std::free(b);
  }
}

Block* BufferPool::acquire() {
  Block* b = free_;
  if (b) {
    free_ = b->next_free;
    --free_count_;
  } else {
    b = static_cast<Block*>(std::malloc(sizeof(Block) + block_size_));
    if (!b) throw std::bad_alloc();
    b->pool = this;
    b->capacity = block_size_;
  }
  b->next_free = nullptr;
  b->refs = 1;
  ++out_;
  return b;
}

void BufferPool::recycle(Block* b) {
  --out_;
  if (free_count_ >= max_free_) {
    std::free(b);
    return;
  }
  b->next_free = free_;
  free_ = b;
  ++free_count_;
}

}  // namespace berth
