// Headless Chromium (Debian `chromium`) for the status-page tests: load a page, let its timers
// run for a virtual-time budget, then dump the DOM or take a screenshot. Chromium exits 0 even
// when the page fails to load, so callers check the output, never the exit code. No skipping:
// when the browser is missing the result says so and the test fails.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>

#include <string>
#include <vector>

#include "harness.h"

namespace it {

inline const char* const kChromium = "/usr/bin/chromium";

struct BrowserRun {
  std::string output;  // the DOM (dump) or "" (screenshot)
  std::string error;   // why it failed; "" when the browser produced what was asked
  std::string log;     // the browser's stderr, for failure messages
};

// Runs chromium with the flags that work here as root in a container, plus `extra`.
inline BrowserRun run_chromium(const std::vector<std::string>& extra, const std::string& url,
                               const std::string& expect_file = "") {
  BrowserRun run;
  if (::access(kChromium, X_OK) != 0) {
    run.error = std::string(kChromium) + " not found: install the Debian package chromium "
                "(scripts/install-deps.sh --docker)";
    return run;
  }
  TempDir dir;
  std::vector<std::string> argv{kChromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                "--disable-background-networking", "--no-first-run", "--hide-scrollbars",
                                "--user-data-dir=" + dir.file("profile")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  Process p(argv, dir.file("out"), dir.file("err"));
  if (!p.started()) {
    run.error = "cannot start chromium: " + p.spawn_error();
    return run;
  }
  if (!p.wait_exit(std::chrono::seconds(90))) {
    p.terminate();
    run.error = "chromium did not finish within 90 s";
  }
  run.output = p.out();
  run.log = tail(p.err(), 3000);
  if (!run.error.empty()) return run;
  if (run.log.find("Page load failed") != std::string::npos) run.error = "the page did not load";
  else if (expect_file.empty() && run.output.empty()) run.error = "chromium wrote no DOM";
  else if (!expect_file.empty() && read_file(expect_file).size() < 8) run.error = "chromium wrote no screenshot";
  return run;
}

// The DOM after `budget_ms` of virtual time (past the page's first update).
inline BrowserRun chromium_dom(const std::string& url, int budget_ms = 3000) {
  return run_chromium({"--virtual-time-budget=" + std::to_string(budget_ms), "--dump-dom"}, url);
}

// A PNG of the page at width x height after `budget_ms` of virtual time.
inline BrowserRun chromium_screenshot(const std::string& url, const std::string& png_path, int width, int height,
                                      int budget_ms = 3000) {
  ::unlink(png_path.c_str());
  return run_chromium({"--virtual-time-budget=" + std::to_string(budget_ms),
                       "--window-size=" + std::to_string(width) + "," + std::to_string(height),
                       "--screenshot=" + png_path},
                      url, png_path);
}

inline bool is_png(const std::string& bytes) {
  return bytes.size() > 24 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n", 8) == 0;
}

// Width and height from a PNG's IHDR.
inline std::pair<unsigned, unsigned> png_size(const std::string& bytes) {
  if (!is_png(bytes)) return {0, 0};
  auto be32 = [&](size_t at) {
    return (unsigned(uint8_t(bytes[at])) << 24) | (unsigned(uint8_t(bytes[at + 1])) << 16) |
           (unsigned(uint8_t(bytes[at + 2])) << 8) | unsigned(uint8_t(bytes[at + 3]));
  };
  return {be32(16), be32(20)};
}

// Where a test leaves its screenshot: $BERTH_SCREENSHOT_DIR, else the working directory (ctest
// runs tests in the build directory).
inline std::string screenshot_path(const std::string& name) {
  const char* dir = std::getenv("BERTH_SCREENSHOT_DIR");
  std::string base = dir && *dir ? dir : ".";
  return base + "/" + name;
}

}  // namespace it
