//! API tokens: how `parkctl token new` makes one and what ingest keeps of
//! it.
//!
//! A token is `pw_` and 64 lowercase hex digits (32 random bytes, 256 bits
//! of entropy). Ingest's configuration holds only its SHA-256
//! ([`hash_token`]); a request's bearer token is hashed the same way and
//! looked up. Because tokens are random, an unsalted fast hash is enough.

use crate::hash::{hex, sha256_hex};

/// SHA-256 hex of a token, as configured.
pub fn hash_token(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// A new random token: `pw_` and 64 hex digits (32 random bytes).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("pw_{}", hex(&bytes))
}
