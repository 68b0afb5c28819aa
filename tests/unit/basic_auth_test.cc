// Basic authentication: htpasswd parsing (weak hashes refused), credentials parsing, password
// checks with libcrypt, and the filter's pending check on a real libuv loop.
#include <crypt.h>
#include <uv.h>

#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <string>

#include "config/config.h"
#include "proxy/filter/basic_auth.h"
#include "proxy/model/route_table.h"

using namespace berth;

namespace {

// cost: bcrypt's cost, SHA-512 crypt's rounds, yescrypt's; 0: libcrypt's default.
std::string hash_of(const char* prefix, const std::string& password, unsigned long cost = 0) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  REQUIRE(crypt_gensalt_rn(prefix, cost, nullptr, 0, setting, sizeof setting) != nullptr);
  auto data = std::make_unique<crypt_data>();
  std::memset(data.get(), 0, sizeof(crypt_data));
  const char* out = crypt_r(password.c_str(), setting, data.get());
  REQUIRE(out != nullptr);
  REQUIRE(out[0] != '*');
  return out;
}

// "Basic <base64(user:password)>", encoded by OpenSSL, not by the code under test.
std::string basic(const std::string& user_colon_password) {
  std::string out(4 * ((user_colon_password.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(user_colon_password.data()),
                                static_cast<int>(user_colon_password.size()));
  out.resize(static_cast<size_t>(n));
  return "Basic " + out;
}

struct Owner final : FilterRunOwner {
  int done = 0;
  void on_filter_done() override { ++done; }
};

}  // namespace

TEST_CASE("htpasswd: slow hashes are taken; plain text, MD5, SHA-1 and duplicates are refused", "[auth]") {
  std::vector<config::Error> errors;
  auto users = config::parse_htpasswd(
      "# team\n"
      "alice:$2y$05$abcdefghijklmnopqrstuu5Ah0Qvq1lGZ8aQ6k0xY0b1J1z9yZfS\n"
      "\n"
      "bob:$6$salt$hash\r\n"
      "carol:$y$j9T$salt$hash\n"
      "dave:$apr1$x$y\n"
      "erin:plaintext\n"
      "frank:{SHA}abc=\n"
      "alice:$2b$05$other\n"
      "nocolon\n",
      "/etc/p", errors);
  REQUIRE(users.size() == 3);
  CHECK(users[0].first == "alice");
  CHECK(users[1] == std::pair<std::string, std::string>{"bob", "$6$salt$hash"});
  CHECK(users[2].first == "carol");
  REQUIRE(errors.size() == 5);
  CHECK(errors[0].to_string().find("/etc/p:6:") == 0);
  CHECK(errors[0].message.find("MD5") != std::string::npos);
  CHECK(errors[1].message.find("plain-text") != std::string::npos);
  CHECK(errors[2].message.find("SHA-1") != std::string::npos);
  CHECK(errors[3].message.find("listed twice") != std::string::npos);
  CHECK(errors[4].line == 10);
}

TEST_CASE("basic credentials: parsing", "[auth]") {
  std::string user, password;
  REQUIRE(parse_basic_credentials(basic("alice:s3cret:with:colons"), user, password));
  CHECK(user == "alice");
  CHECK(password == "s3cret:with:colons");
  REQUIRE(parse_basic_credentials("basic " + basic("a:").substr(6), user, password));
  CHECK(user == "a");
  CHECK(password.empty());
  CHECK_FALSE(parse_basic_credentials("Bearer abc", user, password));
  CHECK_FALSE(parse_basic_credentials("Basic", user, password));
  CHECK_FALSE(parse_basic_credentials("Basic !!!!", user, password));
  CHECK_FALSE(parse_basic_credentials("Basic YWxpY2U=", user, password));  // "alice": no colon
  CHECK_FALSE(parse_basic_credentials("Basic YQ=a", user, password));      // padding inside
  // Control characters (RFC 7617): a NUL would cut the password short for crypt().
  CHECK_FALSE(parse_basic_credentials(basic(std::string("alice:secret\0junk", 17)), user, password));
  CHECK_FALSE(parse_basic_credentials(basic("alice:sec\tret"), user, password));
  CHECK_FALSE(parse_basic_credentials(basic("al\x7fice:secret"), user, password));
}

TEST_CASE("passwords: bcrypt, SHA-512 crypt and yescrypt through libcrypt", "[auth]") {
  for (const char* kind : {"$2b$", "$6$", "$y$"}) {
    INFO(kind);
    const std::string hash = hash_of(kind, "open sesame");
    CHECK(verify_password("open sesame", hash));
    CHECK_FALSE(verify_password("open sesame!", hash));
    CHECK_FALSE(verify_password("", hash));
  }
  CHECK_FALSE(verify_password("x", "*0"));
}

TEST_CASE("basic auth filter: an unknown user is checked at the costliest user's cost", "[auth]") {
  config::BasicAuth cfg;
  cfg.htpasswd = "/unused";
  const std::string alice = hash_of("$2b$", "wonderland", 12);
  cfg.users = {{"bob", hash_of("$2b$", "builder")}, {"alice", alice}, {"carol", hash_of("$6$", "x", 50000)}};
  std::string setting = BasicAuthFilter(cfg).unknown_user_setting();
  CHECK(setting.starts_with("$2b$12$"));
  CHECK(setting == alice.substr(0, 29));  // its kind, cost and salt, without the hash
  CHECK_FALSE(verify_password("wonderland", setting));  // so nothing matches it

  cfg.users = {{"bob", hash_of("$6$", "builder")}, {"carol", hash_of("$6$", "x", 50000)}};
  setting = BasicAuthFilter(cfg).unknown_user_setting();
  CHECK(setting.starts_with("$6$rounds=50000$"));
  CHECK(setting.find('$', std::string_view("$6$rounds=50000$").size()) == std::string::npos);

  cfg.users = {{"bob", hash_of("$y$", "builder")}, {"carol", hash_of("$y$", "x", 7)}, {"dave", hash_of("$y$", "y")}};
  CHECK(BasicAuthFilter(cfg).unknown_user_setting().starts_with(cfg.users[1].second.substr(0, 7)));

  cfg.users.clear();
  CHECK(BasicAuthFilter(cfg).unknown_user_setting().empty());
}

TEST_CASE("basic auth filter: checks off the loop, remembers what it verified", "[auth]") {
  config::BasicAuth cfg;
  cfg.htpasswd = "/unused";
  cfg.realm = "admin";
  cfg.users = {{"alice", hash_of("$2b$", "wonderland")}};
  auto filter = std::make_shared<BasicAuthFilter>(cfg);
  FilterChain chain({filter});
  FilterStates states;
  Route route;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);

  auto run_with = [&](const std::string& authorization, FilterRun& run, Owner& owner) {
    std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n" + (authorization.empty() ? "" : "Authorization: " + authorization + "\r\n") + "\r\n";
    http::RequestHead head;
    http::Limits limits;
    REQUIRE(http::parse_request_head(raw, limits, head).ok());
    FilterRequest req{head, route, "127.0.0.1"};
    req.loop = &loop;
    FilterResult r = run.start(chain, states, req, &owner);
    if (r == FilterResult::kPending) {
      while (owner.done == 0) uv_run(&loop, UV_RUN_ONCE);
      r = run.proceed(req);
    }
    return r;
  };

  {
    FilterRun run;
    Owner owner;
    CHECK(run_with("", run, owner) == FilterResult::kReply);
    CHECK(run.reply().status == 401);
    CHECK(run.reply().cause == "auth-required");
    REQUIRE(run.reply().headers.size() == 1);
    CHECK(run.reply().headers[0].value == "Basic realm=\"admin\", charset=\"UTF-8\"");
    CHECK(owner.done == 0);  // answered at once: nothing to check
  }
  {
    FilterRun run;
    Owner owner;
    CHECK(run_with(basic("alice:wrong"), run, owner) == FilterResult::kReply);
    CHECK(owner.done == 1);  // checked on a background thread
    CHECK(run.reply().status == 401);
  }
  {
    FilterRun run;
    Owner owner;
    CHECK(run_with(basic("mallory:wonderland"), run, owner) == FilterResult::kReply);  // unknown user
    CHECK(run.reply().status == 401);
  }
  {
    FilterRun run;
    Owner owner;
    CHECK(run_with(basic("alice:wonderland"), run, owner) == FilterResult::kContinue);
    CHECK(owner.done == 1);
    CHECK(run.edits().remove_request == std::vector<std::string>{"Authorization"});
  }
  {
    FilterRun run;
    Owner owner;
    CHECK(run_with(basic("alice:wonderland"), run, owner) == FilterResult::kContinue);
    CHECK(owner.done == 0);  // remembered: no second check
  }
  {
    // The request goes away while its check runs: the late answer is dropped.
    FilterRun run;
    Owner owner;
    std::string raw = "GET / HTTP/1.1\r\nHost: a\r\nAuthorization: " + basic("alice:other") + "\r\n\r\n";
    http::RequestHead head;
    http::Limits limits;
    REQUIRE(http::parse_request_head(raw, limits, head).ok());
    FilterRequest req{head, route, "127.0.0.1"};
    req.loop = &loop;
    REQUIRE(run.start(chain, states, req, &owner) == FilterResult::kPending);
    run.cancel();
    uv_run(&loop, UV_RUN_DEFAULT);  // until the check is back
    CHECK(owner.done == 0);
  }
  REQUIRE(uv_loop_close(&loop) == 0);
}
