//! `orderflowctl` against the real stack (Kafka, Postgres), in one test binary. Every test owns
//! its topics, consumer groups and schemas.

mod binary;
mod common;
mod dlq;
mod lag;
mod order;
mod replay;
mod topics;
