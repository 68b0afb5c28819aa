// Helpers shared by the config-file tests: load YAML text as the file "t.yaml", every error of a
// result as "file:line:column: message" lines, and a check that a text is refused with exactly
// one error at a given place.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#include "config/config.h"

namespace berth::config::testing {

inline LoadResult load(const std::string& yaml) { return load_string(yaml, "t.yaml"); }

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
