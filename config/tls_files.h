// Checks of the PEM files a TLS listener names, for the loader: a certificate with its key
// (they must load and match) and a CA bundle. Pure functions over file contents.
#pragma once

#include <string>

namespace berth::config {

// "" when cert_pem holds a certificate and key_pem a private key that belongs to it; else the
// problem, as a phrase ("the key does not match the certificate").
std::string check_tls_pair(const std::string& cert_pem, const std::string& key_pem);
// "" when pem holds at least one certificate.
std::string check_ca_bundle(const std::string& pem);

}  // namespace berth::config
