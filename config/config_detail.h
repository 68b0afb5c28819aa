// Internal to config/: explanations for values the public parse_* helpers reject, so the
// loader can tell a person what is wrong instead of just "invalid". Not for use outside config/.
#pragma once

#include <string>
#include <string_view>

namespace berth::config::detail {

// Empty when parse_socket_address(text, allow_port_zero) would succeed, else the reason.
std::string address_problem(std::string_view text, bool allow_port_zero);

// Empty when normalize_host_pattern(text) would succeed, else the reason.
std::string host_pattern_problem(std::string_view text);

}  // namespace berth::config::detail
