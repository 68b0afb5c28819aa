// Session ticket keys: the same in every thread (every worker), new each epoch, the previous
// epoch's still accepted, and which tickets are renewed. No sockets.
#include <catch2/catch.hpp>

#include <cstring>
#include <thread>
#include <vector>

#include "proxy/tls/session_ticket.h"

using namespace berth::tls;

namespace {

std::vector<unsigned char> bytes_of(const TicketKeys& k) {
  std::vector<unsigned char> out(k.name, k.name + sizeof k.name);
  out.insert(out.end(), k.aes, k.aes + sizeof k.aes);
  out.insert(out.end(), k.mac, k.mac + sizeof k.mac);
  return out;
}

}  // namespace

TEST_CASE("tls session tickets: every thread derives the same keys for an epoch, and each epoch new ones",
          "[tls]") {
  const int64_t epoch = 4242;
  const auto here = bytes_of(ticket_keys(epoch));
  std::vector<unsigned char> there, there_next;
  std::thread([&] {
    there = bytes_of(ticket_keys(epoch));
    there_next = bytes_of(ticket_keys(epoch + 1));
  }).join();
  CHECK(here == there);
  CHECK(bytes_of(ticket_keys(epoch + 1)) == there_next);
  CHECK(there_next != here);
  CHECK(bytes_of(ticket_keys(epoch + 2)) != there_next);
  // The per-thread cache holds two epochs; going back recomputes the same keys.
  CHECK(bytes_of(ticket_keys(epoch)) == here);
}

TEST_CASE("tls session tickets: which keys a ticket names, and whether it is renewed", "[tls]") {
  const int64_t now = 9000;
  unsigned char current[16], previous[16], expired[16], unknown[16];
  std::memcpy(current, ticket_keys(now).name, 16);
  std::memcpy(previous, ticket_keys(now - 1).name, 16);
  std::memcpy(expired, ticket_keys(now - 2).name, 16);
  std::memset(unknown, 0x5a, sizeof unknown);

  struct Case {
    const char* what;
    const unsigned char* name;
    bool tls13;
    bool found;
    bool renew;
  };
  const Case cases[] = {
      {"current key, TLS 1.2: resumed, the client keeps its ticket", current, false, true, false},
      {"current key, TLS 1.3: resumed, a new ticket (clients use each one once)", current, true, true, true},
      {"previous key, TLS 1.2: resumed and renewed", previous, false, true, true},
      {"previous key, TLS 1.3: resumed and renewed", previous, true, true, true},
      {"key two epochs old: a full handshake", expired, true, false, false},
      {"unknown key: a full handshake", unknown, false, false, false},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    bool renew = !c.renew;
    const TicketKeys* k = find_ticket_keys(c.name, now, c.tls13, &renew);
    CHECK((k != nullptr) == c.found);
    CHECK(renew == c.renew);
    if (k) CHECK(std::memcmp(k->name, c.name, 16) == 0);
  }
}
