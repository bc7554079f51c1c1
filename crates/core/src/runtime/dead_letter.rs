//! Dead letters: an event the handler cannot process (undecodable, permanently failing, or out of
//! retries) is copied with its key and headers to `<topic>.<group>.dlq`, with headers saying why
//! and where it came from, so its partition can move on and an operator can redrive it.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

use crate::headers::{
    is_runtime_header, ATTEMPTS, FAILED_AT, GROUP, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC,
    REASON,
};

pub(crate) struct DeadLetters {
    pub producer: FutureProducer,
    pub topic: String,
    pub group: String,
}

impl DeadLetters {
    /// Publishes the dead letter, retrying until the broker takes it: a dead letter must never
    /// vanish, and the origin offset is not committed before it is stored.
    pub async fn publish(&self, message: &OwnedMessage, reason: &str, attempts: u32) {
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in rdkafka::message::Headers::iter(original) {
                if !is_runtime_header(h.key) {
                    headers = headers.insert(Header {
                        key: h.key,
                        value: h.value,
                    });
                }
            }
        }
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let attempts = attempts.to_string();
        let failed_at = chrono::Utc::now().to_rfc3339();
        for (key, value) in [
            (REASON, reason),
            (ATTEMPTS, attempts.as_str()),
            (GROUP, self.group.as_str()),
            (ORIGIN_TOPIC, message.topic()),
            (ORIGIN_PARTITION, partition.as_str()),
            (ORIGIN_OFFSET, offset.as_str()),
            (FAILED_AT, failed_at.as_str()),
        ] {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
        let send = || async {
            let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic).headers(headers.clone());
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            if let Some(payload) = message.payload() {
                record = record.payload(payload);
            }
            self.producer
                .send(record, Duration::from_secs(5))
                .await
                .map_err(|(e, _)| e)
        };
        let result = send
            .retry(
                ExponentialBuilder::default()
                    .with_max_delay(Duration::from_secs(30))
                    .with_jitter()
                    .without_max_times(),
            )
            .notify(|e, wait| {
                tracing::error!(error = %e, topic = %self.topic, ?wait, "dead-letter publish failed; retrying");
            })
            .await;
        if let Ok(delivery) = result {
            tracing::warn!(
                reason,
                dead_letter_topic = %self.topic,
                dead_letter_partition = delivery.partition,
                dead_letter_offset = delivery.offset,
                "event dead-lettered"
            );
        }
    }
}
