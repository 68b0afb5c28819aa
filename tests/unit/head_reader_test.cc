// Empty lines before a request line (RFC 9112 section 2.2): which bytes are skipped, and a CR
// that ends one read and waits for the next.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/http/head_reader.h"

using berth::http::empty_lines;

namespace {

// Skips over each piece in turn as reads would arrive; returns the bytes left for the head
// (the CR kept back, if any, first) and the carry after the last piece.
std::string head_after(std::initializer_list<std::string> reads, bool* carried_out = nullptr) {
  bool carried = false;
  std::string head;
  for (const std::string& r : reads) {
    if (!head.empty()) {
      head += r;
      continue;
    }
    const bool carried_before = carried;
    const size_t n = empty_lines(r.data(), r.size(), carried);
    if (n < r.size()) {
      if (carried_before && carried) head.assign(1, '\r');  // the CR kept back starts the head
      head += r.substr(n);
    }
  }
  if (carried_out) *carried_out = carried;
  return head;
}

}  // namespace

TEST_CASE("empty lines: CRLF and bare LF before a request line are skipped", "[head_reader]") {
  bool carried = true;
  CHECK(head_after({"GET / HTTP/1.1\r\n\r\n"}) == "GET / HTTP/1.1\r\n\r\n");
  CHECK(head_after({"\r\nGET / HTTP/1.1\r\n\r\n"}) == "GET / HTTP/1.1\r\n\r\n");
  CHECK(head_after({"\r\n\r\n\n\r\nGET /"}) == "GET /");
  CHECK(head_after({"\r\n\r\n"}, &carried).empty());
  CHECK_FALSE(carried);
  // Only what precedes the request line: the head's own CRLFs are not touched.
  const std::string raw = "\r\nPOST / HTTP/1.1\r\n\r\n";
  bool c = false;
  CHECK(empty_lines(raw.data(), raw.size(), c) == 2);
  CHECK(empty_lines(raw.data(), 0, c) == 0);
}

TEST_CASE("empty lines: a CR that ends a read waits for the next byte", "[head_reader]") {
  bool carried = false;
  // The CRLF split over two reads is an empty line.
  CHECK(head_after({"\r", "\nGET / HTTP/1.1\r\n\r\n"}) == "GET / HTTP/1.1\r\n\r\n");
  CHECK(head_after({"\r\n\r", "\n", "\r", "\nGET /"}) == "GET /");
  CHECK(head_after({"\r\n\r"}, &carried).empty());
  CHECK(carried);
  // A CR followed by anything but LF is no empty line: it stays the head's first byte, and the
  // parser refuses the head (a request line cannot start with a CR).
  CHECK(head_after({"\r", "GET / HTTP/1.1\r\n\r\n"}) == "\rGET / HTTP/1.1\r\n\r\n");
  CHECK(head_after({"\r", "\r\nGET /"}) == "\r\r\nGET /");
  CHECK(head_after({"\r\rGET /"}) == "\r\rGET /");
  CHECK(head_after({"\r\n\rGET /"}) == "\rGET /");
  // Nothing else is skipped: spaces, tabs and NULs before a request line stay (and are refused).
  CHECK(head_after({" \r\nGET /"}) == " \r\nGET /");
  CHECK(head_after({"\tGET /"}) == "\tGET /");
  CHECK(head_after({std::string("\0\r\nGET /", 8)}) == std::string("\0\r\nGET /", 8));
}
