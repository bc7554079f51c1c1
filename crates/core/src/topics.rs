//! Topic names. The deployed list of topics (with partitions and retention) is declared once in
//! `deploy/topics.txt`, which `scripts/stack.sh`, `orderflowctl topics apply` and the Kubernetes
//! topic job create from.

/// Paid orders accepted by checkout, keyed by order id.
pub const ORDERS_PLACED: &str = "orders.placed";

/// The dead-letter topic of one consumer group on one topic: `<topic>.<group>.dlq`.
pub fn dead_letter_topic(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.dlq")
}

/// The delayed-retry topic of one consumer group on one topic: `<topic>.<group>.retry`. Only
/// that group reads it, so an event parked there, redriven from the dead letters or replayed by
/// an operator reaches that group and no other.
pub fn retry_topic(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.retry")
}
