//! kbroker: a broker that speaks the Apache Kafka wire protocol.
//!
//! Layers, outermost first: [`cli`] (the command line) → [`server`] (accept loop, shutdown) →
//! `connection` (frames) → [`request`] (a frame's bytes into a typed request, bounds-checked) →
//! `handlers` (one module per Kafka API, registered in one table) →
//! `topics`/`partition` (the registry and serving state) → [`log`] (segments on disk).
//! [`config`] reads Kafka's `server.properties`.

mod broker;
pub mod cli;
mod clock;
pub(crate) mod cluster;
mod cluster_view;
pub mod config;
mod connection;
pub(crate) mod group;
mod handlers;
pub mod log;
mod metadata_sync;
mod partition;
mod producer_ids;
mod record_fields;
mod replication;
pub mod request;
pub mod server;
mod topic_admin;
mod topics;
mod txn;
mod wire;

pub use broker::StartError;
pub use config::BrokerConfig;
pub use connection::{decode_request, served_requests};
