//! A token bucket: a burst allowance refilled at a steady rate.

use std::time::Instant;

/// Allows `burst` events at once and `per_second` sustained.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(burst: u32, per_second: u32) -> Self {
        RateLimiter {
            capacity: f64::from(burst),
            per_second: f64::from(per_second),
            tokens: f64::from(burst),
            last: None,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(3, 2);
        assert!((0..3).all(|_| r.try_take(t0)));
        assert!(!r.try_take(t0));
        // Half a second at 2/s refills one token.
        assert!(r.try_take(t0 + Duration::from_millis(500)));
        assert!(!r.try_take(t0 + Duration::from_millis(500)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| r.try_take(later)));
        assert!(!r.try_take(later));
    }
}
