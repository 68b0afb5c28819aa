#include "proxy/model/endpoint_health.h"

#include <mutex>
#include <vector>

namespace berth {

const char* probe_state_name(ProbeState s) noexcept {
  switch (s) {
    case ProbeState::kUnchecked: return "unchecked";
    case ProbeState::kPending: return "pending";
    case ProbeState::kHealthy: return "healthy";
    case ProbeState::kUnhealthy: return "unhealthy";
  }
  return "unknown";
}

namespace {
std::atomic<uint64_t> g_health_epoch{1};
}  // namespace

uint64_t health_epoch() noexcept { return g_health_epoch.load(std::memory_order_acquire); }
void bump_health_epoch() noexcept { g_health_epoch.fetch_add(1, std::memory_order_acq_rel); }

namespace {

// Slots of live EndpointHealth objects: released slots are handed out again first, so the
// worker tables stay as small as the most instances ever alive at once. Never destroyed: a
// snapshot may let go of its instances during exit.
struct Slots {
  std::mutex mu;
  std::vector<uint32_t> free;
  uint32_t next = 0;
};
Slots& slots() {
  static Slots* s = new Slots;
  return *s;
}

// Every live InFlightCounts, for total().
struct Tables {
  std::mutex mu;
  std::vector<const InFlightCounts*> all;
};
Tables& tables() {
  static Tables* t = new Tables;
  return *t;
}

uint32_t take_slot() {
  Slots& s = slots();
  std::lock_guard lock(s.mu);
  if (s.free.empty()) return s.next++;
  const uint32_t slot = s.free.back();
  s.free.pop_back();
  return slot;
}

}  // namespace

// A slot is released only when the last snapshot listing the instance is gone, so no request is
// in flight to it any more: every worker's count for the slot is back to zero.
EndpointHealth::EndpointHealth() : slot(take_slot()) {}

EndpointHealth::~EndpointHealth() {
  Slots& s = slots();
  std::lock_guard lock(s.mu);
  s.free.push_back(slot);
}

static_assert(sizeof(EndpointHealth) == 3 * 64, "three cache lines: control, outcomes, attempts");

InFlightCounts::InFlightCounts() : chunks_(new std::atomic<std::atomic<uint32_t>*>[kChunks]) {
  for (uint32_t c = 0; c < kChunks; ++c) chunks_[c].store(nullptr, std::memory_order_relaxed);
  Tables& t = tables();
  std::lock_guard lock(t.mu);
  t.all.push_back(this);
}

InFlightCounts::~InFlightCounts() {
  {
    Tables& t = tables();
    std::lock_guard lock(t.mu);
    std::erase(t.all, this);
  }
  for (uint32_t c = 0; c < kChunks; ++c) delete[] chunks_[c].load(std::memory_order_relaxed);
}

// A single writer: a plain load and store, no read-modify-write.
void InFlightCounts::change(uint32_t slot, int delta) noexcept {
  const uint32_t c = slot >> kChunkBits;
  if (c >= kChunks) return;  // beyond 4M live instances: not shown
  std::atomic<uint32_t>* chunk = chunks_[c].load(std::memory_order_relaxed);
  if (!chunk) {
    chunk = new std::atomic<uint32_t>[size_t{1} << kChunkBits]();
    chunks_[c].store(chunk, std::memory_order_release);
  }
  std::atomic<uint32_t>& n = chunk[slot & ((1u << kChunkBits) - 1)];
  n.store(n.load(std::memory_order_relaxed) + static_cast<uint32_t>(delta), std::memory_order_relaxed);
}

uint32_t InFlightCounts::get(const EndpointHealth& h) const noexcept {
  const uint32_t c = h.slot >> kChunkBits;
  if (c >= kChunks) return 0;
  const std::atomic<uint32_t>* chunk = chunks_[c].load(std::memory_order_acquire);
  return chunk ? chunk[h.slot & ((1u << kChunkBits) - 1)].load(std::memory_order_relaxed) : 0;
}

uint32_t InFlightCounts::total(const EndpointHealth& h) noexcept {
  Tables& t = tables();
  std::lock_guard lock(t.mu);
  uint32_t sum = 0;
  for (const InFlightCounts* table : t.all) sum += table->get(h);
  return sum;
}

}  // namespace berth
