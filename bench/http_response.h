// The head of an HTTP/1.1 response as the bench clients need it (bench/idle_conns.cc,
// bench/paced.cc, bench/tls_paced.cc): status, framing and whether the server closes the connection after it.
// Measurement code only; nothing here is part of Berth.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

namespace bench {

inline bool ieq_prefix(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    if (c != lower_prefix[i]) return false;
  }
  return true;
}

struct ResponseHead {
  int status = 0;
  long long content_length = -1;  // -1: none given
  bool chunked = false;
  bool closes = false;  // "Connection: close"
  size_t body_start = 0;
};

// The response head at the start of `in`: 1 = complete (`head` filled), 0 = need more bytes,
// -1 = not HTTP or over 64 KiB (`reason` set).
inline int parse_response_head(const std::string& in, ResponseHead* head, std::string* reason) {
  const size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return in.size() > 64 * 1024 ? (*reason = "huge header", -1) : 0;
  std::string_view h(in.data(), end + 2);
  if (h.size() < 12 || h.substr(0, 5) != "HTTP/") return *reason = "not HTTP", -1;
  *head = ResponseHead{};
  head->status = atoi(std::string(h.substr(9, 3)).c_str());
  head->body_start = end + 4;
  size_t p = h.find("\r\n") + 2;
  while (p < h.size()) {
    const size_t e = h.find("\r\n", p);
    std::string_view field = h.substr(p, e - p);
    p = e + 2;
    if (ieq_prefix(field, "content-length:")) {
      head->content_length = atoll(std::string(field.substr(15)).c_str());
    } else if (ieq_prefix(field, "transfer-encoding:")) {
      head->chunked = field.find("chunked") != std::string_view::npos;
    } else if (ieq_prefix(field, "connection:")) {
      head->closes = field.find("close") != std::string_view::npos;
    }
  }
  return 1;
}

}  // namespace bench
