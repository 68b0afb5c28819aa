// Helpers shared by the config-file tests: load YAML text as the file "t.yaml", every error of a
// result as "file:line:column: message" lines, and a check that a text is refused with exactly
// one error at a given place.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "config/config.h"

namespace berth::config::testing {

inline LoadResult load(const std::string& yaml) { return load_string(yaml, "t.yaml"); }

// A redirect route beside two service-backed ones, in this order: r-a (a.test) to s-a with one
// instance, 10.0.0.1:80; r-redir (r.test), answered by Berth itself (no service); r-empty
// (e.test) to s-empty, which has none (it answers 503).
constexpr const char kRedirectBesideServices[] =
    "listeners: [\"127.0.0.1:8080\"]\n"
    "routes:\n"
    "  - {name: r-a, host: a.test, service: s-a}\n"
    "  - {name: r-redir, host: r.test, redirect: {to: \"http://x.test/\"}}\n"
    "  - {name: r-empty, host: e.test, service: s-empty}\n"
    "services:\n"
    "  s-a: {endpoints: [\"10.0.0.1:80\"]}\n"
    "  s-empty: {endpoints: []}\n";

inline std::string all_errors(const LoadResult& result) {
  std::string text;
  for (const Error& error : result.errors) text += error.to_string() + "\n";
  return text;
}

// One refusal: the YAML (after whatever the test puts before it), where, and a part of the message.
struct PlacedError {
  std::string yaml;
  int line, column;
  std::string message;
};

inline void check_refused_at(const std::string& yaml, const PlacedError& expected) {
  LoadResult result = load(yaml);
  INFO(yaml << all_errors(result));
  REQUIRE_FALSE(result.ok());
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].line == expected.line);
  CHECK(result.errors[0].column == expected.column);
  CHECK(result.errors[0].message.find(expected.message) != std::string::npos);
}

}  // namespace berth::config::testing
