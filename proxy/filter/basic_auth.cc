#include "proxy/filter/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "proxy/base/background.h"
#include "proxy/base/base64.h"
#include "proxy/http/http_head.h"

namespace berth {
namespace {

BasicAuthFilter::Digest digest_of(const std::string& user, const std::string& password) {
  BasicAuthFilter::Digest d{};
  std::string material = user;
  material.push_back('\0');
  material += password;
  unsigned int len = 0;
  EVP_Digest(material.data(), material.size(), d.data(), &len, EVP_sha256(), nullptr);
  OPENSSL_cleanse(material.data(), material.size());
  return d;
}

class BasicAuthState final : public FilterState {
 public:
  std::shared_ptr<BasicAuthFilter::Shared> shared = std::make_shared<BasicAuthFilter::Shared>();
};

// One password check, run on a background thread.
struct Check {
  FilterWaiter waiter;
  std::shared_ptr<BasicAuthFilter::Shared> shared;
  BasicAuthFilter::Digest digest;
  std::string password;
  std::string hash;
  bool known_user = false;
  bool cheaper = false;  // a known user whose hash costs less than the costliest entry's
  std::string costliest_setting;
  std::shared_ptr<std::atomic<int64_t>> costliest_ns;
  bool ok = false;
  bool forward_authorization = false;
  std::string challenge;
};

// Rough work of one check against `hash`, in SHA-512 crypt rounds (about 0.5 us each; bcrypt's
// and yescrypt's scales measured against them with libxcrypt), to find a file's costliest entry.
double hash_work(std::string_view hash) {
  static constexpr std::string_view kItoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  if (hash.starts_with("$2")) {  // "$2b$12$": 2^12 rounds of about 200 each
    const int cost = hash.size() > 6 ? (hash[4] - '0') * 10 + (hash[5] - '0') : 0;
    return 200.0 * std::ldexp(1.0, std::clamp(cost, 4, 31));
  }
  if (hash.starts_with("$6$")) {  // "$6$rounds=N$", 5000 when not said
    constexpr std::string_view kRounds = "$6$rounds=";
    uint64_t rounds = 5000;
    if (hash.starts_with(kRounds)) std::from_chars(hash.data() + kRounds.size(), hash.data() + hash.size(), rounds);
    return static_cast<double>(rounds);
  }
  // yescrypt as libcrypt makes it, "$y$j" + N + r + "$": 80000 at its default "j9T", twice as
  // much per step of N, in proportion to r. Other parameters count as the default.
  double work = 80000.0;
  if (hash.size() > 7 && hash[3] == 'j' && hash[6] == '$') {
    const size_t n = kItoa64.find(hash[4]), r = kItoa64.find(hash[5]);
    if (n != std::string_view::npos && r != std::string_view::npos)
      work *= std::ldexp(1.0, static_cast<int>(n) - 11) * static_cast<double>(r + 1) / 32.0;
  }
  return work;
}

// `hash` without the hash: what crypt takes as setting (kind, cost, salt).
std::string setting_of(std::string_view hash) {
  if (hash.starts_with("$2")) return std::string(hash.substr(0, 29));  // "$2b$12$" + 22 of salt
  return std::string(hash.substr(0, hash.rfind('$')));
}

// On a background thread: the check, and for a cheaper entry's failure the wait that makes its
// 401 as slow as an unknown user's (the first time, a real check at the costliest cost, which
// also measures it).
void run_check(Check& c) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  c.ok = verify_password(c.password, c.hash) && c.known_user;
  auto took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
  bool measured = !c.cheaper;
  if (c.cheaper && !c.ok) {
    if (const int64_t costliest = c.costliest_ns->load(std::memory_order_relaxed); costliest == 0) {
      const auto again = Clock::now();
      verify_password(c.password, c.costliest_setting);
      took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - again).count();
      measured = true;
    } else if (took < costliest) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(costliest - took));
    }
  }
  if (measured) {  // smoothed: one slow (descheduled) check moves it by an eighth
    const int64_t old = c.costliest_ns->load(std::memory_order_relaxed);
    c.costliest_ns->store(old == 0 ? took : old + (took - old) / 8, std::memory_order_relaxed);
  }
  OPENSSL_cleanse(c.password.data(), c.password.size());
}

}  // namespace

bool parse_basic_credentials(std::string_view value, std::string& user, std::string& password) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  if (value.size() < 6 || !http::iequals(value.substr(0, 6), "basic ")) return false;
  value.remove_prefix(6);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty()) return false;
  std::optional<std::string> decoded = base64_decode(value);
  if (!decoded) return false;
  // No control characters (RFC 7617 2): a NUL would end the password crypt() checks, so
  // "secret\0junk" would pass as "secret" while the instance may get all of it.
  bool controls = false;
  for (const char ch : *decoded) controls = controls || static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f;
  const size_t colon = controls ? std::string::npos : decoded->find(':');
  if (colon != std::string::npos) {
    user = decoded->substr(0, colon);
    password = decoded->substr(colon + 1);
  }
  OPENSSL_cleanse(decoded->data(), decoded->size());
  return colon != std::string::npos;
}

bool verify_password(const std::string& password, const std::string& hash) {
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), hash.c_str(), data.get());
  bool ok = out != nullptr && out[0] != '*' && std::strlen(out) == hash.size() &&
            CRYPTO_memcmp(out, hash.data(), hash.size()) == 0;
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return ok;
}

size_t BasicAuthFilter::DigestHash::operator()(const Digest& d) const noexcept {
  size_t h;
  std::memcpy(&h, d.data(), sizeof h);  // a cryptographic digest: any 8 bytes spread well
  return h;
}

BasicAuthFilter::BasicAuthFilter(const config::BasicAuth& config)
    : config_(config),
      challenge_("Basic realm=\"" + config.realm + "\", charset=\"UTF-8\"") {
  // The costliest user's setting: an unknown user costs a check like the slowest known one (a
  // cheaper one would tell which users exist), and a setting is no hash, so nothing matches it.
  // Nothing is hashed here: this runs where the config is built.
  double most = -1;
  for (const auto& [user, hash] : config.users) {
    if (const double work = hash_work(hash); work > most) {
      most = work;
      unknown_user_setting_ = setting_of(hash);
    }
  }
  for (const auto& [user, hash] : config.users) users_.emplace(user, User{hash, hash_work(hash) < most});
}

std::unique_ptr<FilterState> BasicAuthFilter::make_state() const { return std::make_unique<BasicAuthState>(); }

void BasicAuthFilter::challenge(FilterReply& reply) const {
  reply.status = 401;
  reply.cause = "auth-required";
  reply.headers.push_back(Header{"WWW-Authenticate", challenge_});
}

void BasicAuthFilter::pass(HeaderEdits& edits) const {
  if (!config_.forward_authorization) edits.remove_request.emplace_back("Authorization");
}

FilterResult BasicAuthFilter::on_request(const FilterRequest& req, FilterState* state, HeaderEdits& edits,
                                         FilterReply& reply, const FilterWaiter& waiter) const {
  std::string_view authorization;
  int seen = 0;
  for (const http::Field& f : req.head.fields) {
    if (!http::iequals(req.head.name(f), "authorization")) continue;
    authorization = req.head.value(f);
    ++seen;
  }
  std::string user, password;
  if (seen != 1 || !parse_basic_credentials(authorization, user, password)) {
    challenge(reply);
    return FilterResult::kReply;
  }
  auto& shared = static_cast<BasicAuthState*>(state)->shared;
  const Digest digest = digest_of(user, password);
  if (shared->verified.count(digest)) {
    OPENSSL_cleanse(password.data(), password.size());
    pass(edits);
    return FilterResult::kContinue;
  }
  auto found = users_.find(user);
  if ((found == users_.end() && unknown_user_setting_.empty()) || req.loop == nullptr) {
    OPENSSL_cleanse(password.data(), password.size());
    challenge(reply);
    return FilterResult::kReply;
  }
  if (shared->in_flight >= kMaxChecksInFlight) {
    OPENSSL_cleanse(password.data(), password.size());
    reply.status = 503;
    reply.cause = "auth-busy";
    reply.headers.push_back(Header{"Retry-After", "1"});
    return FilterResult::kReply;
  }

  auto check = std::make_shared<Check>();
  check->waiter = waiter;
  check->shared = shared;
  check->digest = digest;
  check->password = std::move(password);
  check->known_user = found != users_.end();
  check->hash = check->known_user ? found->second.hash : unknown_user_setting_;
  check->cheaper = check->known_user && found->second.cheaper;
  if (check->cheaper) check->costliest_setting = unknown_user_setting_;
  check->costliest_ns = costliest_ns_;
  check->forward_authorization = config_.forward_authorization;
  check->challenge = challenge_;
  ++shared->in_flight;
  background::run(
      req.loop,
      [check] { run_check(*check); },  // a background thread: the slow part
      [check] {  // back on the worker loop
        Check& c = *check;
        --c.shared->in_flight;
        if (c.ok) {
          if (c.shared->verified.size() >= kCacheEntries) c.shared->verified.clear();
          c.shared->verified.emplace(c.digest, true);
        }
        if (c.waiter.cancelled()) return;  // the client went away meanwhile
        if (c.ok) {
          if (!c.forward_authorization) c.waiter.edits().remove_request.emplace_back("Authorization");
          c.waiter.done(FilterResult::kContinue);
        } else {
          FilterReply& reply = c.waiter.reply();
          reply.status = 401;
          reply.cause = "auth-required";
          reply.headers.push_back(Header{"WWW-Authenticate", c.challenge});
          c.waiter.done(FilterResult::kReply);
        }
      });
  return FilterResult::kPending;
}

}  // namespace berth
