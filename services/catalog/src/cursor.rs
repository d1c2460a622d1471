//! The browse cursor: the last event of a page, `(published_at, id)`, as
//! an opaque token. Clients hand it back untouched; anything that does not
//! decode is a 400, never a 500.

use stampede_common::ids::hex;

/// Where the next page starts: after this event in newest-first order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Cursor {
    /// `published_at` in microseconds since the epoch (Postgres precision).
    pub published_us: i64,
    pub id: i64,
}

impl Cursor {
    /// The token: lower-case hex of `v1.<published_us>.<id>` (URL-safe, so
    /// it travels in a query string with no encoding).
    pub(crate) fn encode(&self) -> String {
        hex(format!("v1.{}.{}", self.published_us, self.id).as_bytes())
    }

    pub(crate) fn decode(token: &str) -> Option<Self> {
        if token.is_empty() || token.len() > 128 || !token.len().is_multiple_of(2) {
            return None;
        }
        let bytes = (0..token.len())
            .step_by(2)
            .map(|i| token.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
            .collect::<Option<Vec<u8>>>()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let mut parts = text.split('.');
        if parts.next()? != "v1" {
            return None;
        }
        let published_us = parts.next()?.parse().ok()?;
        let id: i64 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || id <= 0 {
            return None;
        }
        Some(Self { published_us, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_junk() {
        let c = Cursor { published_us: 1_795_000_000_123_456, id: 42 };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let bad_id = hex(b"v1.5.0");
        let extra = hex(b"v1.5.6.7");
        let version = hex(b"v2.5.6");
        for bad in ["", "zz", "abc", "%00", bad_id.as_str(), extra.as_str(), version.as_str(), &"ab".repeat(100)] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
    }
}
