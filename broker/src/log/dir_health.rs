//! Which log directories appends cannot write to, so that a full disk is reported once, by
//! name, rather than once per refused request.
//!
//! A failed append of any partition log (a produce, a follower's copy, the group or transaction
//! stores) marks its log directory, the parent of the partition directory, as failing; the first
//! failure says so in one `error` line naming the directory, the partition and the OS error
//! ("No space left on device"). Later failures in the same directory are only counted. The next
//! append that succeeds there clears the mark with one `info` line giving how many appends were
//! refused meanwhile. A disk on the edge of full can flip between the two with every small
//! append that still fits, so the error line for one directory is repeated at most once per
//! [`REPORT_EVERY`].
//!
//! The record is process-wide because a log directory is: every partition log in it shares the
//! same file system. Nothing else depends on it; kbroker does not take a failing directory
//! offline as Kafka does (see the README, "kbroker on its own"), because an append that fails
//! leaves its log exactly as it was and the next one after space returns is clean.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::LogError;

/// Least time between two error lines about the same directory.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// Number of directories marked failing: lets a successful append skip the lock.
static FAILING: AtomicUsize = AtomicUsize::new(0);

/// The directories that have failed since the process started.
static DIRS: Mutex<DirHealth> = Mutex::new(DirHealth::new());

/// Records that an append to the partition log in `partition_dir` failed with `error`; only
/// storage errors ([`LogError::Io`]) count.
pub(crate) fn append_failed(partition_dir: &Path, error: &LogError) {
    let LogError::Io { source, .. } = error else {
        return;
    };
    let (log_dir, partition) = split(partition_dir);
    let report = {
        let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
        let report = dirs.failed(&log_dir, Instant::now());
        FAILING.store(dirs.failing(), Ordering::Relaxed);
        report
    };
    if report {
        let what = if is_full(source) {
            "is full"
        } else {
            "cannot be written"
        };
        tracing::error!(
            log_dir = %log_dir.display(),
            partition,
            error = %super::display_chain(error),
            "log directory {} {what}: appends to its partitions are refused with \
             KAFKA_STORAGE_ERROR and leave the logs as they were, until space is freed",
            log_dir.display()
        );
    }
}

/// Records that an append to the partition log in `partition_dir` succeeded.
pub(crate) fn append_succeeded(partition_dir: &Path) {
    if FAILING.load(Ordering::Relaxed) == 0 {
        return;
    }
    let (log_dir, _) = split(partition_dir);
    let refused = {
        let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
        let refused = dirs.succeeded(&log_dir);
        FAILING.store(dirs.failing(), Ordering::Relaxed);
        refused
    };
    if let Some(refused) = refused {
        tracing::info!(log_dir = %log_dir.display(), refused,
            "log directory {} accepts appends again ({refused} refused meanwhile)",
            log_dir.display());
    }
}

/// Whether `e` says the file system (or the user's quota on it) is full.
pub(crate) fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// The log directory and the partition directory's name.
fn split(partition_dir: &Path) -> (PathBuf, String) {
    let log_dir = partition_dir
        .parent()
        .unwrap_or(partition_dir)
        .to_path_buf();
    let partition = partition_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (log_dir, partition)
}

/// The state behind [`append_failed`] and [`append_succeeded`], without the logging.
#[derive(Debug)]
struct DirHealth {
    /// Directories that failed at least once.
    dirs: BTreeMap<PathBuf, DirState>,
}

#[derive(Debug, Default)]
struct DirState {
    /// Appends are failing (no success since the last failure).
    failing: bool,
    /// Appends refused since the directory started failing.
    refused: u64,
    /// When the last error line about the directory was written.
    reported_at: Option<Instant>,
    /// Whether an error line was written for the current failing spell.
    reported: bool,
}

impl DirHealth {
    const fn new() -> Self {
        DirHealth {
            dirs: BTreeMap::new(),
        }
    }

    /// Counts a failure; true when an error line is due.
    fn failed(&mut self, dir: &Path, now: Instant) -> bool {
        let state = self.dirs.entry(dir.to_path_buf()).or_default();
        state.refused += 1;
        if state.failing {
            return false;
        }
        state.failing = true;
        state.reported = state
            .reported_at
            .is_none_or(|at| now.duration_since(at) >= REPORT_EVERY);
        if state.reported {
            state.reported_at = Some(now);
        }
        state.reported
    }

    /// Clears a failing directory; the appends refused meanwhile when a line is due (the
    /// failing spell was reported).
    fn succeeded(&mut self, dir: &Path) -> Option<u64> {
        let state = self.dirs.get_mut(dir)?;
        if !state.failing {
            return None;
        }
        state.failing = false;
        let refused = std::mem::take(&mut state.refused);
        state.reported.then_some(refused)
    }

    /// Number of directories currently failing.
    fn failing(&self) -> usize {
        self.dirs.values().filter(|s| s.failing).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_directory_is_reported_once_per_spell_and_at_most_once_a_minute() {
        let mut h = DirHealth::new();
        let (a, b) = (Path::new("/data/a"), Path::new("/data/b"));
        let t0 = Instant::now();
        assert!(h.failed(a, t0), "the first failure is reported");
        assert!(!h.failed(a, t0), "later ones are counted");
        assert!(h.failed(b, t0), "each directory has its own report");
        assert_eq!(h.failing(), 2);
        assert_eq!(
            h.succeeded(a),
            Some(2),
            "recovery says how many were refused"
        );
        assert_eq!(h.succeeded(a), None, "and only once");
        assert_eq!(h.failing(), 1);

        // Flapping within a minute: counted, not reported again, recovery stays quiet.
        assert!(!h.failed(a, t0 + Duration::from_secs(5)));
        assert_eq!(h.succeeded(a), None);
        assert!(
            h.failed(a, t0 + REPORT_EVERY),
            "reported again after a minute"
        );
        assert_eq!(h.succeeded(Path::new("/data/never")), None);
    }

    #[test]
    fn only_storage_errors_mark_a_directory() {
        let dir = Path::new("/nonexistent-kbroker-test/t-0");
        append_failed(
            dir,
            &LogError::InvalidConfig {
                dir: dir.to_path_buf(),
                reason: "test".into(),
            },
        );
        let dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
        assert!(!dirs
            .dirs
            .contains_key(Path::new("/nonexistent-kbroker-test")));
    }

    #[test]
    fn full_means_enospc_or_quota() {
        assert!(is_full(&io::Error::from_raw_os_error(28)));
        assert!(is_full(&io::Error::from_raw_os_error(122)));
        assert!(!is_full(&io::Error::from_raw_os_error(5)));
    }
}
