//! Access tokens: short-lived HS256 JWTs carrying the user id and role,
//! verified locally by every service with no network call.
//!
//! Verification pins the algorithm (a token whose header names any other
//! algorithm, `none` included, is refused before its signature is looked
//! at) and selects the key by `kid`, so a second, older key keeps working
//! during a rotation.

use hyper::header::{AUTHORIZATION, COOKIE, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::config::JwtKeys;
use crate::problem::Problem;

/// The cookie a web client may carry its access token in.
pub const ACCESS_COOKIE: &str = "stampede_access";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    /// Scans tickets at an event's doors (`POST /api/events/{id}/check-in`).
    Gate,
    /// Creates events and manages only its own (another organiser's event
    /// answers 404); checks tickets in at its own events.
    Organiser,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Gate => "gate",
            Role::Organiser => "organiser",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Role::Customer),
            "gate" => Some(Role::Gate),
            "organiser" => Some(Role::Organiser),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The claims inside an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    /// The sign-in (refresh-token family) the token was issued for, so a
    /// password change can keep this session and end the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Whether the user had verified their e-mail address when the token
    /// was issued (OpenID Connect's claim name). Events may require it to
    /// hold; a token from before verification says `false` until the next
    /// refresh.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub email_verified: bool,
}

/// Who is calling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub role: Role,
    /// The sign-in it came from (`Claims::sid`), when the token names one.
    pub session: Option<String>,
    /// `Claims::email_verified`.
    pub email_verified: bool,
}

impl Principal {
    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), Problem> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Customer | Role::Gate | Role::Organiser => {
                Err(Problem::forbidden("forbidden", "this route needs the admin role"))
            }
        }
    }

    /// 403 unless the caller manages events: an organiser (its own) or an
    /// admin (all). Which events an organiser may touch is the caller's
    /// check; another organiser's event answers 404, not 403.
    pub fn require_organiser(&self) -> Result<(), Problem> {
        match self.role {
            Role::Organiser | Role::Admin => Ok(()),
            Role::Customer | Role::Gate => {
                Err(Problem::forbidden("forbidden", "this route needs the organiser or admin role"))
            }
        }
    }

    /// 403 unless the caller scans tickets at any event: the gate role, or
    /// an admin. (An organiser scans at its own events: the check-in route
    /// looks that up.)
    pub fn require_gate(&self) -> Result<(), Problem> {
        match self.role {
            Role::Gate | Role::Admin => Ok(()),
            Role::Customer | Role::Organiser => {
                Err(Problem::forbidden("forbidden", "checking tickets in needs the gate role"))
            }
        }
    }
}

/// How many verified tokens [`Tokens`] remembers before starting over.
const VERIFIED_CACHE: usize = 200_000;

/// Issues and verifies access tokens.
pub struct Tokens {
    kid: String,
    encoding: EncodingKey,
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
    ttl_seconds: i64,
    /// Tokens already verified, with their expiry: a buyer sends the same
    /// token with every request of a rush, and checking a signature costs
    /// more than the rest of a hold's work in this process. Only tokens
    /// that passed full verification get in; the expiry is checked on every
    /// hit.
    verified: std::sync::Mutex<std::collections::HashMap<Box<str>, (Principal, i64)>>,
}

impl Tokens {
    pub fn new(keys: &JwtKeys, ttl_seconds: i64) -> Self {
        let mut decoding = vec![(keys.kid.clone(), DecodingKey::from_secret(keys.secret.as_bytes()))];
        if let Some((kid, secret)) = &keys.previous {
            decoding.push((kid.clone(), DecodingKey::from_secret(secret.as_bytes())));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            kid: keys.kid.clone(),
            encoding: EncodingKey::from_secret(keys.secret.as_bytes()),
            decoding,
            validation,
            ttl_seconds,
            verified: std::sync::Mutex::default(),
        }
    }

    pub fn ttl_seconds(&self) -> i64 {
        self.ttl_seconds
    }

    /// A signed access token for `user_id`, valid for the configured TTL.
    pub fn issue(&self, user_id: &str, role: Role) -> Result<String, Problem> {
        let now = now_ms() / 1000;
        let claims = Claims { sub: user_id.to_owned(), role, iat: now, exp: now + self.ttl_seconds, sid: None, email_verified: false };
        self.sign(&claims)
    }

    /// An access token for `user_id` in the sign-in `session` (its
    /// refresh-token family), saying whether the user's e-mail is verified.
    pub fn issue_for_session(&self, user_id: &str, role: Role, session: &str, email_verified: bool) -> Result<String, Problem> {
        let now = now_ms() / 1000;
        let claims =
            Claims { sub: user_id.to_owned(), role, iat: now, exp: now + self.ttl_seconds, sid: Some(session.to_owned()), email_verified };
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the current key (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, Problem> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(Problem::internal)
    }

    /// Verifies a token and returns its caller; any defect is a 401.
    pub fn verify(&self, token: &str) -> Result<Principal, Problem> {
        let now = now_ms() / 1000;
        if let Ok(cache) = self.verified.lock()
            && let Some((who, exp)) = cache.get(token)
            && *exp + self.validation.leeway as i64 > now
        {
            return Ok(who.clone());
        }
        let (who, exp) = self.verify_signature(token)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE {
                cache.clear();
            }
            cache.insert(token.into(), (who.clone(), exp));
        }
        Ok(who)
    }

    fn verify_signature(&self, token: &str) -> Result<(Principal, i64), Problem> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Problem::unauthorized("malformed access token"))?;
        if header.alg != Algorithm::HS256 {
            return Err(Problem::unauthorized("access token algorithm not accepted"));
        }
        let key = match header.kid.as_deref() {
            None => &self.decoding[0].1,
            Some(kid) => match self.decoding.iter().find(|(k, _)| k == kid) {
                Some((_, key)) => key,
                None => return Err(Problem::unauthorized("access token signed with an unknown key")),
            },
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => Problem::unauthorized("access token expired"),
                _ => Problem::unauthorized("invalid access token"),
            }
        })?;
        Ok((Principal { user_id: data.claims.sub, role: data.claims.role, session: data.claims.sid, email_verified: data.claims.email_verified }, data.claims.exp))
    }

    /// The caller named by the `Authorization: Bearer` header, or by the
    /// access cookie a web client carries.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Problem> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let value = value.to_str().map_err(|_| Problem::unauthorized("malformed authorization header"))?;
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| Problem::unauthorized("expected a Bearer token"))?;
            return self.verify(token.trim());
        }
        for cookies in headers.get_all(COOKIE) {
            let Ok(cookies) = cookies.to_str() else { continue };
            for pair in cookies.split(';') {
                if let Some((name, value)) = pair.trim().split_once('=')
                    && name == ACCESS_COOKIE
                {
                    return self.verify(value);
                }
            }
        }
        Err(Problem::unauthorized("an access token is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(kid: &str, secret: &str) -> JwtKeys {
        JwtKeys { kid: kid.into(), secret: secret.into(), previous: None }
    }

    fn b64(s: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in s.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn issues_and_verifies() {
        let t = Tokens::new(&keys("k1", "0123456789abcdef0123456789abcdef"), 60);
        let tok = t.issue("u1", Role::Admin).expect("signs");
        assert_eq!(t.verify(&tok).expect("valid"), Principal { user_id: "u1".into(), role: Role::Admin, session: None, email_verified: false });
    }

    #[test]
    fn the_email_verified_claim_round_trips_and_defaults_to_false() {
        let t = Tokens::new(&keys("k1", "0123456789abcdef0123456789abcdef"), 60);
        for verified in [true, false] {
            let tok = t.issue_for_session("u1", Role::Customer, "fam", verified).expect("signs");
            let who = t.verify(&tok).expect("valid");
            assert_eq!((who.email_verified, who.session.as_deref()), (verified, Some("fam")));
            let payload = tok.split('.').nth(1).expect("payload");
            // Only a verified user's token carries the claim.
            let carried = payload.len() > t.issue_for_session("u1", Role::Customer, "fam", false).expect("signs").split('.').nth(1).expect("p").len();
            assert_eq!(carried, verified);
        }
        // A token from before the claim existed reads as unverified.
        let now = now_ms() / 1000;
        let old = t.sign(&Claims { sub: "u1".into(), role: Role::Customer, iat: now, exp: now + 60, sid: None, email_verified: false }).expect("signs");
        assert!(!t.verify(&old).expect("valid").email_verified);
        let forged_claims: Claims = serde_json::from_str(r#"{"sub":"u1","role":"customer","iat":1,"exp":2}"#).expect("parses");
        assert!(!forged_claims.email_verified);
        let with: Claims = serde_json::from_str(r#"{"sub":"u1","role":"customer","iat":1,"exp":2,"email_verified":true}"#).expect("parses");
        assert!(with.email_verified);
    }

    #[test]
    fn refuses_alg_none_tampering_expiry_and_foreign_keys() {
        let t = Tokens::new(&keys("k1", "0123456789abcdef0123456789abcdef"), 60);
        let tok = t.issue("u1", Role::Customer).expect("signs");
        // alg: none with an admin claim and no signature.
        let now = now_ms() / 1000;
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(format!(r#"{{"sub":"u1","role":"admin","iat":{now},"exp":{}}}"#, now + 60).as_bytes())
        );
        assert_eq!(t.verify(&none).expect_err("none").status.as_u16(), 401);
        // A payload swapped under the original signature.
        let parts: Vec<&str> = tok.split('.').collect();
        let forged = b64(format!(r#"{{"sub":"u1","role":"admin","iat":{now},"exp":{}}}"#, now + 60).as_bytes());
        assert!(t.verify(&format!("{}.{}.{}", parts[0], forged, parts[2])).is_err());
        // Verified once (cached), then tampered: still refused.
        assert!(t.verify(&tok).is_ok());
        let mut tampered = tok.clone().into_bytes();
        let at = tampered.len() - 3;
        tampered[at] = if tampered[at] == b'x' { b'y' } else { b'x' };
        assert!(t.verify(&String::from_utf8(tampered).expect("utf8")).is_err());
        // Expired.
        let old = t.sign(&Claims { sub: "u1".into(), role: Role::Customer, iat: now - 120, exp: now - 60, sid: None, email_verified: false }).expect("signs");
        assert_eq!(t.verify(&old).expect_err("expired").detail, "access token expired");
        // Another key with the same kid.
        let other = Tokens::new(&keys("k1", "ffffffffffffffffffffffffffffffff"), 60);
        assert!(t.verify(&other.issue("u1", Role::Admin).expect("signs")).is_err());
    }

    #[test]
    fn accepts_the_previous_key_during_rotation() {
        let old = Tokens::new(&keys("k1", "0123456789abcdef0123456789abcdef"), 60);
        let tok = old.issue("u1", Role::Customer).expect("signs");
        let rotated = Tokens::new(
            &JwtKeys {
                kid: "k2".into(),
                secret: "abcdefabcdefabcdefabcdefabcdefab".into(),
                previous: Some(("k1".into(), "0123456789abcdef0123456789abcdef".into())),
            },
            60,
        );
        assert!(rotated.verify(&tok).is_ok());
        let fresh = rotated.issue("u1", Role::Customer).expect("signs");
        assert!(old.verify(&fresh).is_err(), "the old verifier does not know k2");
    }
}
