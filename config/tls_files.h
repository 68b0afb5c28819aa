// Checks of the PEM files a TLS listener names, for the loader: a certificate with its key
// (they must load and match) and a CA bundle. Pure functions over file contents.
#pragma once

#include <string>
#include <string_view>

namespace berth::config {

// "" when cert_pem holds a certificate and key_pem a private key that belongs to it, and every
// certificate block of cert_pem parses (check_certificates); else the problem, as a phrase ("the
// key does not match the certificate"), and a TLS context would take them at the library's
// security level (no RSA key under 2048 bits, no SHA-1 signature).
std::string check_tls_pair(const std::string& cert_pem, const std::string& key_pem);
// "" when pem holds at least one certificate and every certificate block parses.
std::string check_ca_bundle(const std::string& pem);
// "" when pem holds at least one PEM certificate and every one parses. A block that does not (a
// chain or bundle cut off by a write still under way, or a full disk) is refused, not taken as
// the end of the file: a leaf served without its intermediate fails every client's
// verification. Other PEM blocks (a key in the same file) and text between blocks are skipped.
std::string check_certificates(const std::string& pem);
// "" when the system CA store OpenSSL reads by default (SSL_CERT_FILE, else
// /etc/ssl/certs/ca-certificates.crt on Debian) holds a certificate and every one parses; else
// the problem, naming the file. (OpenSSL itself takes a missing store as an empty one, and every
// verification then fails.)
std::string check_system_ca_store();
// "" when name can be an upstream's TLS server name: a DNS name (labels of letters, digits,
// '-' and '_', none empty, none over 63 bytes or starting or ending with '-', the last not all
// digits; 253 bytes at most; one trailing dot allowed, see server_name_text) or an IP address
// literal (no brackets); else the problem.
std::string server_name_problem(std::string_view name);
// The name as sent and checked: without the trailing dot of a fully qualified name (a
// certificate never names one, and the host check would fail).
std::string server_name_text(std::string_view name);

}  // namespace berth::config
