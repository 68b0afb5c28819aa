// Request mirroring (routes[].mirror, berth.mirror.*): a copy of a request goes to an instance
// of a shadow service, and the shadow's answer is read and discarded. The copy never touches
// the client's exchange: it has its own upstream connection (from the shadow endpoint's pool,
// like any request), its own LB pick, and it ends on its own; the client's answer, status,
// timing and retries do not depend on it.
//
// The copy is the request as it went upstream: the same method, rewritten target and headers
// (Host unchanged, no header added), and the whole body, sent once the client's request has
// been read completely (so it is never waited for). Copies are bounded per worker
// (Worker::kMaxMirrorsInFlight) and by the usual upstream timeouts (connect, response); what
// cannot go is dropped and counted (RecordSink::on_mirror), never queued.
#pragma once

#include <string>

#include "proxy/datapath/runtime.h"
#include "proxy/lb/lb.h"
#include "proxy/record/exchange_record.h"

namespace berth {

class Worker;
struct Route;

// Sends `request` (head and framed body) to an instance of route.mirror's service, chosen with
// `key` by that service's balancer. `rt` is the snapshot `route` belongs to (held until the copy
// ends). Counts the result when the copy ends (possibly before this returns).
void send_mirror(Worker& worker, const RuntimeRef& rt, const Route& route, const PickKey& key, bool method_head,
                 std::string request);

// Counts a copy that was not attempted (MirrorResult::kSkipped or kDropped).
void count_mirror(Worker& worker, const RouteTable& table, const Route& route, MirrorResult result);

}  // namespace berth
