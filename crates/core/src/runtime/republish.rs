//! Copies a consumed message to another topic (its group's dead-letter or retry topic) with its
//! key, payload and non-runtime headers, plus the runtime's own headers written afresh. The copy
//! is retried until the broker takes it: the original's offset is committed once the copy is
//! stored, so a copy that failed for good would lose the event.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;

use crate::headers::is_runtime_header;

pub(crate) struct Republisher {
    pub producer: FutureProducer,
}

impl Republisher {
    /// Publishes the copy of `message` to `topic` with `headers` added, retrying with backoff
    /// until the broker takes it; returns the copy's partition and offset.
    pub async fn publish(
        &self,
        topic: &str,
        message: &OwnedMessage,
        headers: &[(&str, &str)],
    ) -> (i32, i64) {
        let mut copied = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter().filter(|h| !is_runtime_header(h.key)) {
                copied = copied.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        for &(key, value) in headers {
            copied = copied.insert(Header {
                key,
                value: Some(value),
            });
        }
        let send = || async {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(copied.clone());
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
        let delivered = send
            .retry(
                ExponentialBuilder::default()
                    .with_max_delay(Duration::from_secs(30))
                    .with_jitter()
                    .without_max_times(),
            )
            .notify(|e, wait| {
                tracing::error!(error = %e, topic, ?wait, "republishing the event failed; retrying");
            })
            .await
            .expect("retried without limit, so it only returns once delivered");
        (delivered.partition, delivered.offset)
    }
}
