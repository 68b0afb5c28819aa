#include "proxy/base/buffer_pool.h"

#include <sys/mman.h>

#include <new>

namespace berth {
namespace {
constexpr size_t kPage = 4096;
size_t block_bytes(uint32_t block_size) { return (sizeof(Block) + block_size + kPage - 1) / kPage * kPage; }
}  // namespace

// Blocks are mappings of their own: released ones go back to the kernel at once (a heap would
// keep their pages resident), and a new one costs a system call only when the pool has none free.
Block* BufferPool::map_block() const {
  void* p = mmap(nullptr, block_bytes(block_size_), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<Block*>(p);
}

void BufferPool::unmap_block(Block* b) const { munmap(b, block_bytes(block_size_)); }

BufferPool::BufferPool(uint32_t block_size, uint32_t max_free)
    : block_size_(block_size), max_free_(max_free) {}

BufferPool::~BufferPool() {
  while (free_) {
    Block* b = free_;
    free_ = b->next_free;
    unmap_block(b);
  }
}

Block* BufferPool::acquire() {
  Block* b = free_;
  if (b) {
    free_ = b->next_free;
    --free_count_;
  } else {
    b = map_block();
    b->pool = this;
    b->capacity = block_size_;
  }
  free_low_.taken(free_count_);
  b->next_free = nullptr;
  b->refs = 1;
  b->read_ns = 0;
  ++out_;
  return b;
}

size_t BufferPool::trim(size_t keep_warm) {
  return free_low_.trim_list(free_, free_count_, keep_warm, [this](Block* b) { unmap_block(b); });
}

void BufferPool::recycle(Block* b) {
  --out_;
  if (free_count_ >= max_free_) {
    unmap_block(b);
    return;
  }
  b->next_free = free_;
  free_ = b;
  ++free_count_;
}

}  // namespace berth
