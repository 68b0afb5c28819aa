// SlotPool: fixed-size slots carved from 64 KiB slabs, each slab its own mapping, for objects of
// which many live long at once (a worker's client connections, most of them idle).
//
// Why not the heap: every heap chunk carries a header, and long-lived objects allocated between
// a burst's short-lived ones (request state, upstream heads) pin the pages those leave behind, so
// after the burst the heap cannot hand them back. Slots sit together, away from the requests'
// allocations, and a slab whose last slot is freed is unmapped (one empty slab is kept warm).
//
// Single-threaded: a pool belongs to one loop, and its slots are allocated and released there.
// release() finds a slot's slab, and so its pool, from the slot's address alone.
#pragma once

#include <cstddef>
#include <cstdint>

namespace berth {

class SlotPool {
 public:
  static constexpr size_t kSlabBytes = 64 * 1024;

  // slot_size is rounded up to a multiple of 16 (every slot is 16-byte aligned).
  explicit SlotPool(size_t slot_size);
  // Unmaps every slab whose slots are all free. A slab with a slot still in use stays mapped
  // (an object that outlives its pool is a bug, but not one to turn into a use-after-unmap).
  ~SlotPool();
  SlotPool(const SlotPool&) = delete;
  SlotPool& operator=(const SlotPool&) = delete;

  // A slot of slot_size() bytes, uninitialised. Throws std::bad_alloc when no slab can be mapped.
  void* allocate();
  // Returns a slot from allocate() to the pool it came from.
  static void release(void* slot) noexcept;

  size_t slot_size() const { return slot_size_; }
  size_t slots_per_slab() const { return per_slab_; }
  size_t slots_in_use() const { return in_use_; }
  size_t slabs() const { return slabs_; }

 private:
  struct Slab;
  Slab* map_slab();
  void unmap_slab(Slab* s) noexcept;
  void give_back(Slab* s, void* slot) noexcept;
  static void link(Slab*& head, Slab* s) noexcept;
  static void unlink(Slab*& head, Slab* s) noexcept;

  size_t slot_size_;
  size_t first_offset_;  // where the first slot starts in a slab (after its header)
  size_t per_slab_;
  Slab* open_ = nullptr;  // slabs with a free slot (the warm empty one included)
  Slab* full_ = nullptr;  // slabs with none
  Slab* empty_ = nullptr; // the one empty slab kept warm, also on open_ (null: none)
  size_t in_use_ = 0;
  size_t slabs_ = 0;
};

}  // namespace berth
