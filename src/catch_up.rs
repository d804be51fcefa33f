//! The catch-up test (`consumers.begin = "after-produce"`): the producers build a backlog while
//! every consumer group is stopped, then the groups start and drain it, as OpenMessaging's
//! `consumerBacklogSizeGB` does. The run path (`run.rs`) starts the groups late; this module
//! owns what is particular to the test: dropping the page cache between the two phases, so the
//! drain reads from disk rather than from memory, and the drain figures of `summary.json`.
//!
//! Dropping the cache needs root and brokers on this machine; when it cannot be done the
//! summary says so and why, since a drain from memory can be ten times faster than from disk.

use crate::summary::{CatchUpSummary, MIB};

/// The kernel file that drops clean page-cache pages when `1` is written to it.
pub const DROP_CACHES: &str = "/proc/sys/vm/drop_caches";

/// Drops the page cache when `wanted` and the brokers are `local` (embedded): `sync`, then
/// `1` into [`DROP_CACHES`]. Returns what `catch_up.page_cache` says: `"dropped"` or
/// `"not dropped: <why>"`.
pub fn drop_page_cache(wanted: bool, local: bool) -> String {
    if !wanted {
        return "not dropped: consumers.drop_page_cache = false (the drain may read from memory)"
            .into();
    }
    if !local {
        return "not dropped: the brokers are not on this machine (external cluster); drop their \
                page cache on their hosts"
            .into();
    }
    nix::unistd::sync();
    match std::fs::write(DROP_CACHES, "1\n") {
        Ok(()) => "dropped".into(),
        Err(e) => format!(
            "not dropped: cannot write 1 to {DROP_CACHES} ({e}); dropping the page cache needs \
             root (the drain may read from memory)"
        ),
    }
}

/// What the run path measured of the catch-up, in microseconds since the epoch (0 = never).
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    /// The last acknowledgement of the backlog.
    pub last_ack_us: u64,
    /// The consumers' start (after the cache drop).
    pub started_us: u64,
    /// Every partition assigned in every group.
    pub assigned_us: u64,
    /// The first message received by any group.
    pub first_recv_us: u64,
    /// The last message received by any group.
    pub last_recv_us: u64,
}

/// The drain figures from the backlog (`backlog` = acknowledged messages and bytes), what the
/// groups received (`drained`), the times, the cache state, and whether every group read the
/// whole backlog.
pub fn summarize(
    backlog: (u64, u64),
    drained: (u64, u64),
    t: Times,
    page_cache: String,
    complete: bool,
) -> CatchUpSummary {
    let secs = |from: u64, to: u64| {
        if from == 0 || to == 0 {
            0.0
        } else {
            to.saturating_sub(from) as f64 / 1e6
        }
    };
    let drain_s = secs(t.started_us, t.last_recv_us);
    let per_s = |n: f64| if drain_s > 0.0 { n / drain_s } else { 0.0 };
    CatchUpSummary {
        backlog_messages: backlog.0,
        backlog_bytes: backlog.1,
        page_cache,
        pause_s: secs(t.last_ack_us, t.started_us),
        assign_s: secs(t.started_us, t.assigned_us),
        first_message_s: secs(t.started_us, t.first_recv_us),
        drain_s,
        drained_messages: drained.0,
        drained_bytes: drained.1,
        drain_msgs_per_s: per_s(drained.0 as f64),
        drain_mib_per_s: per_s(drained.1 as f64 / MIB),
        complete,
    }
}

/// The terminal lines of a catch-up run.
pub fn terminal_line(c: &CatchUpSummary) -> String {
    format!(
        "catch-up: backlog {} msgs ({:.1} MiB), page cache {}\n\
         catch-up: drained {} msgs in {:.2} s = {:.0} msgs/s, {:.1} MiB/s (first message after \
         {:.2} s, group settled after {:.2} s){}",
        c.backlog_messages,
        c.backlog_bytes as f64 / MIB,
        c.page_cache,
        c.drained_messages,
        c.drain_s,
        c.drain_msgs_per_s,
        c.drain_mib_per_s,
        c.first_message_s,
        c.assign_s,
        if c.complete {
            ""
        } else {
            "; INCOMPLETE: a group did not read the whole backlog"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_rates_are_over_the_time_from_start_to_last_message() {
        let t = Times {
            last_ack_us: 1_000_000,
            started_us: 1_500_000,
            assigned_us: 2_000_000,
            first_recv_us: 2_100_000,
            last_recv_us: 5_500_000,
        };
        let c = summarize((1000, 1 << 20), (1000, 1 << 20), t, "dropped".into(), true);
        assert_eq!(c.pause_s, 0.5);
        assert_eq!(c.assign_s, 0.5);
        assert!((c.first_message_s - 0.6).abs() < 1e-9);
        assert_eq!(c.drain_s, 4.0);
        assert_eq!(c.drain_msgs_per_s, 250.0);
        assert_eq!(c.drain_mib_per_s, 0.25);
        // Nothing received: no rate, not a division by zero.
        let none = summarize((10, 10), (0, 0), Times::default(), "x".into(), false);
        assert_eq!((none.drain_s, none.drain_msgs_per_s), (0.0, 0.0));
        assert!(terminal_line(&none).contains("INCOMPLETE"));
    }

    #[test]
    fn the_cache_is_not_dropped_when_not_wanted_or_not_local() {
        assert!(drop_page_cache(false, true).starts_with("not dropped: consumers.drop_page_cache"));
        assert!(drop_page_cache(true, false).contains("external cluster"));
    }
}
