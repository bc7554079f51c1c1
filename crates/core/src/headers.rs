//! Kafka header names the runtime, `orderflowctl` and operators share: why an event was
//! dead-lettered or parked for retry, where it came from, and what an operator asked for.

/// Why the event was dead-lettered.
pub const REASON: &str = "x-dlq-reason";
/// Attempts this group made on the event in all, up to and including the failing one.
pub const ATTEMPTS: &str = "x-dlq-attempts";
/// The consumer group that failed.
pub const GROUP: &str = "x-dlq-group";
/// When it was dead-lettered (RFC 3339).
pub const FAILED_AT: &str = "x-dlq-failed-at";
/// The topic, partition and offset the event was first read from.
pub const ORIGIN_TOPIC: &str = "x-origin-topic";
pub const ORIGIN_PARTITION: &str = "x-origin-partition";
pub const ORIGIN_OFFSET: &str = "x-origin-offset";

/// On a retry-topic message: attempts already made on the event by its group before this
/// delivery (absent: none), so a redriven event that fails again is dead-lettered with its
/// attempt count increased.
pub const RETRY_ATTEMPTS: &str = "x-retry-attempts";
/// On a retry-topic message: how many times the runtime parked the event on the retry topic
/// (absent: 0, as for a redrive or a replay, which get the whole retry schedule again).
pub const RETRY_ROUND: &str = "x-retry-round";
/// On a retry-topic message: the time (RFC 3339) before which it must not be processed
/// (absent: at once).
pub const RETRY_NOT_BEFORE: &str = "x-retry-not-before";
/// On a retry-topic message parked by the runtime: the failure that parked it.
pub const RETRY_REASON: &str = "x-retry-reason";
/// On a retry-topic message: `true` when an operator asked the group to process the event
/// again even though it already did (`orderflowctl replay --reprocess`).
pub const REPROCESS: &str = "x-orderflow-reprocess";
/// On a retry-topic message written by `orderflowctl`: what put it there (`redrive` or
/// `replay`) and when, for the audit trail.
pub const OPERATOR_ACTION: &str = "x-orderflow-operator-action";

/// Headers the runtime and `orderflowctl` own; they are dropped when an event is copied to a
/// dead-letter or retry topic, where they are written afresh.
pub fn is_runtime_header(name: &str) -> bool {
    name.starts_with("x-dlq-")
        || name.starts_with("x-origin-")
        || name.starts_with("x-retry-")
        || name.starts_with("x-orderflow-")
}
