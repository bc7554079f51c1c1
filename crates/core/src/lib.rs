//! The shared core of orderflow: the `OrderPlaced` event and its Avro codec, configuration from the
//! environment, telemetry, Kafka client settings, the idempotency store and the consumer runtime
//! that every consumer service is built on.

pub mod codec;
pub mod config;
pub mod db;
pub mod event;
pub mod headers;
pub mod idempotency;
pub mod kafka;
pub mod observe;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod topics;

pub use codec::{DecodeError, EncodeError};
pub use event::OrderPlaced;
pub use runtime::{Batched, Delivery, Event, Handler, HandlerError};

/// The consumers' allocator: jemalloc, built (`.cargo/config.toml`) to hand freed pages back to
/// the system after 100 ms. A consumer far behind decompresses fetched batches on librdkafka's
/// threads and frees them on its own; glibc kept that memory in per-thread arenas, and a
/// consumer a million events behind held twice its live heap.
pub use tikv_jemallocator::Jemalloc as Allocator;
