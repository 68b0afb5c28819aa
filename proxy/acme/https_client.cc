#include "proxy/acme/https_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "proxy/base/ascii.h"

namespace berth::acme {

namespace {

constexpr size_t kMaxResponseBytes = 4u << 20;

std::string lower(std::string_view s) {
  return ascii_lowered(s);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

bool decode_chunked(std::string_view in, std::string* out) {
  out->clear();
  while (true) {
    const size_t eol = in.find("\r\n");
    if (eol == std::string_view::npos) return false;
    std::string size_text(in.substr(0, eol));
    const size_t semi = size_text.find(';');
    if (semi != std::string::npos) size_text.resize(semi);
    char* end = nullptr;
    const unsigned long size = std::strtoul(size_text.c_str(), &end, 16);
    if (end == size_text.c_str()) return false;
    in.remove_prefix(eol + 2);
    if (size == 0) return true;
    if (in.size() < size + 2) return false;
    out->append(in.substr(0, size));
    in.remove_prefix(size + 2);
  }
}

std::string openssl_error(const std::string& what) {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (!e) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return what + " (" + buf + ")";
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  const std::string want = lower(name);
  for (const auto& [n, v] : headers)
    if (n == want) return v;
  return {};
}

bool parse_https_url(std::string_view url, Url* out) {
  *out = Url{};
  if (url.substr(0, 8) != "https://") return false;
  url.remove_prefix(8);
  const size_t slash = url.find('/');
  out->authority = std::string(url.substr(0, slash));
  out->target = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  std::string_view a = out->authority;
  if (a.empty()) return false;
  if (a.front() == '[') {
    const size_t close = a.find(']');
    if (close == std::string_view::npos) return false;
    out->host = std::string(a.substr(1, close - 1));
    if (close + 1 < a.size()) {
      if (a[close + 1] != ':') return false;
      out->port = std::string(a.substr(close + 2));
    }
  } else {
    const size_t colon = a.rfind(':');
    out->host = std::string(a.substr(0, colon));
    if (colon != std::string_view::npos) out->port = std::string(a.substr(colon + 1));
  }
  return !out->host.empty() && !out->port.empty() &&
         std::all_of(out->port.begin(), out->port.end(), [](unsigned char c) { return std::isdigit(c); });
}

bool parse_http_response(std::string_view raw, HttpResponse* out) {
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string_view::npos || raw.substr(0, 5) != "HTTP/") return false;
  std::string_view head = raw.substr(0, end);
  std::string_view body = raw.substr(end + 4);
  const size_t sp = head.find(' ');
  if (sp == std::string_view::npos) return false;
  out->status = std::atoi(std::string(head.substr(sp + 1, 3)).c_str());
  if (out->status < 100) return false;
  size_t line_start = head.find("\r\n");
  out->headers.clear();
  while (line_start != std::string_view::npos) {
    line_start += 2;
    const size_t line_end = head.find("\r\n", line_start);
    std::string_view line = head.substr(line_start, line_end == std::string_view::npos ? std::string_view::npos
                                                                                       : line_end - line_start);
    const size_t colon = line.find(':');
    if (colon != std::string_view::npos)
      out->headers.emplace_back(lower(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
    line_start = line_end;
  }
  if (lower(out->header("transfer-encoding")).find("chunked") != std::string::npos)
    return decode_chunked(body, &out->body);
  const std::string length = out->header("content-length");
  if (!length.empty()) {
    const size_t n = std::strtoull(length.c_str(), nullptr, 10);
    if (body.size() < n) return false;
    body = body.substr(0, n);
  }
  out->body = std::string(body);
  return true;
}

HttpsClient::~HttpsClient() { SSL_CTX_free(ctx_); }

bool HttpsClient::init(const std::string& ca_bundle, std::string* error) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ctx_) {
    *error = openssl_error("SSL_CTX_new failed");
    return false;
  }
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_default_verify_paths(ctx_);
  if (!ca_bundle.empty() && SSL_CTX_load_verify_locations(ctx_, ca_bundle.c_str(), nullptr) != 1) {
    *error = openssl_error("cannot load ca_bundle '" + ca_bundle + "'");
    return false;
  }
  ERR_clear_error();
  return true;
}

void HttpsClient::cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (active_fd_ >= 0) ::shutdown(active_fd_, SHUT_RDWR);
}

bool HttpsClient::set_active(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_ && fd >= 0) {
    ::close(fd);
    return false;
  }
  active_fd_ = fd;
  return true;
}

bool HttpsClient::request(std::string_view method, std::string_view url, std::string_view content_type,
                          std::string_view body, HttpResponse* out, std::string* error) {
  Url u;
  if (!parse_https_url(url, &u)) {
    *error = "not an https:// URL: " + std::string(url);
    return false;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(u.host.c_str(), u.port.c_str(), &hints, &res); rc != 0) {
    *error = "cannot resolve " + u.host + ": " + gai_strerror(rc);
    return false;
  }
  int fd = -1;
  std::string connect_error;
  for (addrinfo* ai = res; ai && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (!set_active(fd)) {
      ::freeaddrinfo(res);
      *error = "stopping";
      return false;
    }
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout_.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout_.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);  // also bounds connect()
    if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      connect_error = std::strerror(errno);
      set_active(-1);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(res);
  if (fd < 0) {
    *error = "cannot connect to " + u.authority + ": " + connect_error;
    return false;
  }
  SSL* ssl = SSL_new(ctx_);
  SSL_set_fd(ssl, fd);
  in6_addr ip{};
  const bool is_ip = ::inet_pton(AF_INET, u.host.c_str(), &ip) == 1 || ::inet_pton(AF_INET6, u.host.c_str(), &ip) == 1;
  if (is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), u.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, u.host.c_str());
    SSL_set1_host(ssl, u.host.c_str());
  }
  bool ok = SSL_connect(ssl) == 1;
  if (!ok) {
    const long verify = SSL_get_verify_result(ssl);
    *error = verify != X509_V_OK ? "TLS to " + u.authority + ": certificate not trusted (" +
                                       X509_verify_cert_error_string(verify) + ")"
                                 : openssl_error("TLS handshake with " + u.authority + " failed");
  }
  if (ok) {
    std::string req(method);
    req.append(" ").append(u.target).append(" HTTP/1.1\r\nHost: ").append(u.authority);
    req.append("\r\nUser-Agent: berth-acme\r\nAccept: */*\r\nConnection: close\r\n");
    if (!content_type.empty()) req.append("Content-Type: ").append(content_type).append("\r\n");
    if (method == "POST") req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    req.append("\r\n").append(body);
    ok = SSL_write(ssl, req.data(), static_cast<int>(req.size())) == static_cast<int>(req.size());
    if (!ok) *error = openssl_error("cannot send the request to " + u.authority);
  }
  std::string raw;
  while (ok) {
    if (std::chrono::steady_clock::now() > deadline) {
      *error = "no complete answer from " + u.authority + " in time";
      ok = false;
      break;
    }
    char buf[16384];
    const int n = SSL_read(ssl, buf, sizeof buf);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      if (raw.size() > kMaxResponseBytes) {
        *error = "answer from " + u.authority + " is larger than 4 MiB";
        ok = false;
      }
      continue;
    }
    const int e = SSL_get_error(ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && errno == 0)) break;
    if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      *error = "timed out reading from " + u.authority;
      ok = false;
      break;
    }
    // Some servers close without close_notify: accept what came if it parses.
    break;
  }
  SSL_free(ssl);
  set_active(-1);
  ::close(fd);
  ERR_clear_error();
  if (!ok) return false;
  if (!parse_http_response(raw, out)) {
    *error = "incomplete or malformed answer from " + u.authority;
    return false;
  }
  return true;
}

}  // namespace berth::acme
