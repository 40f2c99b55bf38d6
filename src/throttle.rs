//! Rate-limited warnings: one line per reason per interval, carrying how
//! many were held back since the last one, so a client that repeats a
//! mistake a thousand times a second costs the log one line.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often one reason may be logged.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Reasons remembered at most; past that the oldest state is forgotten
/// (a forgotten reason is logged again at once, which is harmless).
const MAX_REASONS: usize = 256;

#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    reasons: Mutex<BTreeMap<String, Seen>>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    logged_at: Instant,
    suppressed: u64,
}

impl Throttle {
    pub const fn new(interval: Duration) -> Self {
        Self { interval, reasons: Mutex::new(BTreeMap::new()) }
    }

    /// `Some(held back since the last line)` when a line for `reason` may be
    /// written now; `None` when it is held back (and counted).
    pub fn allow(&self, reason: &str) -> Option<u64> {
        self.allow_at(reason, Instant::now())
    }

    pub fn allow_at(&self, reason: &str, now: Instant) -> Option<u64> {
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(seen) = reasons.get_mut(reason) {
            if now.saturating_duration_since(seen.logged_at) < self.interval {
                seen.suppressed += 1;
                return None;
            }
            let held = seen.suppressed;
            *seen = Seen { logged_at: now, suppressed: 0 };
            return Some(held);
        }
        if reasons.len() >= MAX_REASONS {
            reasons.clear();
        }
        reasons.insert(reason.to_string(), Seen { logged_at: now, suppressed: 0 });
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_reason_is_logged_once_per_interval_with_the_count_held_back() {
        let t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let seen: Vec<Option<u64>> = [0, 1, 2, 9, 10, 11, 25].iter().map(|&s| t.allow_at("unmatched", at(s))).collect();
        assert_eq!(seen, vec![Some(0), None, None, None, Some(3), None, Some(1)]);
    }

    #[test]
    fn each_reason_has_its_own_interval() {
        let t = Throttle::new(Duration::from_secs(10));
        let now = Instant::now();
        assert_eq!(
            [t.allow_at("a", now), t.allow_at("b", now), t.allow_at("a", now), t.allow_at("b", now)],
            [Some(0), Some(0), None, None]
        );
    }
}
