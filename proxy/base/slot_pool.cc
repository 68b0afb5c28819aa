#include "proxy/base/slot_pool.h"

#include <sys/mman.h>

#include <cstring>
#include <initializer_list>
#include <new>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
// Free slots are poisoned, so a use after release is reported as it is for the heap, and each
// slab is a root region for the leak checker: what a live slot points to is not a leak.
#define BERTH_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define BERTH_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#define BERTH_ROOT_ADD(p, n) __lsan_register_root_region(p, n)
#define BERTH_ROOT_REMOVE(p, n) __lsan_unregister_root_region(p, n)
#else
#define BERTH_POISON(p, n) ((void)(p), (void)(n))
#define BERTH_UNPOISON(p, n) ((void)(p), (void)(n))
#define BERTH_ROOT_ADD(p, n) ((void)(p), (void)(n))
#define BERTH_ROOT_REMOVE(p, n) ((void)(p), (void)(n))
#endif

namespace berth {

// At the start of each slab (the slab is kSlabBytes-aligned, so a slot finds it by masking).
struct SlotPool::Slab {
  SlotPool* pool;
  Slab* prev;
  Slab* next;
  void* free;       // released slots, linked through their first word
  uint32_t used;    // slots in use
  uint32_t carved;  // slots handed out at least once; the rest of the slab was never touched
};

namespace {
constexpr size_t round16(size_t n) { return (n + 15) & ~size_t{15}; }
}  // namespace

SlotPool::SlotPool(size_t slot_size)
    : slot_size_(round16(slot_size < sizeof(void*) ? sizeof(void*) : slot_size)),
      first_offset_(round16(sizeof(Slab))),
      per_slab_((kSlabBytes - first_offset_) / slot_size_) {
  if (per_slab_ == 0) throw std::bad_alloc();
}

SlotPool::~SlotPool() {
  for (Slab** list : {&open_, &full_}) {
    Slab* s = *list;
    while (s) {
      Slab* next = s->next;
      if (s->used == 0) unmap_slab(s);
      else s->pool = nullptr;  // left mapped: see the header
      s = next;
    }
  }
}

SlotPool::Slab* SlotPool::map_slab() {
  // Twice the size, then the unaligned ends unmapped: a kSlabBytes-aligned slab.
  void* raw = ::mmap(nullptr, 2 * kSlabBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kSlabBytes - 1) & ~(uintptr_t{kSlabBytes} - 1);
  if (aligned > start) ::munmap(raw, aligned - start);
  if (const uintptr_t end = start + 2 * kSlabBytes; end > aligned + kSlabBytes)
    ::munmap(reinterpret_cast<void*>(aligned + kSlabBytes), end - aligned - kSlabBytes);
  auto* s = new (reinterpret_cast<void*>(aligned)) Slab{this, nullptr, nullptr, nullptr, 0, 0};
  BERTH_ROOT_ADD(s, kSlabBytes);
  BERTH_POISON(reinterpret_cast<char*>(s) + first_offset_, kSlabBytes - first_offset_);
  ++slabs_;
  return s;
}

void SlotPool::unmap_slab(Slab* s) noexcept {
  BERTH_UNPOISON(s, kSlabBytes);
  BERTH_ROOT_REMOVE(s, kSlabBytes);
  ::munmap(s, kSlabBytes);
  --slabs_;
}

void SlotPool::link(Slab*& head, Slab* s) noexcept {
  s->prev = nullptr;
  s->next = head;
  if (head) head->prev = s;
  head = s;
}

void SlotPool::unlink(Slab*& head, Slab* s) noexcept {
  if (s->prev) s->prev->next = s->next;
  else head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = nullptr;
}

void* SlotPool::allocate() {
  // Fill slabs already in use before the warm empty one, so that empty slabs stay empty.
  Slab* s = open_;
  if (s && s == empty_ && s->next) s = s->next;
  if (!s) {
    s = map_slab();
    link(open_, s);
  }
  if (s == empty_) empty_ = nullptr;
  void* slot;
  if (s->free) {
    slot = s->free;
    BERTH_UNPOISON(slot, slot_size_);
    std::memcpy(&s->free, slot, sizeof(void*));
  } else {
    slot = reinterpret_cast<char*>(s) + first_offset_ + s->carved * slot_size_;
    BERTH_UNPOISON(slot, slot_size_);
    ++s->carved;
  }
  ++s->used;
  ++in_use_;
  if (s->used == per_slab_) {
    unlink(open_, s);
    link(full_, s);
  }
  return slot;
}

void SlotPool::release(void* slot) noexcept {
  if (!slot) return;
  auto* s = reinterpret_cast<Slab*>(reinterpret_cast<uintptr_t>(slot) & ~(uintptr_t{kSlabBytes} - 1));
  if (s->pool) {
    s->pool->give_back(s, slot);
    return;
  }
  // The pool went first (see ~SlotPool): the slot is simply not used again.
}

void SlotPool::give_back(Slab* s, void* slot) noexcept {
  std::memcpy(slot, &s->free, sizeof(void*));
  s->free = slot;
  BERTH_POISON(slot, slot_size_);
  --in_use_;
  if (s->used-- == per_slab_) {
    unlink(full_, s);
    link(open_, s);
  }
  if (s->used > 0) return;
  if (!empty_) {
    empty_ = s;
    return;
  }
  unlink(open_, s);
  unmap_slab(s);
}

}  // namespace berth
