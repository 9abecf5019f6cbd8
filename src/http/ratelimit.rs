//! Fixed-window attempt counters, keyed by client address or nickname, for the login
//! endpoint. An attempt is counted when it starts (so a burst of parallel guesses cannot
//! all pass before the first failure is recorded) and [`RateLimiter::forgive`]n when it
//! succeeds: only failures use up the window. (`governor`'s GCRA cells cannot be given back,
//! so it cannot count this way: docs/benchmarks.md, *Session 8*.)

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Above this many tracked keys, expired windows are swept before adding another.
const SWEEP_ABOVE: usize = 10_000;

/// Counts attempts per key in fixed windows; shared by all HTTP workers.
#[derive(Debug)]
pub struct RateLimiter {
    max: u32,
    window: Duration,
    // A plain mutex: HTTP workers are threads, and each critical section is a map lookup.
    slots: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// Allows `max` attempts per key in each `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        RateLimiter {
            max,
            window,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Records one attempt for `key`; `Err(seconds)` says how long until it may try again.
    pub(crate) fn hit(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if slots.len() > SWEEP_ABOVE {
            let window = self.window;
            slots.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let slot = slots.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(slot.0) >= self.window {
            *slot = (now, 0);
        }
        if slot.1 >= self.max {
            let left = self.window.saturating_sub(now.duration_since(slot.0));
            return Err(left.as_secs().max(1));
        }
        slot.1 += 1;
        Ok(())
    }

    /// Takes back one attempt of `key` in its current window (a login that succeeded).
    pub fn forgive(&self, key: &str) {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(slot) = slots.get_mut(key) {
            slot.1 = slot.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_after_the_limit_is_refused_with_a_wait() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.hit("a").is_ok());
        assert!(limiter.hit("a").is_ok());
        let wait = limiter.hit("a").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(limiter.hit("b").is_ok(), "other keys are counted apart");
    }

    #[test]
    fn forgiven_attempts_do_not_use_up_the_window() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        for _ in 0..10 {
            assert!(limiter.hit("a").is_ok());
            limiter.forgive("a");
        }
        assert!(limiter.hit("a").is_ok());
        assert!(limiter.hit("a").is_ok());
        assert!(limiter.hit("a").is_err(), "two unforgiven attempts fill it");
        limiter.forgive("unknown key");
    }

    #[test]
    fn a_new_window_starts_afresh() {
        let limiter = RateLimiter::new(1, Duration::from_millis(20));
        assert!(limiter.hit("a").is_ok());
        assert!(limiter.hit("a").is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(limiter.hit("a").is_ok());
    }
}
