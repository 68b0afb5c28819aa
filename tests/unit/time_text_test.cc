#include <catch2/catch.hpp>

#include <string>
#include <utility>

#include "proxy/base/time_text.h"

using berth::append_rfc3339_ms;
using berth::rfc3339_ms;

TEST_CASE("time text: RFC 3339 UTC with milliseconds", "[base][time]") {
  CHECK(rfc3339_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(rfc3339_ms(951'825'600'999) == "2000-02-29T12:00:00.999Z");
  CHECK(rfc3339_ms(1'796'200'000'123) == "2026-12-02T08:26:40.123Z");
  // Before the epoch: floors to the earlier second, as gmtime does.
  CHECK(rfc3339_ms(-1) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("time text: the cached second is replaced when the second changes", "[base][time]") {
  std::string out;
  append_rfc3339_ms(out, 1'796'200'000'001);
  append_rfc3339_ms(out, 1'796'200'000'999);
  append_rfc3339_ms(out, 1'796'200'001'000);
  append_rfc3339_ms(out, 1'796'199'999'999);
  CHECK(out ==
        "2026-12-02T08:26:40.001Z"
        "2026-12-02T08:26:40.999Z"
        "2026-12-02T08:26:41.000Z"
        "2026-12-02T08:26:39.999Z");
}

TEST_CASE("time text: across seconds and days, back and forth", "[base][time]") {
  const int64_t base = 951'825'599'998;  // 2000-02-29T11:59:59.998Z
  const std::pair<int64_t, const char*> cases[] = {
      {base, "2000-02-29T11:59:59.998Z"},
      {base + 1, "2000-02-29T11:59:59.999Z"},
      {base + 2, "2000-02-29T12:00:00.000Z"},
      {base, "2000-02-29T11:59:59.998Z"},
      {base + 86'400'000, "2000-03-01T11:59:59.998Z"},
      {0, "1970-01-01T00:00:00.000Z"},
  };
  for (const auto& [ms, text] : cases) CHECK(rfc3339_ms(ms) == text);
  char buf[berth::kRfc3339MsBytes];
  CHECK(berth::put_rfc3339_ms(buf, base) == buf + sizeof buf);
  CHECK(std::string(buf, sizeof buf) == "2000-02-29T11:59:59.998Z");
}
