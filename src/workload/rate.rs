//! Open-loop pacing: with a target rate, message `i` of a producer is *due* at
//! `start + i / rate`, whatever happened to the messages before it.
//!
//! The due time, not the moment the send call happened, is written into the message and used
//! as the start of both latencies. When the cluster stalls, the producer falls behind its
//! schedule and every late message carries the wait it suffered — the coordinated-omission
//! correction oha and wrk2 make. A producer that is behind sends immediately (it never skips
//! messages, and never sleeps to "catch up" the other way), so the achieved rate is honest and
//! is reported beside the target.

use std::time::Duration;

/// The schedule of one rate-limited producer.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    start_us: u64,
    per_message_ns: f64,
}

impl Pacer {
    /// A schedule of `rate` messages per second starting at `start_us` (µs since the epoch).
    pub fn new(start_us: u64, rate: f64) -> Pacer {
        Pacer {
            start_us,
            per_message_ns: 1e9 / rate,
        }
    }

    /// When message `i` is due, µs since the epoch.
    pub fn due_us(&self, i: u64) -> u64 {
        self.start_us + (i as f64 * self.per_message_ns / 1000.0) as u64
    }

    /// How long to wait at `now_us` before message `i` is due (zero when late).
    pub fn wait(&self, i: u64, now_us: u64) -> Duration {
        Duration::from_micros(self.due_us(i).saturating_sub(now_us))
    }
}

/// Waits until `due_us` (µs since the epoch): `wait(d)` for the coarse part (a sleep, or a wait
/// that serves delivery reports meanwhile and may end early), yielding for the last stretch,
/// which keeps the schedule within tens of microseconds without burning a core.
pub fn sleep_until(due_us: u64, now: impl Fn() -> u64, mut wait: impl FnMut(Duration)) {
    loop {
        let n = now();
        if n >= due_us {
            return;
        }
        let left = due_us - n;
        if left > 1_500 {
            wait(Duration::from_micros(left - 1_000));
        } else if left > 100 {
            wait(Duration::from_micros(left / 2));
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::now_us;

    #[test]
    fn due_times_follow_the_rate_not_the_sends() {
        let p = Pacer::new(1_000_000, 1000.0); // 1 ms apart
        assert_eq!(p.due_us(0), 1_000_000);
        assert_eq!(p.due_us(1), 1_001_000);
        assert_eq!(p.due_us(1000), 2_000_000);
        assert_eq!(p.wait(2, 1_000_500), Duration::from_micros(1_500));
        // Late: no wait, and the due time stays where the schedule put it.
        assert_eq!(p.wait(2, 1_005_000), Duration::ZERO);
        assert_eq!(p.due_us(2), 1_002_000);
    }

    #[test]
    fn pacing_holds_the_rate() {
        let start = now_us();
        let p = Pacer::new(start, 2000.0);
        for i in 0..200 {
            sleep_until(p.due_us(i), now_us, std::thread::sleep);
        }
        let elapsed = now_us() - start;
        // 200 messages at 2000/s = 100 ms (199 gaps = 99.5 ms).
        assert!((99_000..140_000).contains(&elapsed), "{elapsed} µs");
    }
}
