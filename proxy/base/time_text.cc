#include "proxy/base/time_text.h"

#include <cstring>
#include <ctime>

namespace berth {
namespace {

// "YYYY-MM-DDTHH:MM:SS." of the last second this thread formatted.
struct SecondText {
  int64_t second = INT64_MIN;
  char text[20];
};
thread_local SecondText t_second;

void put_digits(char* at, int value, int width) {
  for (int i = width - 1; i >= 0; --i, value /= 10) at[i] = static_cast<char>('0' + value % 10);
}

void fill(SecondText& s, int64_t second) {
  const time_t t = static_cast<time_t>(second);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char* p = s.text;
  put_digits(p, tm.tm_year + 1900, 4);
  p[4] = '-';
  put_digits(p + 5, tm.tm_mon + 1, 2);
  p[7] = '-';
  put_digits(p + 8, tm.tm_mday, 2);
  p[10] = 'T';
  put_digits(p + 11, tm.tm_hour, 2);
  p[13] = ':';
  put_digits(p + 14, tm.tm_min, 2);
  p[16] = ':';
  put_digits(p + 17, tm.tm_sec, 2);
  p[19] = '.';
  s.second = second;
}

}  // namespace

char* put_rfc3339_ms(char* out, int64_t unix_ms) {
  int64_t second = unix_ms / 1000;
  int millis = static_cast<int>(unix_ms % 1000);
  if (millis < 0) {
    millis += 1000;
    --second;
  }
  if (t_second.second != second) fill(t_second, second);
  std::memcpy(out, t_second.text, sizeof t_second.text);
  put_digits(out + 20, millis, 3);
  out[23] = 'Z';
  return out + kRfc3339MsBytes;
}

void append_rfc3339_ms(std::string& out, int64_t unix_ms) {
  char text[kRfc3339MsBytes];
  put_rfc3339_ms(text, unix_ms);
  out.append(text, sizeof text);
}

}  // namespace berth
