//! kbench: a benchmarking and load-testing harness for Kafka.
//!
//! The binary (`src/main.rs`) is thin: it parses the command line and calls into these modules.
//! The run path is scenario → target → workload → measurement → verification → report; each
//! step is one module named for what it is.

pub mod catch_up;
pub mod cli;
pub mod cluster;
pub mod compare;
pub mod fault;
pub mod ledger;
pub mod max_rate;
pub mod measure;
pub mod merge;
pub mod report;
pub mod run;
pub mod runset;
pub mod sampler;
pub mod scenario;
pub mod shard;
pub mod stats;
pub mod summary;
pub mod sut;
pub mod verify;
pub mod workload;
