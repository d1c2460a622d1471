//! Signed ticket codes: an EdDSA (Ed25519) JWT per ticket, carrying the
//! ticket (`tid`), its event (`eid`), its seat, its owner (`sub`) and its
//! version (`ver`), so a gate can check a code offline with the platform's
//! public key, and a code older than the ticket's version is void.
//!
//! The key is the platform's, from configuration (a PKCS#8 PEM private
//! key). Its `kid` is derived from its public half, so a rotation needs no
//! other setting: a previous key stays accepted for verification (codes
//! shown before the rotation), never used to sign. Verification pins
//! `EdDSA` (a header naming any other algorithm, `none` included, is
//! refused before the signature is looked at) and selects the key by `kid`.

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use stampede_common::config::{ConfigError, Env};

/// What a ticket code says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeClaims {
    /// The public ticket id.
    pub tid: String,
    /// The event id.
    pub eid: String,
    /// `<section>:<row>:<n>`, or `null` for a general-admission place.
    pub seat: Option<String>,
    /// The owner's user id.
    pub sub: String,
    /// The ticket's version when the code was made.
    pub ver: i64,
    pub iat: i64,
}

/// One Ed25519 key: its id and PEM halves.
#[derive(Clone)]
pub struct TicketKey {
    pub kid: String,
    /// The public key, SPKI PEM (what `GET /api/events/{id}/ticket-key` serves).
    pub public_pem: String,
    private_pem: String,
    /// What jsonwebtoken takes (its PEM reader is behind a feature we
    /// leave off): the private key as PKCS#8 DER, the public key's 32 bytes.
    private_der: Vec<u8>,
    public_raw: [u8; 32],
}

/// Never prints the private key.
impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl TicketKey {
    /// Reads a PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let signing = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| format!("not an Ed25519 PKCS#8 PEM private key: {e}"))?;
        Self::from_signing(&signing)
    }

    /// A fresh random key (tests).
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_signing(&SigningKey::from_bytes(&seed)).expect("a fresh key encodes")
    }

    fn from_signing(signing: &SigningKey) -> Result<Self, String> {
        let public = signing.verifying_key();
        let public_pem = public.to_public_key_pem(LineEnding::LF).map_err(|e| e.to_string())?;
        let private_pem = signing.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?.to_string();
        let private_der = signing.to_pkcs8_der().map_err(|e| e.to_string())?.as_bytes().to_vec();
        let digest = Sha256::digest(public.as_bytes());
        let kid = format!("ed-{}", digest[..8].iter().map(|b| format!("{b:02x}")).collect::<String>());
        Ok(Self { kid, public_pem, private_pem, private_der, public_raw: public.to_bytes() })
    }

    /// The private key as PKCS#8 PEM (tests sign forged codes with it).
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }
}

/// The signing key and the previous one, from configuration.
#[derive(Clone, Debug)]
pub struct TicketKeys {
    pub current: TicketKey,
    pub previous: Option<TicketKey>,
}

impl TicketKeys {
    /// `STAMPEDE_TICKET_SIGNING_KEY` (the PEM itself) or
    /// `STAMPEDE_TICKET_SIGNING_KEY_FILE` (a path to it); the previous key
    /// likewise from `STAMPEDE_TICKET_SIGNING_PREVIOUS_KEY[_FILE]`. `None`
    /// when no key is set: the routes that need one answer 503.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(current) = read_key(env, "STAMPEDE_TICKET_SIGNING_KEY")? else {
            if env.optional("STAMPEDE_TICKET_SIGNING_PREVIOUS_KEY").is_some()
                || env.optional("STAMPEDE_TICKET_SIGNING_PREVIOUS_KEY_FILE").is_some()
            {
                return Err(ConfigError {
                    var: "STAMPEDE_TICKET_SIGNING_KEY".into(),
                    reason: "a previous ticket key is set without a current one".into(),
                });
            }
            return Ok(None);
        };
        let previous = read_key(env, "STAMPEDE_TICKET_SIGNING_PREVIOUS_KEY")?;
        Ok(Some(Self { current, previous }))
    }
}

fn read_key(env: &Env, var: &str) -> Result<Option<TicketKey>, ConfigError> {
    let file_var = format!("{var}_FILE");
    let (pem, from) = match (env.optional(var), env.optional(&file_var)) {
        (Some(_), Some(_)) => return Err(ConfigError { var: var.into(), reason: format!("set {var} or {file_var}, not both") }),
        (Some(pem), None) => (pem, var.to_owned()),
        (None, Some(path)) => {
            let pem = std::fs::read_to_string(&path).map_err(|e| ConfigError { var: file_var.clone(), reason: format!("cannot read {path}: {e}") })?;
            (pem, file_var)
        }
        (None, None) => return Ok(None),
    };
    TicketKey::from_pem(&pem).map(Some).map_err(|reason| ConfigError { var: from, reason })
}

/// Why a code is refused: all one answer to the gate (400 `invalid_code`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidCode(pub &'static str);

/// Signs and verifies ticket codes.
pub struct Signer {
    kid: String,
    public_pem: String,
    encoding: EncodingKey,
    decoding: Vec<(String, DecodingKey)>,
    validation: Validation,
}

impl Signer {
    pub fn new(keys: &TicketKeys) -> Self {
        let decoding_of = |k: &TicketKey| (k.kid.clone(), DecodingKey::from_ed_der(&k.public_raw));
        let mut decoding = vec![decoding_of(&keys.current)];
        decoding.extend(keys.previous.as_ref().map(decoding_of));
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        // A ticket's code does not expire: it is void once used or superseded.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["sub"]);
        Self {
            kid: keys.current.kid.clone(),
            public_pem: keys.current.public_pem.clone(),
            encoding: EncodingKey::from_ed_der(&keys.current.private_der),
            decoding,
            validation,
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    pub fn sign(&self, claims: &CodeClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// The claims of a code this platform signed, with a key it still accepts.
    pub fn verify(&self, code: &str) -> Result<CodeClaims, InvalidCode> {
        if code.len() > 4096 {
            return Err(InvalidCode("code too long"));
        }
        let header = jsonwebtoken::decode_header(code).map_err(|_| InvalidCode("malformed code"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(InvalidCode("code algorithm not accepted"));
        }
        let kid = header.kid.as_deref().ok_or(InvalidCode("code without a key id"))?;
        let (_, key) = self.decoding.iter().find(|(k, _)| k == kid).ok_or(InvalidCode("unknown key id"))?;
        jsonwebtoken::decode::<CodeClaims>(code, key, &self.validation)
            .map(|d| d.claims)
            .map_err(|_| InvalidCode("bad signature or claims"))
    }
}

/// A QR code of `text` as an SVG document (error correction M: readable
/// from a phone screen with some glare).
pub fn qr_svg(text: &str) -> Result<String, qrcode::types::QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    Ok(code.render::<svg::Color<'_>>().min_dimensions(256, 256).quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> CodeClaims {
        CodeClaims { tid: "7-0123456789abcdef0123456789abcdef-1".into(), eid: "7".into(), seat: Some("3:1:2".into()), sub: "42".into(), ver: 1, iat: 1 }
    }

    #[test]
    fn signs_verifies_and_accepts_the_previous_key_only_for_verifying() {
        let old = TicketKey::generate();
        let new = TicketKey::generate();
        assert_ne!(old.kid, new.kid);
        let before = Signer::new(&TicketKeys { current: old.clone(), previous: None });
        let after = Signer::new(&TicketKeys { current: new.clone(), previous: Some(old.clone()) });
        let code = before.sign(&claims()).expect("sign");
        assert_eq!(after.verify(&code).expect("previous key accepted"), claims());
        let fresh = after.sign(&claims()).expect("sign");
        assert!(before.verify(&fresh).is_err(), "a key it does not know");
        assert_eq!(TicketKey::from_pem(new.private_pem()).expect("pem").kid, new.kid);
        assert!(TicketKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_err());
    }

    #[test]
    fn keys_come_from_the_variable_or_the_file_never_both() {
        let key = TicketKey::generate();
        assert!(TicketKeys::from_env(&Env::from_pairs([])).expect("none").is_none());
        let set = TicketKeys::from_env(&Env::from_pairs([("STAMPEDE_TICKET_SIGNING_KEY", key.private_pem())])).expect("set");
        assert_eq!(set.expect("key").current.kid, key.kid);
        let path = std::env::temp_dir().join(format!("stampede-ticket-key-{}", std::process::id()));
        std::fs::write(&path, key.private_pem()).expect("write");
        let path = path.display().to_string();
        let from_file = TicketKeys::from_env(&Env::from_pairs([("STAMPEDE_TICKET_SIGNING_KEY_FILE", path.as_str())])).expect("file");
        assert_eq!(from_file.expect("key").current.kid, key.kid);
        let both = [("STAMPEDE_TICKET_SIGNING_KEY", key.private_pem()), ("STAMPEDE_TICKET_SIGNING_KEY_FILE", path.as_str())];
        assert_eq!(TicketKeys::from_env(&Env::from_pairs(both)).expect_err("both").var, "STAMPEDE_TICKET_SIGNING_KEY");
        let bad = TicketKeys::from_env(&Env::from_pairs([("STAMPEDE_TICKET_SIGNING_PREVIOUS_KEY", "junk"), ("STAMPEDE_TICKET_SIGNING_KEY", key.private_pem())]));
        assert_eq!(bad.expect_err("junk").var, "STAMPEDE_TICKET_SIGNING_PREVIOUS_KEY");
    }

    #[test]
    fn the_qr_code_is_an_svg() {
        let svg = qr_svg(&"x".repeat(400)).expect("fits");
        assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    }
}
