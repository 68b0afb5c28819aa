#include "proxy/base/stats.h"

namespace berth {

std::string_view counter_name(Counter c) {
  switch (c) {
    case Counter::kConnectionsAccepted: return "connections_accepted";
    case Counter::kConnectionsClosed: return "connections_closed";
    case Counter::kRequests: return "requests";
    case Counter::kResponses1xx: return "responses_1xx";
    case Counter::kResponses2xx: return "responses_2xx";
    case Counter::kResponses3xx: return "responses_3xx";
    case Counter::kResponses4xx: return "responses_4xx";
    case Counter::kResponses5xx: return "responses_5xx";
    case Counter::kLocalReplies: return "local_replies";
    case Counter::kUpstreamConnects: return "upstream_connects";
    case Counter::kUpstreamConnectFailures: return "upstream_connect_failures";
    case Counter::kUpstreamReuses: return "upstream_reuses";
    case Counter::kUpstreamRetries: return "upstream_retries";
    case Counter::kRequestsRejected: return "requests_rejected";
    case Counter::kAcceptPauses: return "accept_pauses";
    case Counter::kCircuitOpen: return "circuit_open";
    case Counter::kOutlierEjections: return "outlier_ejections";
    case Counter::kRetryBudgetExhausted: return "retry_budget_exhausted";
    case Counter::kProxyProtocolRejected: return "proxy_protocol_rejected";
    case Counter::kIdleReclaimed: return "idle_connections_reclaimed";
    case Counter::kUpstreamUnsolicited: return "upstream_unsolicited_bytes";
    case Counter::kCount_: break;
  }
  return "unknown";
}

}  // namespace berth
