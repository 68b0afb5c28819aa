#include "proxy/tls/session_ticket.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace berth::tls {

namespace {

const std::array<unsigned char, 32>& ticket_secret() {
  static const std::array<unsigned char, 32> secret = [] {
    std::array<unsigned char, 32> s{};
    if (RAND_bytes(s.data(), static_cast<int>(s.size())) != 1) std::abort();
    return s;
  }();
  return secret;
}

void derive(int64_t epoch, const char* label, unsigned char* out, size_t len) {
  unsigned char input[32];
  const size_t label_len = std::strlen(label);
  std::memcpy(input, label, label_len);
  std::memcpy(input + label_len, &epoch, sizeof epoch);
  unsigned char digest[EVP_MAX_MD_SIZE];
  size_t digest_len = 0;
  const auto& secret = ticket_secret();
  EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, secret.data(), secret.size(), input,
            label_len + sizeof epoch, digest, sizeof digest, &digest_len);
  std::memcpy(out, digest, std::min(len, digest_len));
}

// AES-256-CBC, fetched from the default provider once: an EVP_aes_256_cbc() handed to
// EVP_EncryptInit_ex is looked up by name on every call.
const EVP_CIPHER* ticket_cipher() {
  static EVP_CIPHER* const cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
  return cipher;
}

}  // namespace

const TicketKeys& ticket_keys(int64_t epoch) {
  thread_local TicketKeys cache[2];
  TicketKeys& k = cache[epoch & 1];
  if (k.epoch != epoch) {
    derive(epoch, "name", k.name, sizeof k.name);
    derive(epoch, "aes", k.aes, sizeof k.aes);
    derive(epoch, "mac", k.mac, sizeof k.mac);
    k.mac_params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.mac, sizeof k.mac);
    k.mac_params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
    k.mac_params[2] = OSSL_PARAM_construct_end();
    k.epoch = epoch;
  }
  return k;
}

const TicketKeys* find_ticket_keys(const unsigned char name[16], int64_t now_epoch, bool tls13, bool* renew) {
  for (int64_t e : {now_epoch, now_epoch - 1}) {
    const TicketKeys& k = ticket_keys(e);
    if (std::memcmp(name, k.name, sizeof k.name) != 0) continue;
    *renew = tls13 || e != now_epoch;
    return &k;
  }
  *renew = false;
  return nullptr;
}

int ticket_key_cb(SSL* ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX* cctx,
                  EVP_MAC_CTX* hctx, int enc) {
  const EVP_CIPHER* cipher = ticket_cipher();
  if (!cipher) return -1;
  const int64_t epoch = static_cast<int64_t>(std::time(nullptr)) / kTicketEpochSeconds;
  if (enc) {
    const TicketKeys& k = ticket_keys(epoch);
    std::memcpy(key_name, k.name, sizeof k.name);
    if (RAND_bytes(iv, 16) != 1) return -1;
    if (EVP_EncryptInit_ex(cctx, cipher, nullptr, k.aes, iv) != 1) return -1;
    return EVP_MAC_CTX_set_params(hctx, k.mac_params) == 1 ? 1 : -1;
  }
  bool renew = false;
  const TicketKeys* k = find_ticket_keys(key_name, epoch, SSL_version(ssl) == TLS1_3_VERSION, &renew);
  if (!k) return 0;  // unknown or expired key: a full handshake
  if (EVP_DecryptInit_ex(cctx, cipher, nullptr, k->aes, iv) != 1) return -1;
  if (EVP_MAC_CTX_set_params(hctx, k->mac_params) != 1) return -1;
  return renew ? 2 : 1;  // 2: valid, and a new ticket is issued under the current key
}

}  // namespace berth::tls
