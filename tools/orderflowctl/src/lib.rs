//! `orderflowctl`, the operators' command line for the orderflow pipeline. Every command is a
//! library function returning a report (text through `Display`, JSON through `Serialize`), so
//! tests and the fault suite drive the same code the binary runs:
//!
//! - [`topics::apply`]: make the cluster match `deploy/topics.txt`;
//! - [`lag::lag`]: committed offset, end offset, lag and oldest unprocessed event per group;
//! - [`dlq::list`], [`dlq::show`], [`dlq::redrive`]: a group's dead letters;
//! - [`replay::replay`]: deliver a window of a topic again to chosen groups only;
//! - [`order::order`]: where one order is, per consumer, with its effect.

pub mod cli;
pub mod cluster;
pub mod dlq;
mod error;
pub mod lag;
pub mod order;
pub mod record;
pub mod replay;
pub mod topics;

pub use cli::{run, Cli};
pub use cluster::Cluster;
pub use error::Error;
