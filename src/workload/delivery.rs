//! Delivery reports served on the sending thread, as librdkafka's own `rdkafka_performance`
//! does, instead of on a poll thread of their own (rust-rdkafka's `ThreadedProducer`).
//!
//! A second thread per producer cost more than its share of the work: librdkafka's broker thread
//! had to wake it (a futex call per report batch), and every message was allocated on one thread
//! and freed on the other, so the allocator took a lock on both sides and its per-thread caches
//! never hit. On the sending thread, reports are served between sends (every
//! [`SERVE_EVERY`] messages, a non-blocking poll) and whenever the thread would otherwise wait:
//! for room in librdkafka's queue, for a paced message's due time, for the last reports.
//!
//! Waiting must not delay a report: a report is timed when it is served, so one that sat in the
//! queue while the thread slept would read as latency. librdkafka's queue wait counts in whole
//! milliseconds (and rust-rdkafka's `poll(timeout)` keeps polling without sleeping for what is
//! left of a millisecond after each event), so the thread waits on a [`Wake`] instead: an
//! eventfd librdkafka writes when a report arrives in the empty queue, waited on with a timeout
//! in nanoseconds. A report is served within microseconds of its arrival, as the poll thread did.
//!
//! One event carries the reports of a whole batch; [`ReportClock`] reads the clock once per event
//! for all of them.

use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::time::TimeSpec;

use crate::measure::now_us;

/// Messages sent between two non-blocking serves of the report queue at full speed: a report
/// waits at most the time 32 sends take (tens of microseconds), and a serve, a few clock reads
/// and a lock, costs a few nanoseconds per message.
pub(super) const SERVE_EVERY: u64 = 32;

/// What the sending thread waits on: written by librdkafka when an event lands in the empty
/// report queue (once per stretch between two polls, `rd_kafka_queue_io_event_enable`).
///
/// Owned by the client's context, so it outlives the client: librdkafka writes the descriptor
/// until it is destroyed, and a closed descriptor's number could be reused by another file.
#[derive(Debug)]
pub(super) struct Wake {
    fd: EventFd,
}

impl Wake {
    /// A new, unattached wake.
    pub(super) fn new() -> std::io::Result<Wake> {
        let fd = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(Wake { fd })
    }

    /// Has librdkafka write this wake when an event arrives in `queue`, then empty (it writes
    /// only when the queue's length goes from 0 to 1, so wait only on an empty queue).
    ///
    /// # Safety
    /// `queue` is a live queue handle of a client whose context owns this wake.
    #[allow(unsafe_code)]
    pub(super) unsafe fn attach(&self, queue: *mut rdkafka::bindings::rd_kafka_queue_t) {
        // An eventfd takes exactly eight bytes, a count to add.
        let one: u64 = 1;
        // SAFETY: per the contract, `queue` is live; the payload is copied by librdkafka.
        unsafe {
            rdkafka::bindings::rd_kafka_queue_io_event_enable(
                queue,
                self.fd.as_raw_fd(),
                (&raw const one).cast(),
                std::mem::size_of::<u64>(),
            );
        }
    }

    /// Waits until librdkafka writes the wake or `timeout` passes, whichever is first, and
    /// clears it. Call with the queue empty; serve it after.
    pub(super) fn wait(&self, timeout: Duration) {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        // EINTR or a spurious return only makes the caller serve an empty queue and wait again.
        let _ = nix::poll::ppoll(&mut fds, Some(TimeSpec::from_duration(timeout)), None);
        let _ = self.fd.read(); // EAGAIN when it was not written: nothing to clear
    }
}

/// The time delivery reports are recorded at: read once per event (all reports of one served
/// event share it), or per report where events are served several to a call.
#[derive(Debug)]
pub(super) struct ReportClock {
    /// `PER_REPORT`, `UNREAD` (a one-event serve began) or the time read for it.
    now: AtomicU64,
}

const PER_REPORT: u64 = u64::MAX;
const UNREAD: u64 = 0;

impl Default for ReportClock {
    fn default() -> Self {
        ReportClock {
            now: AtomicU64::new(PER_REPORT),
        }
    }
}

impl ReportClock {
    /// Runs `serve_one_event` with one clock read for its reports.
    pub(super) fn per_event(&self, serve_one_event: impl FnOnce()) {
        self.now.store(UNREAD, Ordering::Relaxed);
        serve_one_event();
        self.now.store(PER_REPORT, Ordering::Relaxed);
    }

    /// The time of a report being served now (µs since the epoch). Every report asks once.
    pub(super) fn now(&self) -> u64 {
        match self.now.load(Ordering::Relaxed) {
            PER_REPORT => now_us(),
            UNREAD => {
                let t = now_us().max(1);
                self.now.store(t, Ordering::Relaxed);
                t
            }
            t => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_read_once_per_event_and_per_report_outside_one() {
        let c = ReportClock::default();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.now() > a, "outside an event every report reads the clock");
        let (mut x, mut y) = (0, 0);
        c.per_event(|| {
            x = c.now();
            std::thread::sleep(Duration::from_millis(2));
            y = c.now();
        });
        assert_eq!(x, y, "one read for the event");
        std::thread::sleep(Duration::from_millis(2));
        assert!(c.now() > y, "per report again after it");
    }

    #[test]
    fn a_wait_ends_at_its_timeout_or_when_written() {
        let w = Wake::new().expect("eventfd");
        let t = std::time::Instant::now();
        w.wait(Duration::from_millis(20));
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "not written: the timeout"
        );
        w.fd.write(1).expect("write");
        let t = std::time::Instant::now();
        w.wait(Duration::from_secs(10));
        assert!(t.elapsed() < Duration::from_secs(5), "written: at once");
        let t = std::time::Instant::now();
        w.wait(Duration::from_millis(20));
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "the wait cleared it"
        );
    }
}
