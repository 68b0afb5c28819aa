// `berth --version`: the project version from CMakeLists.txt and the git commit it was built from.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <regex>

#include "env.h"

using namespace it;

TEST_CASE("berth --version prints the project version and the git commit", "[version]") {
  std::string out, err;
  auto st = run_berth({"--version"}, &out, &err);
  INFO(out << err);
  REQUIRE(exited_with(st, 0));
  std::smatch m;
  std::string cmake = read_file(std::string(BERTH_SOURCE_DIR) + "/CMakeLists.txt");
  REQUIRE(std::regex_search(cmake, m, std::regex(R"(project\(berth VERSION ([0-9.]+))")));
  const std::string version = m[1];
  REQUIRE(std::regex_match(out, m, std::regex(R"(berth ([0-9.]+) \(commit ([^)]+)\)\n)")));
  CHECK(m[1] == version);
  // From a git checkout: the commit (git describe, "-dirty" with local changes); else "unknown".
  if (::access((std::string(BERTH_SOURCE_DIR) + "/.git").c_str(), F_OK) == 0)
    CHECK(std::regex_match(m[2].str(), std::regex(R"([0-9a-f]{7,40}(-dirty)?|v?[0-9].*-g[0-9a-f]+(-dirty)?)")));
  else
    CHECK(m[2] == "unknown");
}
