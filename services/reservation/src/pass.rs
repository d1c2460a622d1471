//! Waiting-room passes: what the queue hands an admitted user, and what a
//! hold on a waiting-room event must carry (`X-Queue-Pass`).
//!
//! A pass is `v1.<expires_ms>.<hmac>`, the HMAC-SHA256 of the event, the
//! expiry and the user, keyed by a secret derived from the access-token
//! secret. The user and event are not in the pass: they come from the
//! caller's token and the URL, so a pass works only for the user and event
//! it was issued to. Verifying it is one HMAC, with no network call — the
//! hold path stays one Redis round trip.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use stampede_common::config::JwtKeys;
use stampede_common::ids::hex;
use subtle::ConstantTimeEq;

/// How long a pass stays valid after it is issued.
pub const PASS_TTL_MS: i64 = 15 * 60 * 1000;

const VERSION: &str = "v1";
/// Domain separation: the pass key is never the access-token key itself.
const KEY_LABEL: &[u8] = b"stampede queue pass key v1";

/// HMAC-SHA256 keyed once; each signature clones the keyed state.
type Key = Hmac<Sha256>;

fn key(secret: &[u8]) -> Key {
    Key::new_from_slice(secret).expect("HMAC takes a key of any length")
}

fn sign(key: &Key, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = key.clone();
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Issues and verifies passes.
pub struct Passes {
    current: Key,
    /// The key derived from the previous access-token secret, still accepted
    /// during a rotation (never used to issue).
    previous: Option<Key>,
}

impl Passes {
    pub fn new(keys: &JwtKeys) -> Self {
        let derive = |secret: &str| key(&sign(&key(secret.as_bytes()), &[KEY_LABEL]));
        Self { current: derive(&keys.secret), previous: keys.previous.as_ref().map(|(_, s)| derive(s)) }
    }

    fn mac(key: &Key, user: &str, event: i64, expires_ms: i64) -> String {
        hex(&sign(key, &[event.to_string().as_bytes(), b"|", expires_ms.to_string().as_bytes(), b"|", user.as_bytes()]))
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
            .any(|key| bool::from(Self::mac(key, user, event, expires_ms).as_bytes().ct_eq(mac.as_bytes())))
    }
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
            hex(&sign(&key(b"Jefe"), &[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&sign(&key(&[0xaa; 131]), &[b"Test Using Larger Than Block-Size Key - Hash Key First"])),
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
