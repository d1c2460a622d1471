//! Property tests of everything the services parse from a request before it
//! reaches a store: JSON bodies, path segments, query parameters, seat ids,
//! hold and order ids, `Idempotency-Key` values and access tokens. Each
//! function must never panic, whatever the input, and must accept exactly
//! the documented shapes (in particular nothing that could leave the
//! event's Redis hash tag or walk a path: `/`, `.`, `{`, `}`, `:` in ids).

use hyper::StatusCode;
use proptest::prelude::*;
use serde::Deserialize;
use stampede_common::config::JwtKeys;
use stampede_common::http::{parse_json, query_param, segments};
use stampede_common::ids::is_token;
use stampede_common::token::{Claims, Role, Tokens};
use stampede_inventory::{HoldId, SeatRef};

/// A body shaped like the hold request (`deny_unknown_fields`, options).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HoldBody {
    seats: Option<Vec<String>>,
    section_id: Option<serde_json::Value>,
    quantity: Option<i64>,
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("'; DROP TABLE orders; --")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("seats".to_owned()),
                    Just("section_id".to_owned()),
                    Just("quantity".to_owned()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn is_bad_request<T: std::fmt::Debug>(r: &Result<T, stampede_common::Problem>) -> bool {
    match r {
        Ok(_) => true,
        Err(p) => {
            p.status == StatusCode::BAD_REQUEST
                && (p.code == "malformed_json" || p.code == "invalid_body")
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes: a value or a 400, never a panic.
    #[test]
    fn parse_json_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(is_bad_request(&parse_json::<serde_json::Value>(&bytes)));
        prop_assert!(is_bad_request(&parse_json::<HoldBody>(&bytes)));
    }

    /// Arbitrary JSON documents against a typed body: accepted only when
    /// the shape is right, otherwise a 400 (wrong types are 400, not 422).
    #[test]
    fn parse_json_types_are_400(v in json_value()) {
        let bytes = serde_json::to_vec(&v).expect("serializes");
        let r = parse_json::<HoldBody>(&bytes);
        prop_assert!(is_bad_request(&r));
        if r.is_ok() {
            let obj = v.as_object().expect("only an object can be a HoldBody");
            prop_assert!(obj.keys().all(|k| ["seats", "section_id", "quantity"].contains(&k.as_str())));
        }
    }

    /// Path segments: at most N, and they are the path's pieces.
    #[test]
    fn segments_are_the_path_pieces(path in "(/[a-zA-Z0-9%._~:{}-]{0,6}){0,9}/?") {
        if let Some((seg, n)) = segments::<6>(&path) {
            prop_assert!(n <= 6);
            let joined = seg[..n].join("/");
            let trimmed = path.trim_start_matches('/');
            prop_assert!(joined == trimmed || format!("{joined}/") == trimmed, "{joined:?} vs {trimmed:?}");
        } else {
            prop_assert!(path.trim_start_matches('/').split('/').count() > 6);
        }
    }

    /// Query parameters: a value is a piece of the query without `&`.
    #[test]
    fn query_param_finds_a_piece(query in "[a-z=&%0-9]{0,40}", name in "[a-z]{1,3}") {
        if let Some(v) = query_param(Some(&query), &name) {
            prop_assert!(!v.contains('&'));
            let pair = format!("{name}={v}");
            let found = query.split('&').any(|kv| kv == pair || (v.is_empty() && kv == name));
            prop_assert!(found);
        }
    }

    /// Seat ids: anything accepted is three numbers whose canonical id parses
    /// back to the same seat, short, with nothing that could reach a key.
    #[test]
    fn seat_refs_are_numbers_only(s in "[0-9:+a-z./{}-]{0,24}") {
        if let Some(r) = SeatRef::parse(&s) {
            prop_assert!(s.len() <= 40);
            let plain = !s.contains(['/', '.', '{', '}']) && s.split(':').count() == 3;
            prop_assert!(plain);
            prop_assert_eq!(SeatRef::parse(&r.id()), Some(r));
        }
    }

    #[test]
    fn canonical_seat_ids_round_trip(section in 1i64..1_000_000_000, row in 0u32..100_000, number in 0u32..100_000) {
        let r = SeatRef { section, row, number };
        prop_assert_eq!(SeatRef::parse(&r.id()), Some(r));
    }

    /// Hold and order ids: `<event>-<32 of [A-Za-z0-9_-]>`, event > 0.
    #[test]
    fn hold_ids_cannot_escape_their_key(s in prop_oneof!["[0-9a-fA-F+./:{}_-]{0,48}", "[+0-9]{0,3}-[0-9a-fA-F./:{}_-]{30,34}"]) {
        if let Some(id) = HoldId::parse(&s) {
            prop_assert!(id.event > 0);
            prop_assert_eq!(id.token.len(), 32);
            prop_assert!(is_token(&id.token, 32));
            let plain = !s.contains(['/', '.', ':', '{', '}']);
            prop_assert!(plain);
            prop_assert_eq!(HoldId::parse(&id.public()), Some(id));
        }
    }

    #[test]
    fn generated_hold_ids_round_trip(event in 1i64..i64::MAX) {
        let id = HoldId::generate(event);
        prop_assert_eq!(HoldId::parse(&id.public()), Some(id));
    }

    /// `Idempotency-Key` (and every other token-shaped id): exactly 1..=max of
    /// `[A-Za-z0-9_-]`.
    #[test]
    fn idempotency_keys_are_plain_tokens(s in "\\PC{0,140}", max in 1usize..200) {
        let expected = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        prop_assert_eq!(is_token(&s, max), expected);
    }

    /// Access tokens: any string is verified without a panic, and any change
    /// to a valid token (one character replaced, cut, or extended) is a 401.
    #[test]
    fn tampered_tokens_are_refused(pos in any::<prop::sample::Index>(), c in "[A-Za-z0-9_.=-]", junk in "\\PC{0,64}") {
        let tokens = Tokens::new(&JwtKeys { kid: "k1".into(), secret: "0123456789abcdef0123456789abcdef".into(), previous: None }, 60);
        prop_assert_eq!(tokens.verify(&junk).map(|_| ()).map_err(|p| p.status), Err(StatusCode::UNAUTHORIZED));
        let good = tokens.issue("42", Role::Customer).expect("signs");
        let i = pos.index(good.len());
        let mut bad = good.clone();
        bad.replace_range(i..=i, &c);
        if bad != good {
            prop_assert!(tokens.verify(&bad).is_err(), "{bad}");
        }
        prop_assert!(tokens.verify(&good[..i]).is_err());
        let longer = format!("{good}{c}");
        prop_assert!(tokens.verify(&longer).is_err());
    }
}

/// Deeply nested JSON is refused by serde_json's recursion limit (128): a
/// 400, and no stack overflow, however deep (bodies are objects; arrays are
/// refused before parsing, and serde_json's own limit holds for them too).
#[test]
fn deep_nesting_is_a_400_not_a_stack_overflow() {
    for depth in [127usize, 129, 1_000, 100_000, 1_000_000] {
        let doc = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        let r = parse_json::<serde_json::Value>(doc.as_bytes());
        if depth < 128 {
            assert!(r.is_ok(), "depth {depth} is within the limit");
        } else {
            let p = r.expect_err("beyond the recursion limit");
            assert_eq!(
                (p.status, p.code),
                (StatusCode::BAD_REQUEST, "malformed_json"),
                "depth {depth}"
            );
        }
        assert!(is_bad_request(&parse_json::<HoldBody>(doc.as_bytes())));
        let arrays = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(
            parse_json::<serde_json::Value>(arrays.as_bytes())
                .expect_err("not an object")
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&arrays).is_ok(),
            depth < 128
        );
    }
}

/// A token whose header names another algorithm is refused before any key
/// is tried: `none`, and RS256/ES256 (algorithm confusion: the HMAC secret
/// used as if it were a public key).
#[test]
fn only_hs256_is_accepted() {
    use jsonwebtoken_shim::*;
    let secret = "0123456789abcdef0123456789abcdef";
    let tokens = Tokens::new(
        &JwtKeys {
            kid: "k1".into(),
            secret: secret.into(),
            previous: None,
        },
        60,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = Claims {
        sub: "1".into(),
        role: Role::Admin,
        iat: now,
        exp: now + 60,
        sid: None,
        email_verified: false,
    };
    let payload = b64(&serde_json::to_vec(&claims).expect("json"));
    for alg in [
        "none", "None", "NONE", "RS256", "ES256", "PS256", "HS384", "HS512", "EdDSA", "",
    ] {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#).as_bytes());
        let input = format!("{header}.{payload}");
        for sig in [String::new(), hs256(secret.as_bytes(), input.as_bytes())] {
            let token = format!("{input}.{sig}");
            assert_eq!(
                tokens.verify(&token).expect_err(alg).status,
                StatusCode::UNAUTHORIZED,
                "alg {alg}"
            );
        }
    }
    // The same construction with HS256 is accepted: the refusals above are
    // about the algorithm, not a broken test encoder.
    let header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#);
    let input = format!("{header}.{payload}");
    let token = format!("{input}.{}", hs256(secret.as_bytes(), input.as_bytes()));
    assert_eq!(
        tokens
            .verify(&token)
            .expect("HS256 with the right key")
            .role,
        Role::Admin
    );
}

/// Just enough JOSE to forge tokens by hand: base64url and HMAC-SHA256
/// (RFC 2104 over a small SHA-256), so the test needs no crypto crate.
mod jsonwebtoken_shim {
    pub fn b64(data: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for i in 0..16 {
                w[i] = u32::from_be_bytes([
                    block[4 * i],
                    block[4 * i + 1],
                    block[4 * i + 2],
                    block[4 * i + 3],
                ]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let mut v = h;
            for i in 0..64 {
                let s1 = v[4].rotate_right(6) ^ v[4].rotate_right(11) ^ v[4].rotate_right(25);
                let ch = (v[4] & v[5]) ^ (!v[4] & v[6]);
                let t1 = v[7]
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = v[0].rotate_right(2) ^ v[0].rotate_right(13) ^ v[0].rotate_right(22);
                let maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
                let t2 = s0.wrapping_add(maj);
                v = [
                    t1.wrapping_add(t2),
                    v[0],
                    v[1],
                    v[2],
                    v[3].wrapping_add(t1),
                    v[4],
                    v[5],
                    v[6],
                ];
            }
            for (a, b) in h.iter_mut().zip(v) {
                *a = a.wrapping_add(b);
            }
        }
        let mut out = [0u8; 32];
        for (i, word) in h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    pub fn hs256(key: &[u8], data: &[u8]) -> String {
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(key);
        let inner: Vec<u8> = k
            .iter()
            .map(|b| b ^ 0x36)
            .chain(data.iter().copied())
            .collect();
        let outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).chain(sha256(&inner)).collect();
        b64(&sha256(&outer))
    }
}
