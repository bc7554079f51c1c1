//! Dead letters: an event the handler cannot process (undecodable, permanently failing, or out of
//! retries) is copied with its key and headers to `<topic>.<group>.dlq`, with headers saying why,
//! after how many attempts and where it was first read, so its partition can move on and an
//! operator can redrive it.

use std::sync::Arc;

use rdkafka::message::OwnedMessage;

use super::republish::Republisher;
use super::retry::History;
use crate::headers::{ATTEMPTS, FAILED_AT, GROUP, REASON};

pub(crate) struct DeadLetters {
    pub republisher: Arc<Republisher>,
    pub topic: String,
    pub group: String,
}

impl DeadLetters {
    /// Publishes the dead letter, retrying until the broker takes it: a dead letter must never
    /// vanish, and the origin offset is not committed before it is stored. `attempts` are this
    /// delivery's; the header counts the event's attempts in all, earlier rounds and redrives
    /// included.
    pub async fn publish(
        &self,
        message: &OwnedMessage,
        history: &History,
        reason: &str,
        attempts: u32,
    ) {
        let attempts = history.prior_attempts.saturating_add(attempts).to_string();
        let failed_at = chrono::Utc::now().to_rfc3339();
        let carried = history.carried();
        let mut headers: Vec<(&str, &str)> = vec![
            (REASON, reason),
            (ATTEMPTS, &attempts),
            (GROUP, &self.group),
            (FAILED_AT, &failed_at),
        ];
        headers.extend(carried.iter().map(|(k, v)| (*k, v.as_str())));
        let (partition, offset) = self
            .republisher
            .publish(&self.topic, message, &headers)
            .await;
        tracing::warn!(
            reason,
            attempts,
            dead_letter_topic = %self.topic,
            dead_letter_partition = partition,
            dead_letter_offset = offset,
            "event dead-lettered"
        );
    }
}
