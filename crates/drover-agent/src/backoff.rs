//! Exponential backoff with full jitter, used for every retry towards the controller.

use std::time::Duration;

use rand::Rng;

/// First delay ceiling after a failure.
pub(crate) const BASE: Duration = Duration::from_millis(200);
/// Largest delay ceiling.
pub(crate) const CAP: Duration = Duration::from_secs(10);

/// Exponential backoff: the ceiling starts at `base` and doubles after each failure up to
/// `cap`; each delay is drawn uniformly from `[0, ceiling]` ("full jitter"), so that many
/// agents that lost the same controller do not come back in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    /// The agent's standard backoff: 200 ms doubling to 10 s.
    pub(crate) fn new() -> Backoff {
        Backoff::with_limits(BASE, CAP)
    }

    /// A backoff with other limits (`cap` is raised to `base` if smaller).
    pub(crate) fn with_limits(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// The ceiling the next delay is drawn under.
    pub(crate) fn ceiling(&self) -> Duration {
        // 2^20 * 200 ms is far beyond any sensible cap; stop doubling there.
        let factor = 1u32 << self.failures.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Delay to wait before the next attempt; records one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let max_us = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=max_us))
    }

    /// Forgets past failures (call after a success).
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let mut b = Backoff::new();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling().as_millis());
            b.next_delay();
        }
        assert_eq!(
            ceilings,
            vec![
                200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000
            ]
        );
    }

    #[test]
    fn delays_are_bounded_by_the_cap_even_after_many_failures() {
        let mut b = Backoff::new();
        for _ in 0..10_000 {
            let d = b.next_delay();
            assert!(d <= CAP, "{d:?} above the cap");
        }
        assert_eq!(b.ceiling(), CAP);
    }

    #[test]
    fn delays_are_jittered_below_the_ceiling() {
        let mut b = Backoff::new();
        for _ in 0..20 {
            b.next_delay();
        }
        let delays: Vec<Duration> = (0..200).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= CAP));
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(distinct.len() > 150, "not jittered: {distinct:?}");
        // Full jitter: uniform in [0, cap], so some fall in the lower and upper halves.
        assert!(delays.iter().any(|d| *d < CAP / 2));
        assert!(delays.iter().any(|d| *d > CAP / 2));
        let mean = delays.iter().sum::<Duration>() / 200;
        assert!(mean > Duration::from_secs(3) && mean < Duration::from_secs(7));
    }

    #[test]
    fn reset_starts_again_from_the_base() {
        let mut b = Backoff::new();
        for _ in 0..8 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.ceiling(), BASE);
        assert!(b.next_delay() <= BASE);
    }
}
