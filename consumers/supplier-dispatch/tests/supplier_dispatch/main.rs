//! supplier-dispatch against the real stack (Kafka, Postgres) and the supplier simulator, in one
//! test binary. Each test has its own topics, consumer group, schema and simulator.

mod common;
mod crash;
mod dispatch;
mod failures;
