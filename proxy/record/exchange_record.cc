#include "proxy/record/exchange_record.h"

namespace berth {

const char* exchange_end_name(ExchangeEnd end) noexcept {
  switch (end) {
    case ExchangeEnd::kResponded: return "responded";
    case ExchangeEnd::kLocalReply: return "local_reply";
    case ExchangeEnd::kClientClosed: return "client_closed";
    case ExchangeEnd::kAborted: return "aborted";
    case ExchangeEnd::kTunnelClosed: return "tunnel_closed";
  }
  return "unknown";
}

void ExchangeRecord::clear() noexcept {
  start_ns = end_ns = start_unix_ns = 0;
  method.clear();
  host.clear();
  path.clear();
  query.clear();
  user_agent.clear();
  referer.clear();
  request_id.clear();
  version_minor = 1;
  scheme = {};
  client.clear();
  route = service = {};
  status = 0;
  cause = "";
  end = ExchangeEnd::kClientClosed;
  bytes_in = bytes_out = 0;
  for (uint8_t i = 0; i < attempt_count && i < kMaxAttempts; ++i) attempts[i] = AttemptRecord{};
  attempt_count = 0;
}

}  // namespace berth
