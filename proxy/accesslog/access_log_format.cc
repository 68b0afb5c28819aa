#include "proxy/accesslog/access_log_format.h"

#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "proxy/base/time_text.h"
#include "proxy/base/utf8.h"
#include "proxy/model/route_table.h"

namespace berth::accesslog {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_uint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// --- writing through a pointer into room reserved beforehand (the callers bound the length) ---

template <size_t N>
char* put(char* p, const char (&literal)[N]) {
  std::memcpy(p, literal, N - 1);
  return p + N - 1;
}

char* put_uint(char* p, uint64_t v) { return std::to_chars(p, p + 20, v).ptr; }

// Milliseconds with three decimals ("12.345"); negative durations (clock oddities) as 0.
char* put_ms(char* p, int64_t ns) {
  if (ns < 0) ns = 0;
  const auto us = static_cast<uint64_t>(ns) / 1000;
  p = put_uint(p, us / 1000);
  const auto frac = static_cast<unsigned>(us % 1000);
  p[0] = '.';
  p[1] = static_cast<char>('0' + frac / 100);
  p[2] = static_cast<char>('0' + frac / 10 % 10);
  p[3] = static_cast<char>('0' + frac % 10);
  return p + 4;
}

// A duration between two monotonic stamps of an attempt, or null when either did not happen.
char* put_span_ms(char* p, int64_t from_ns, int64_t to_ns) {
  if (from_ns == 0 || to_ns == 0) return put(p, "null");
  return put_ms(p, to_ns - from_ns);
}

// Bytes a JSON string of n input bytes may take: quotes, "..." and 6 bytes per input byte
// ("\u001f", "\ufffd").
constexpr size_t json_string_bound(size_t n) { return 2 + 3 + 6 * n; }

// Whether any of the 8 bytes in w needs more than a copy: below 0x20, 0x7F or above, '"' or '\'.
// (The usual SWAR tests; a false "yes" only sends those bytes through the byte-wise path.)
inline bool word_needs_care(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHigh = 0x8080808080808080ULL;
  const uint64_t below_space = (w - kOnes * 0x20) & ~w;
  const uint64_t from_del = (w + kOnes * (0x7F - 0x7E)) | w;  // high bit set from 0x7F up
  const uint64_t q = w ^ (kOnes * '"');
  const uint64_t b = w ^ (kOnes * '\\');
  const uint64_t quote = (q - kOnes) & ~q;
  const uint64_t backslash = (b - kOnes) & ~b;
  return ((below_space | from_del | quote | backslash) & kHigh) != 0;
}

// Bytes copied as they are: printable ASCII other than '"' and '\'.
constexpr std::array<bool, 256> kPlainByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x7F; ++c) t[static_cast<size_t>(c)] = c != '"' && c != '\\';
  return t;
}();
inline bool byte_plain(unsigned char c) { return kPlainByte[c]; }

// See append_json_string. Writes at most json_string_bound(s.size()) bytes.
char* put_json_string(char* p, std::string_view s, size_t max_bytes) {
  *p++ = '"';
  const size_t n = s.size();
  // Printable ASCII other than '"' and '\' is copied as it is, in runs; a run never passes the
  // limit, so the byte-wise path below decides about "..." exactly as for any other character.
  const size_t run_limit = max_bytes && max_bytes < n ? max_bytes : n;
  size_t i = 0;
  while (i < n) {
    const size_t run_start = i;
    while (i + 8 <= run_limit) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (word_needs_care(w)) break;
      std::memcpy(p, &w, 8);
      p += 8;
      i += 8;
    }
    // Fewer than 8 left in a run of 8 or more: the last 8 bytes, overlapping what was just copied
    // (plain bytes, written one for one), in one go when they are all plain.
    if (i < run_limit && run_limit - run_start >= 8 && run_limit - i < 8) {
      uint64_t w;
      std::memcpy(&w, s.data() + run_limit - 8, 8);
      if (!word_needs_care(w)) {
        std::memcpy(p - (i - (run_limit - 8)), &w, 8);
        p += run_limit - i;
        i = run_limit;
      }
    }
    while (i < run_limit && byte_plain(static_cast<unsigned char>(s[i]))) *p++ = s[i++];
    if (i == n) break;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t len = utf8::char_len(s, i);
    const size_t taken = len ? len : 1;
    if (max_bytes && i + taken > max_bytes) {
      p = put(p, "...");
      break;
    }
    if (len == 0) {
      p = put(p, "\\ufffd");  // not UTF-8: the replacement character
    } else if (c == '"' || c == '\\') {
      *p++ = '\\';
      *p++ = static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      switch (c) {
        case '\n': p = put(p, "\\n"); break;
        case '\r': p = put(p, "\\r"); break;
        case '\t': p = put(p, "\\t"); break;
        case '\b': p = put(p, "\\b"); break;
        case '\f': p = put(p, "\\f"); break;
        default:
          p = put(p, "\\u00");
          *p++ = kHex[c >> 4];
          *p++ = kHex[c & 15];
      }
    } else {
      std::memcpy(p, s.data() + i, len);
      p += len;
    }
    i += taken;
  }
  *p++ = '"';
  return p;
}

struct CivilTime {
  int year, month, day, hour, minute, second, millis;
};

CivilTime civil(int64_t unix_ns) {
  int64_t ms = unix_ns / 1'000'000;
  if (ms < 0) ms = 0;
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
          static_cast<int>(ms % 1000)};
}

void append_digits(std::string& out, int value, int width) {
  char buf[8];
  for (int i = width - 1; i >= 0; --i, value /= 10) buf[i] = static_cast<char>('0' + value % 10);
  out.append(buf, static_cast<size_t>(width));
}

// A quoted field of the combined format: nginx's escaping (\" \\ and \xHH for the rest).
void append_combined_quoted(std::string& out, std::string_view s) {
  out.push_back('"');
  if (s.empty()) out.push_back('-');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c >= 0x7F) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
}

std::string_view host_of(std::string_view address) {
  // "1.2.3.4:5" -> "1.2.3.4"; "[::1]:5" -> "::1"; without a port ("1.2.3.4", "2001:db8::9",
  // named by X-Forwarded-For) as it is.
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    return close == std::string_view::npos ? address : address.substr(1, close - 1);
  }
  size_t colon = address.rfind(':');
  if (colon != address.find(':')) return address;  // a bare IPv6 address
  return colon == std::string_view::npos ? address : address.substr(0, colon);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s, size_t max_bytes) {
  const size_t at = out.size();
  out.resize(at + json_string_bound(s.size()));
  char* end = put_json_string(out.data() + at, s, max_bytes);
  out.resize(static_cast<size_t>(end - out.data()));
}

void append_json_line(std::string& out, const ExchangeRecord& r, size_t max_field) {
  const AttemptRecord* last = r.last_attempt();
  const size_t kept = r.attempt_count < ExchangeRecord::kMaxAttempts ? r.attempt_count : ExchangeRecord::kMaxAttempts;
  const std::string_view last_instance = last ? last->instance : std::string_view();
  const std::string_view last_container = last ? last->container : std::string_view();
  const std::string_view cause = r.cause ? r.cause : "";
  const std::string_view end_name = exchange_end_name(r.end);

  // An upper bound of the line's length: the fixed text, numbers at their widest, every string
  // escaped at its worst. The line is written through a pointer into that room, then cut to size.
  size_t bound = 512 + 64 + kRfc3339MsBytes;  // 64: the TLS field names
  for (size_t n : {r.request_id.size(), r.client.size(), r.method.size(), r.host.size(), r.path.size(),
                   r.query.size(), r.route.size(), r.service.size(), last_instance.size(), last_container.size(),
                   cause.size(), end_name.size(), r.user_agent.size(), r.referer.size(), r.tls_version.size(),
                   r.tls_cipher.size(), r.tls_sni.size()})
    bound += json_string_bound(n);
  for (size_t i = 0; i < kept; ++i) {
    const AttemptRecord& a = r.attempts[i];
    bound += 256 + json_string_bound(a.instance.size()) + json_string_bound(a.container.size()) +
             json_string_bound(a.failure ? std::strlen(a.failure) : 0);
  }
  const size_t at = out.size();
  out.resize(at + bound);
  char* p = out.data() + at;

  p = put(p, "{\"time\":\"");
  p = berth::put_rfc3339_ms(p, r.start_unix_ns / 1000000);
  p = put(p, "\",\"request_id\":");
  p = put_json_string(p, r.request_id, max_field);
  p = put(p, ",\"client\":");
  p = put_json_string(p, r.client, 0);
  p = put(p, ",\"method\":");
  p = put_json_string(p, r.method, max_field);
  p = put(p, ",\"host\":");
  p = put_json_string(p, r.host, max_field);
  p = put(p, ",\"path\":");
  p = put_json_string(p, r.path, max_field);
  p = put(p, ",\"query\":");
  p = put_json_string(p, r.query, max_field);
  if (!r.head_parsed) {
    p = put(p, ",\"protocol\":\"\"");  // the request head never parsed: its version is unknown
  } else {
    p = put(p, ",\"protocol\":\"HTTP/1.");
    p = put_uint(p, r.version_minor);
    *p++ = '"';
  }
  p = put(p, ",\"status\":");
  p = put_uint(p, r.status);
  p = put(p, ",\"bytes_in\":");
  p = put_uint(p, r.bytes_in);
  p = put(p, ",\"bytes_out\":");
  p = put_uint(p, r.bytes_out);
  p = put(p, ",\"duration_ms\":");
  p = put_ms(p, r.end_ns - r.start_ns);
  p = put(p, ",\"route\":");
  p = put_json_string(p, r.route, 0);
  p = put(p, ",\"service\":");
  p = put_json_string(p, r.service, 0);
  p = put(p, ",\"instance\":");
  p = put_json_string(p, last_instance, 0);
  p = put(p, ",\"container\":");
  p = put_json_string(p, last_container, 0);
  p = put(p, ",\"attempts\":");
  p = put_uint(p, r.attempt_count);
  p = put(p, ",\"tries\":[");
  for (size_t i = 0; i < kept; ++i) {
    const AttemptRecord& a = r.attempts[i];
    if (i) *p++ = ',';
    p = put(p, "{\"instance\":");
    p = put_json_string(p, a.instance, 0);
    p = put(p, ",\"container\":");
    p = put_json_string(p, a.container, 0);
    p = put(p, ",\"connect_ms\":");
    p = put_span_ms(p, a.start_ns, a.connected_ns);
    p = put(p, ",\"first_byte_ms\":");
    p = put_span_ms(p, a.start_ns, a.first_byte_ns);
    p = put(p, ",\"status\":");
    p = put_uint(p, a.status);
    p = a.reused ? put(p, ",\"reused\":true") : put(p, ",\"reused\":false");
    p = put(p, ",\"failure\":");
    p = put_json_string(p, a.failure ? a.failure : "", 0);
    *p++ = '}';
  }
  p = put(p, "],\"cause\":");
  p = put_json_string(p, cause, 0);
  p = put(p, ",\"end\":");
  p = put_json_string(p, end_name, 0);
  p = put(p, ",\"user_agent\":");
  p = put_json_string(p, r.user_agent, max_field);
  p = put(p, ",\"referer\":");
  p = put_json_string(p, r.referer, max_field);
  if (!r.tls_version.empty()) {
    p = put(p, ",\"tls_version\":");
    p = put_json_string(p, r.tls_version, 0);
    p = put(p, ",\"tls_cipher\":");
    p = put_json_string(p, r.tls_cipher, 0);
    p = put(p, ",\"tls_sni\":");
    p = put_json_string(p, r.tls_sni, max_field);
  }
  p = put(p, "}\n");
  out.resize(static_cast<size_t>(p - out.data()));
}

void append_combined_line(std::string& out, const ExchangeRecord& r) {
  const std::string_view client = host_of(r.client);
  out.append(client.empty() ? std::string_view("-") : client);
  out += " - - [";
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const CivilTime t = civil(r.start_unix_ns);
  append_digits(out, t.day, 2);
  out.push_back('/');
  out += kMonths[(t.month - 1) % 12];
  out.push_back('/');
  append_digits(out, t.year, 4);
  out.push_back(':');
  append_digits(out, t.hour, 2);
  out.push_back(':');
  append_digits(out, t.minute, 2);
  out.push_back(':');
  append_digits(out, t.second, 2);
  out += " +0000] ";
  if (!r.head_parsed) {
    out += "\"-\"";
  } else {
    std::string request = r.method;
    request.push_back(' ');
    request += r.path;
    if (!r.query.empty()) {
      request.push_back('?');
      request += r.query;
    }
    request += " HTTP/1.";
    request.push_back(static_cast<char>('0' + r.version_minor % 10));
    append_combined_quoted(out, request);
  }
  out.push_back(' ');
  append_uint(out, r.status);
  out.push_back(' ');
  if (r.bytes_out == 0) out.push_back('-');
  else append_uint(out, r.bytes_out);
  out.push_back(' ');
  append_combined_quoted(out, r.referer);
  out.push_back(' ');
  append_combined_quoted(out, r.user_agent);
  out.push_back('\n');
}

void append_syslog_header(std::string& out, int64_t unix_ns, std::string_view hostname, int pid) {
  out += "<134>1 ";  // facility local0 (16) * 8 + severity info (6)
  berth::append_rfc3339_ms(out, unix_ns / 1000000);
  out.push_back(' ');
  // HOSTNAME is 1-255 printable ASCII characters.
  size_t n = 0;
  for (unsigned char c : hostname) {
    if (n == 255) break;
    if (c > 32 && c < 127) out.push_back(static_cast<char>(c)), ++n;
  }
  if (n == 0) out.push_back('-');
  out += " berth ";
  append_uint(out, static_cast<uint64_t>(pid > 0 ? pid : 0));
  out += " access - ";
}

void append_syslog_message(std::string& out, std::string_view header, std::string_view line,
                           const ExchangeRecord& record, bool json) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  std::string shorter;
  // Request strings are what makes a record long: shorten them, and keep valid JSON.
  for (size_t max_field : {size_t{512}, size_t{64}}) {
    if (!json || header.size() + line.size() <= kSyslogMaxMessage) break;
    shorter.clear();
    append_json_line(shorter, record, max_field);
    line = shorter;
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  }
  const size_t start = out.size();
  out.append(header);
  size_t room = kSyslogMaxMessage > header.size() ? kSyslogMaxMessage - header.size() : 0;
  if (line.size() > room) {
    size_t cut = room;
    if (json) {
      // Back off to a character boundary: never leave half a UTF-8 sequence.
      while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80) --cut;
    } else {
      // A combined line is ASCII, its other bytes written as \xHH: never leave half an escape
      // (\", \\ or \xHH; every backslash in it starts one).
      cut = 0;
      while (cut < room) {
        const size_t step = line[cut] != '\\' ? 1 : cut + 1 < line.size() && line[cut + 1] == 'x' ? 4 : 2;
        if (cut + step > room) break;
        cut += step;
      }
    }
    line = line.substr(0, cut);
  }
  out.append(line);
  for (size_t i = start; i < out.size(); ++i)
    if (out[i] == '\n') out[i] = ' ';
  out.push_back('\n');
}

}  // namespace berth::accesslog
