//! Notifications against the real stack (Kafka, Postgres, RabbitMQ) and the SMTP sink, in one
//! test binary.

mod common;
mod crash;
mod delivery;
mod failures;
mod locale;
