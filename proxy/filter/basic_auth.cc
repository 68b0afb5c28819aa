#include "proxy/filter/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>

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
  bool ok = false;
  bool forward_authorization = false;
  std::string challenge;
};

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
  const size_t colon = decoded->find(':');
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
    : challenge_("Basic realm=\"" + config.realm + "\", charset=\"UTF-8\""),
      forward_authorization_(config.forward_authorization) {
  for (const auto& [user, hash] : config.users) users_.emplace(user, hash);
  // A hash of the same kind as the first user's, of a password nobody has: an unknown user
  // costs one check like a known one, so answers do not tell which users exist.
  if (!config.users.empty()) {
    const std::string& model = config.users.front().second;
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    const char* kind = model.rfind("$2", 0) == 0 ? "$2b$" : model.rfind("$6$", 0) == 0 ? "$6$" : "$y$";
    if (crypt_gensalt_rn(kind, 0, nullptr, 0, setting, sizeof setting)) {
      auto data = std::make_unique<crypt_data>();
      std::memset(data.get(), 0, sizeof(crypt_data));
      if (const char* out = crypt_r("berth: no such user", setting, data.get()); out && out[0] != '*') dummy_hash_ = out;
    }
  }
}

std::unique_ptr<FilterState> BasicAuthFilter::make_state() const { return std::make_unique<BasicAuthState>(); }

void BasicAuthFilter::challenge(FilterReply& reply) const {
  reply.status = 401;
  reply.cause = "auth-required";
  reply.headers.push_back(Header{"WWW-Authenticate", challenge_});
}

void BasicAuthFilter::pass(HeaderEdits& edits) const {
  if (!forward_authorization_) edits.remove_request.emplace_back("Authorization");
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
  if ((found == users_.end() && dummy_hash_.empty()) || req.loop == nullptr) {
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
  check->hash = check->known_user ? found->second : dummy_hash_;
  check->forward_authorization = forward_authorization_;
  check->challenge = challenge_;
  ++shared->in_flight;
  background::run(
      req.loop,
      [check] {  // a background thread: the slow part
        check->ok = verify_password(check->password, check->hash) && check->known_user;
        OPENSSL_cleanse(check->password.data(), check->password.size());
      },
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
