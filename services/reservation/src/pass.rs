//! Waiting-room passes: what the queue hands an admitted user, and what a
//! hold on a waiting-room event must carry (`X-Queue-Pass`).
//!
//! A pass is `v1.<expires_ms>.<hmac>`, the HMAC-SHA256 of the event, the
//! expiry and the user, keyed by a secret derived from the access-token
//! secret. The user and event are not in the pass: they come from the
//! caller's token and the URL, so a pass works only for the user and event
//! it was issued to. Verifying it is one HMAC, with no network call — the
//! hold path stays one Redis round trip.

use sha2::{Digest, Sha256};
use stampede_common::config::JwtKeys;
use stampede_common::ids::hex;

/// How long a pass stays valid after it is issued.
pub const PASS_TTL_MS: i64 = 15 * 60 * 1000;

const VERSION: &str = "v1";
/// Domain separation: the pass key is never the access-token key itself.
const KEY_LABEL: &[u8] = b"stampede queue pass key v1";

/// HMAC-SHA256 with its key's padded blocks hashed once (RFC 2104).
#[derive(Clone)]
struct Mac {
    inner: Sha256,
    outer: Sha256,
}

impl Mac {
    fn new(key: &[u8]) -> Self {
        let mut block = [0u8; 64];
        if key.len() > block.len() {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        Self { inner: Sha256::new_with_prefix(ipad), outer: Sha256::new_with_prefix(opad) }
    }

    fn sign(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for p in parts {
            inner.update(p);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }
}

/// Issues and verifies passes.
pub struct Passes {
    current: Mac,
    /// The key derived from the previous access-token secret, still accepted
    /// during a rotation (never used to issue).
    previous: Option<Mac>,
}

impl Passes {
    pub fn new(keys: &JwtKeys) -> Self {
        let derive = |secret: &str| Mac::new(&Mac::new(secret.as_bytes()).sign(&[KEY_LABEL]));
        Self { current: derive(&keys.secret), previous: keys.previous.as_ref().map(|(_, s)| derive(s)) }
    }

    fn mac(key: &Mac, user: &str, event: i64, expires_ms: i64) -> String {
        hex(&key.sign(&[event.to_string().as_bytes(), b"|", expires_ms.to_string().as_bytes(), b"|", user.as_bytes()]))
    }

    /// A pass for `user` on `event`, valid until `expires_ms`.
    pub fn issue(&self, user: &str, event: i64, expires_ms: i64) -> String {
        format!("{VERSION}.{expires_ms}.{}", Self::mac(&self.current, user, event, expires_ms))
    }

    /// Whether `pass` was issued to `user` for `event` and is still valid at
    /// `now_ms`. Anything malformed, foreign, tampered with or expired is false.
    pub fn verify(&self, pass: &str, user: &str, event: i64, now_ms: i64) -> bool {
        let mut parts = pass.split('.');
        let (Some(VERSION), Some(exp), Some(mac), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let Ok(expires_ms) = exp.parse::<i64>() else { return false };
        if expires_ms <= now_ms || mac.len() != 64 {
            return false;
        }
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| constant_time_eq(Self::mac(key, user, event, expires_ms).as_bytes(), mac.as_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> JwtKeys {
        JwtKeys { kid: "k1".into(), secret: secret.into(), previous: None }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2, and test case 6 (a key longer than the block).
        assert_eq!(
            hex(&Mac::new(b"Jefe").sign(&[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&Mac::new(&[0xaa; 131]).sign(&[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn a_pass_is_bound_to_its_user_event_and_time() {
        let p = Passes::new(&keys("0123456789abcdef0123456789abcdef"));
        let pass = p.issue("7", 3, 10_000);
        assert!(p.verify(&pass, "7", 3, 9_999));
        assert!(!p.verify(&pass, "7", 3, 10_000), "expired");
        assert!(!p.verify(&pass, "8", 3, 0), "another user");
        assert!(!p.verify(&pass, "7", 4, 0), "another event");
        assert!(!p.verify(&pass.replace("10000", "99999"), "7", 3, 0), "a later expiry under the same mac");
        let other = Passes::new(&keys("ffffffffffffffffffffffffffffffff"));
        assert!(!other.verify(&pass, "7", 3, 0), "another secret");
        for junk in ["", "v1", "v1..", "v1.x.y", "v2.10000.00", &format!("{pass}.x"), &pass[..pass.len() - 1]] {
            assert!(!p.verify(junk, "7", 3, 0), "{junk}");
        }
    }

    #[test]
    fn the_previous_secret_still_verifies_during_a_rotation() {
        let old = Passes::new(&keys("0123456789abcdef0123456789abcdef"));
        let pass = old.issue("7", 3, 10_000);
        let rotated = Passes::new(&JwtKeys {
            kid: "k2".into(),
            secret: "abcdefabcdefabcdefabcdefabcdefab".into(),
            previous: Some(("k1".into(), "0123456789abcdef0123456789abcdef".into())),
        });
        assert!(rotated.verify(&pass, "7", 3, 0));
        assert!(!old.verify(&rotated.issue("7", 3, 10_000), "7", 3, 0));
    }
}
