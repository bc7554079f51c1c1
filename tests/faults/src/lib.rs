//! The fault-injection suite's machinery: its own servers ([`infra`]), the pipeline as real
//! processes ([`pipeline`]), a storefront placing orders ([`load`]), the promises checked from the
//! outside ([`invariants`]) and the scenarios that strike while orders flow ([`scenario`]).
//! `tests/faults.rs` runs the scenarios and prints the table.

pub mod infra;
pub mod invariants;
pub mod load;
pub mod pipeline;
pub mod process;
pub mod scenario;
pub mod topic;
