//! Verification: the checks that decide whether a run passed, each producing its part of
//! `summary.json` and one failure line per broken expectation, naming the subject and the
//! numbers.
//!
//! - [`delivery`]: the ledger's verdict per consumer group against the scenario's guarantee;
//! - [`offsets`]: per partition, end − start offset against acknowledged messages;
//! - [`on_disk`]: log-directory growth against payload bytes × replication factor;
//! - [`log_dirs`]: partition sizes from any cluster through the DescribeLogDirs API;
//! - [`final_read`]: one reader reads the whole topic after the run: what the log still holds.

pub mod delivery;
pub mod final_read;
pub mod log_dirs;
pub mod offsets;
pub mod on_disk;
