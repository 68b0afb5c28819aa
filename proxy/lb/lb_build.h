// Inside the lb module: the policy-specific parts of an LbTable, each next to its selector
// (lb_least_request.cc, lb_ring_hash.cc, lb_sticky.cc). make_lb_table (lb.cc) calls them once
// the weights are in.
#pragma once

#include "proxy/lb/lb.h"

namespace berth {

void fill_cumulative(LbTable& table);
void fill_ring(LbTable& table, const Service& service);
void fill_ids(LbTable& table, const Service& service);
// service.lb_table when it fits the service, else a table of its own.
std::shared_ptr<const LbTable> table_of(const Service& service);

}  // namespace berth
