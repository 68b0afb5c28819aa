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

MethodClass classify_method(std::string_view m) noexcept {
  // Methods are case-sensitive (RFC 9110 9.1): "get" is not GET.
  switch (m.size()) {
    case 3:
      if (m == "GET") return MethodClass::kGet;
      if (m == "PUT") return MethodClass::kPut;
      break;
    case 4:
      if (m == "HEAD") return MethodClass::kHead;
      if (m == "POST") return MethodClass::kPost;
      break;
    case 5:
      if (m == "PATCH") return MethodClass::kPatch;
      if (m == "TRACE") return MethodClass::kTrace;
      break;
    case 6:
      if (m == "DELETE") return MethodClass::kDelete;
      break;
    case 7:
      if (m == "CONNECT") return MethodClass::kConnect;
      if (m == "OPTIONS") return MethodClass::kOptions;
      break;
  }
  return MethodClass::kOther;
}

MethodClass leading_method(std::string_view bytes) noexcept {
  const size_t space = bytes.substr(0, 8).find(' ');  // the longest standard method has 7 bytes
  return space == std::string_view::npos ? MethodClass::kOther : classify_method(bytes.substr(0, space));
}

void ExchangeRecord::note_unparsed_method(std::string_view bytes) {
  method_class = leading_method(bytes);
  if (method_class != MethodClass::kOther) method.assign(method_class_name(method_class));
}

const char* method_class_name(MethodClass m) noexcept {
  switch (m) {
    case MethodClass::kGet: return "GET";
    case MethodClass::kHead: return "HEAD";
    case MethodClass::kPost: return "POST";
    case MethodClass::kPut: return "PUT";
    case MethodClass::kDelete: return "DELETE";
    case MethodClass::kConnect: return "CONNECT";
    case MethodClass::kOptions: return "OPTIONS";
    case MethodClass::kTrace: return "TRACE";
    case MethodClass::kPatch: return "PATCH";
    case MethodClass::kOther:
    case MethodClass::kCount_: break;
  }
  return "OTHER";
}

void ExchangeRecord::clear() noexcept {
  start_ns = end_ns = start_unix_ns = 0;
  method.clear();
  method_class = MethodClass::kOther;
  host.clear();
  path.clear();
  query.clear();
  user_agent.clear();
  referer.clear();
  request_id.clear();
  version_minor = 1;
  head_parsed = false;
  scheme = {};
  tls_version = tls_cipher = tls_sni = {};
  client.clear();
  route = service = {};
  snapshot = nullptr;
  snapshot_generation = 0;
  route_index = split_target = service_index = UINT32_MAX;
  status = 0;
  cause = "";
  end = ExchangeEnd::kClientClosed;
  bytes_in = bytes_out = 0;
  for (uint8_t i = 0; i < attempt_count && i < kMaxAttempts; ++i) attempts[i] = AttemptRecord{};
  attempt_count = 0;
}

}  // namespace berth
