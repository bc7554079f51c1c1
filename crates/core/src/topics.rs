//! Topic names. The deployed list of topics (with partitions and retention) is declared once in
//! `deploy/topics.txt`, which `scripts/stack.sh` and the Kubernetes topic job create from.

/// Paid orders accepted by checkout, keyed by order id.
pub const ORDERS_PLACED: &str = "orders.placed";

/// The dead-letter topic of one consumer group on one topic: `<topic>.<group>.dlq`.
pub fn dead_letter_topic(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.dlq")
}
