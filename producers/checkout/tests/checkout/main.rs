//! Checkout against the real stack, in one test binary.

mod api;
mod common;
mod kafka_outage;
mod metrics;
mod migrate;
mod relay;
