// berth-bench-crypt_hash: makes a bcrypt hash of a password for an htpasswd file with libcrypt,
// as Berth's tests do (tests/integration/basic_auth_test.cc), and times Berth's own check of a
// wrong password against it (berth::verify_password, what a worker's thread pool runs per
// request). Used by bench/access.sh.
//
// Usage: berth-bench-crypt_hash --password P [--cost 5] [--checks 5]
//
// Prints
//   HASH <hash>
//   CHECK_US median=<us> min=<us> max=<us>
// (the wall time of --checks checks, run one after the other on the calling thread).
#include <crypt.h>
#include <time.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "proxy/filter/basic_auth.h"

namespace {

int64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

[[noreturn]] void usage() {
  fprintf(stderr, "usage: berth-bench-crypt_hash --password P [--cost 5] [--checks 5]\n");
  exit(64);
}

}  // namespace

int main(int argc, char** argv) {
  std::string password;
  int cost = 5, checks = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) usage();
    if (a == "--password") password = argv[++i];
    else if (a == "--cost") cost = atoi(argv[++i]);
    else if (a == "--checks") checks = atoi(argv[++i]);
    else usage();
  }
  if (password.empty() || cost < 4 || cost > 31 || checks < 1) usage();

  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", unsigned(cost), nullptr, 0, setting, sizeof setting) == nullptr) {
    perror("crypt_gensalt_rn");
    return 1;
  }
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), setting, data.get());
  if (out == nullptr || out[0] == '*') {
    fprintf(stderr, "crypt_r failed\n");
    return 1;
  }
  const std::string hash = out;
  if (!berth::verify_password(password, hash)) {
    fprintf(stderr, "berth::verify_password rejects the hash just made\n");
    return 1;
  }
  std::vector<int64_t> took;
  for (int i = 0; i < checks; ++i) {
    const int64_t t0 = now_us();
    if (berth::verify_password(password + "-wrong", hash)) return 1;
    took.push_back(now_us() - t0);
  }
  std::sort(took.begin(), took.end());
  printf("HASH %s\nCHECK_US median=%lld min=%lld max=%lld\n", hash.c_str(), (long long)took[took.size() / 2],
         (long long)took.front(), (long long)took.back());
  return 0;
}
