// Standard base64 (RFC 4648 section 4) with padding: what HTTP Basic credentials and the etcd
// JSON gateway's bytes fields use; and the URL-safe alphabet for ACME. Decoding is strict: anything that is not canonical padded
// base64 is refused rather than guessed at.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace berth {

std::string base64_encode(std::string_view bytes);
// base64url (RFC 4648 section 5) without padding, as JOSE (ACME's signed requests) uses it.
std::string base64url_encode(std::string_view bytes);
// nullopt unless `text` is standard padded base64 (length a multiple of 4, padding only at the
// end and at most two characters of it, no other characters).
std::optional<std::string> base64_decode(std::string_view text);

}  // namespace berth
