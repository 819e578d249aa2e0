//! The reservoir: at most N sampled requests per second of the wall clock, as X-Ray hands
//! out quotas (per client, per second, valid until a time).

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::{SystemTime, UNIX_EPOCH};

/// The epoch second `now` falls in.
pub(crate) fn epoch_second(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Counts what was taken in the current second of the wall clock.
#[derive(Debug, Default)]
pub(crate) struct Reservoir {
    /// (epoch second, taken in it)
    window: Mutex<(u64, u32)>,
}

impl Reservoir {
    /// Takes one of `per_second` for the second `now` falls in; `false` when they are gone.
    pub(crate) fn take(&self, now: SystemTime, per_second: u32) -> bool {
        if per_second == 0 {
            return false;
        }
        let second = epoch_second(now);
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 < per_second {
            window.1 += 1;
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
    fn per_second_of_the_wall_clock() {
        let r = Reservoir::default();
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_200);
        assert!(r.take(t, 2));
        assert!(r.take(t + Duration::from_millis(500), 2));
        assert!(
            !r.take(t + Duration::from_millis(700), 2),
            "third in the same second"
        );
        assert!(
            r.take(t + Duration::from_millis(800), 2),
            "next second, new quota"
        );
        assert!(!r.take(t, 0), "no quota, nothing taken");
    }
}
