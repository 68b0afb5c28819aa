// Session ticket keys, and the OpenSSL callback that encrypts and decrypts tickets with them.
//
// Keys are derived from one random secret made at start, per 12-hour epoch: every worker (and
// every listener) derives the same keys with no shared mutable state and no lock. Tickets are
// issued with the current epoch's keys; those of the previous epoch are still accepted (and the
// ticket renewed), so a key lives 24 hours at most. A restart makes a new secret.
//
// A TLS 1.3 resumption always renews the ticket: clients use a TLS 1.3 ticket once (RFC 8446,
// C.4; OpenSSL's own client does), so a resumption that sent no new one would leave the client
// nothing to offer and make its next handshake a full one.
#pragma once

#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/ssl.h>

#include <cstdint>

namespace berth::tls {

constexpr int64_t kTicketEpochSeconds = 12 * 3600;

struct TicketKeys {
  int64_t epoch = -1;
  unsigned char name[16];
  unsigned char aes[32];
  unsigned char mac[32];
  OSSL_PARAM mac_params[3];  // the HMAC key and digest, built once with the keys
};

// The keys of an epoch, derived once per thread and cached (two epochs are in use at a time).
const TicketKeys& ticket_keys(int64_t epoch);

// The keys a presented ticket names, at `now_epoch`: the current epoch's or the previous one's,
// else null (the ticket is unknown or expired: a full handshake). *renew: issue a new ticket.
const TicketKeys* find_ticket_keys(const unsigned char name[16], int64_t now_epoch, bool tls13, bool* renew);

// For SSL_CTX_set_tlsext_ticket_key_evp_cb. The cipher is fetched once per process, not by
// name on every ticket.
int ticket_key_cb(SSL* ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH], EVP_CIPHER_CTX* cctx,
                  EVP_MAC_CTX* hctx, int enc);

}  // namespace berth::tls
