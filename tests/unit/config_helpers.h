// Helpers shared by the config-file tests: load YAML text as the file "t.yaml", and every error
// of a result as "file:line:column: message" lines.
#pragma once

#include <string>

#include "config/config.h"

namespace berth::config::testing {

inline LoadResult load(const std::string& yaml) { return load_string(yaml, "t.yaml"); }

inline std::string all_errors(const LoadResult& result) {
  std::string text;
  for (const Error& error : result.errors) text += error.to_string() + "\n";
  return text;
}

}  // namespace berth::config::testing
