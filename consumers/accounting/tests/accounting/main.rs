//! Accounting against the real stack (Kafka, Postgres), in one test binary. Every test has its
//! own topic, consumer group and schema.

mod common;
mod crash;
mod database;
mod export;
mod journal;
mod metrics;
