// A RecordSink that writes one `event=exchange` log line per record at debug level: what each
// request did, for an operator running with --log-level debug (and for the tests that check
// every ending leaves exactly one record). The access log proper is its own sink.
#pragma once

#include "proxy/record/exchange_record.h"

namespace berth {

class LogRecordSink final : public RecordSink {
 public:
  void on_exchange(const ExchangeRecord& record) override;
};

}  // namespace berth
