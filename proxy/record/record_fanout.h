// A RecordSink that hands each record to several sinks in turn (metrics, access log, the debug
// exchange log). A worker has one record sink; the control side gives it one of these when more
// than one consumer reads records. Not owning: the sinks must outlive it.
#pragma once

#include <vector>

#include "proxy/record/exchange_record.h"

namespace berth {

class RecordFanout final : public RecordSink {
 public:
  void add(RecordSink* sink) {
    if (!sink) return;
    sinks_.push_back(sink);
    details_ = details_ || sink->wants_request_details();
  }
  bool empty() const { return sinks_.empty(); }
  size_t size() const { return sinks_.size(); }
  RecordSink* only() const { return sinks_.size() == 1 ? sinks_.front() : nullptr; }
  bool wants_request_details() const override { return details_; }
  void on_exchange(const ExchangeRecord& record) override {
    for (RecordSink* s : sinks_) s->on_exchange(record);
  }
  void on_mirror(std::string_view route, std::string_view service, MirrorResult result) override {
    for (RecordSink* s : sinks_) s->on_mirror(route, service, result);
  }

 private:
  std::vector<RecordSink*> sinks_;
  bool details_ = false;
};

}  // namespace berth
