#include "proxy/record/log_record_sink.h"

#include <string>

#include "proxy/base/log.h"

namespace berth {
namespace {
double ms_between(int64_t from_ns, int64_t to_ns) {
  return from_ns && to_ns ? static_cast<double>(to_ns - from_ns) / 1e6 : -1.0;
}
}  // namespace

void LogRecordSink::on_exchange(const ExchangeRecord& r) {
  log::Line line = log::debug("exchange");
  line.kv("request_id", r.request_id)
      .kv("client", r.client)
      .kv("method", r.method)
      .kv("host", r.host)
      .kv("path", r.path)
      .kv("status", static_cast<uint64_t>(r.status))
      .kv("end", exchange_end_name(r.end))
      .kv("cause", r.cause)
      .kv("route", r.route)
      .kv("service", r.service)
      .kv("bytes_in", r.bytes_in)
      .kv("bytes_out", r.bytes_out)
      .kv("duration_ms", r.duration_ms())
      .kv("attempts", static_cast<uint64_t>(r.attempt_count));
  if (!r.tls_version.empty()) line.kv("tls_version", r.tls_version).kv("tls_cipher", r.tls_cipher).kv("tls_sni", r.tls_sni);
  const AttemptRecord* last = r.last_attempt();
  for (uint8_t i = 0; last && i < r.attempt_count && i < ExchangeRecord::kMaxAttempts; ++i) {
    const AttemptRecord& a = r.attempts[i];
    const std::string n = std::to_string(i + 1);
    line.kv("attempt" + n + "_instance", a.instance)
        .kv("attempt" + n + "_connect_ms", ms_between(a.start_ns, a.connected_ns))
        .kv("attempt" + n + "_first_byte_ms", ms_between(a.start_ns, a.first_byte_ns))
        .kv("attempt" + n + "_status", static_cast<uint64_t>(a.status));
    if (*a.failure) line.kv("attempt" + n + "_failure", a.failure);
  }
}

}  // namespace berth
