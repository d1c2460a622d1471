//! How long to wait before retrying: exponential growth up to a cap, with
//! full jitter (each wait drawn uniformly from zero to the current ceiling).
//! Without jitter every client that failed together — all the connections
//! cut by one Redis restart — retries together, in step, and hits the
//! server as one burst each round; jitter spreads them over the window.
//!
//! One helper for every retry loop of the services (the notifier, the
//! persister, the payment route's confirmation, refunds): each picks its
//! first ceiling and its cap, and keeps its own stop condition (a deadline,
//! a number of tries, a shutdown signal).

use std::time::Duration;

use rand::Rng;

/// Waits for successive retries: the n-th wait (from 0) is uniform in
/// `[0, min(cap, base × 2ⁿ)]`.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    /// Ceilings `base`, `2 × base`, `4 × base`, … up to `cap`.
    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap, attempt: 0 }
    }

    /// After a success: the next failure waits as little as the first.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The upper bound of the next wait.
    pub fn ceiling(&self) -> Duration {
        // 2^20 × any sane base is past any sane cap: stop doubling there.
        let factor = 1u32 << self.attempt.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next wait, drawn from `[0, ceiling]`; the ceiling then doubles.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rand::rng().random_range(0..=nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_a_doubling_ceiling_up_to_the_cap() {
        let (base, cap) = (Duration::from_millis(50), Duration::from_secs(1));
        let mut b = Backoff::new(base, cap);
        let ceilings: Vec<u64> = (0..8)
            .map(|_| {
                let ceiling = b.ceiling();
                let wait = b.next_delay();
                assert!(wait <= ceiling, "{wait:?} over {ceiling:?}");
                ceiling.as_millis() as u64
            })
            .collect();
        assert_eq!(ceilings, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
        b.reset();
        assert_eq!(b.ceiling(), base);
        // Many failures later the ceiling is still the cap, not an overflow.
        for _ in 0..200 {
            assert!(b.next_delay() <= cap);
        }
        assert_eq!(b.ceiling(), cap);
    }

    #[test]
    fn waits_are_spread_over_the_whole_window() {
        // Full jitter: clients that failed together do not retry together.
        let ceiling = Duration::from_millis(400);
        let waits: Vec<Duration> = (0..2000)
            .map(|_| {
                let mut b = Backoff::new(ceiling, ceiling);
                b.next_delay()
            })
            .collect();
        let below = |f: f64| waits.iter().filter(|w| w.as_secs_f64() < ceiling.as_secs_f64() * f).count();
        // Uniform on [0, 400 ms]: about a quarter under 100 ms, about half
        // under 200 ms, about three quarters under 300 ms.
        for (f, expected) in [(0.25, 500), (0.5, 1000), (0.75, 1500)] {
            let n = below(f);
            assert!(n.abs_diff(expected) < 150, "{n} of 2000 waits below {f} of the ceiling");
        }
        assert!(waits.iter().all(|w| *w <= ceiling));
    }
}
