// A small blocking HTTPS/1.1 client for the ACME thread (never a worker loop): one connection
// per request ("Connection: close"), every socket call bounded by SO_RCVTIMEO/SO_SNDTIMEO and
// the whole exchange by a deadline. The server is verified against the system store plus an
// optional extra CA bundle.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::acme {

struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string header(std::string_view name) const;  // first value, "" if absent
};

// "https://host[:port]/path" -> parts; false when it is not such a URL.
struct Url {
  std::string host;       // without brackets
  std::string port = "443";
  std::string authority;  // as written (the Host header)
  std::string target;     // path and query, at least "/"
};
bool parse_https_url(std::string_view url, Url* out);

// Parses a complete HTTP/1.1 response as read until the server closed (chunked bodies are
// decoded). false when it is not one.
bool parse_http_response(std::string_view raw, HttpResponse* out);

class HttpsClient {
 public:
  HttpsClient() = default;
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // ca_bundle: a PEM file trusted in addition to the system store ("" = none).
  bool init(const std::string& ca_bundle, std::string* error);
  // method GET or POST. false with *error when no complete response came (a response with
  // any status is true).
  bool request(std::string_view method, std::string_view url, std::string_view content_type, std::string_view body,
               HttpResponse* out, std::string* error);
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }
  // From any thread: the request under way ends now (its socket is shut down, which wakes a
  // blocked connect or read), and every later one fails at once. For a prompt exit.
  void cancel();

 private:
  // The socket of the request under way, or -1; false when cancelled (the socket is then closed).
  bool set_active(int fd);

  SSL_CTX* ctx_ = nullptr;
  std::chrono::milliseconds timeout_{10'000};
  std::mutex mu_;  // guards active_fd_ and cancelled_
  int active_fd_ = -1;
  bool cancelled_ = false;
};

}  // namespace berth::acme
