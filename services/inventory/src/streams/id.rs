//! Stream entry ids, ordered as Redis orders them.

use std::fmt;

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub fn parse(s: &str) -> Option<Self> {
        let (ms, seq) = s.split_once('-')?;
        Some(Self { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }

    /// The smallest id after this one.
    pub fn next(self) -> Self {
        match self.seq.checked_add(1) {
            Some(seq) => Self { ms: self.ms, seq },
            None => Self { ms: self.ms.saturating_add(1), seq: 0 },
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_order_and_step() {
        let a = StreamId::parse("1700000000000-5").expect("id");
        assert_eq!(a.next().to_string(), "1700000000000-6");
        assert!(StreamId::parse("2-0").expect("id") > StreamId::parse("1-99").expect("id"));
        assert_eq!(StreamId { ms: 3, seq: u64::MAX }.next(), StreamId { ms: 4, seq: 0 });
        assert_eq!(StreamId::parse("junk"), None);
    }
}
