// Access-log records: one line per finished exchange, formatted from the ExchangeRecord on the
// worker thread that ran it. Pure functions (no I/O), so the tests check them byte for byte.
//
// JSON: one object per line with the fields README.md documents (time, request_id, client, ...,
// tries[]). Strings are escaped by hand: `"` `\` and control bytes as JSON escapes, valid UTF-8
// copied, any byte that is not part of valid UTF-8 replaced by U+FFFD, so a line is always valid
// JSON whatever the client sent. Combined: the Apache/nginx "combined" format.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/record/exchange_record.h"

namespace berth::accesslog {

// Appends s as a JSON string (with its quotes). max_bytes > 0: at most that many input bytes are
// taken (cut at a UTF-8 character boundary) and "..." is added when some were left out.
void append_json_string(std::string& out, std::string_view s, size_t max_bytes = 0);

// One JSON line, ending in '\n'. max_field > 0 shortens the request-controlled strings (path,
// query, user_agent, referer, host, request_id) to that many bytes each (see append_json_string).
void append_json_line(std::string& out, const ExchangeRecord& record, size_t max_field = 0);

// One combined-format line, ending in '\n':
//   client - - [02/Dec/2026:07:54:36 +0000] "GET /path?query HTTP/1.1" 200 1234 "referer" "user-agent"
// The client without its port; the size is every response byte sent (head included, "-" for 0);
// `"` `\` and bytes outside printable ASCII in quoted fields are written as \" \\ and \xHH.
void append_combined_line(std::string& out, const ExchangeRecord& record);

// RFC 5424 syslog header for one access-log message (facility local0, severity info):
//   "<134>1 2026-12-02T07:54:36.123Z HOST berth PID access - "
// The message (the line without its '\n') follows it.
void append_syslog_header(std::string& out, int64_t unix_ns, std::string_view hostname, int pid);

// The largest syslog message rsyslog takes by default (header included); longer ones are cut.
inline constexpr size_t kSyslogMaxMessage = 8096;

// Appends header + line (without the line's final '\n') + '\n', at most kSyslogMaxMessage bytes
// before the '\n': a JSON record too long is formatted again with shortened request strings, so it
// stays valid JSON; whatever is still too long is cut at a UTF-8 boundary (a combined line: never
// inside an escape). Any '\n' inside the message (never produced by the formats here) would split
// it, so none is left in.
void append_syslog_message(std::string& out, std::string_view header, std::string_view line,
                           const ExchangeRecord& record, bool json);

}  // namespace berth::accesslog
