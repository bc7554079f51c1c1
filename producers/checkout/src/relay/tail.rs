//! Reads the newest messages of a topic to find which outbox rows are already on it. After an
//! interruption (a crash, a lost database connection, a send that timed out) the relay cannot
//! know from Postgres whether Kafka took the rows it last sent; the topic's tail can tell.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use orderflow_core::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};

/// The values of `header` on the last `window` messages of each partition of `topic`.
pub async fn header_values(
    kafka: &KafkaConfig,
    topic: &str,
    header: &'static str,
    window: i64,
) -> Result<HashSet<String>, KafkaError> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || read_tail(&kafka, &topic, header, window))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn read_tail(
    kafka: &KafkaConfig,
    topic: &str,
    header: &str,
    window: i64,
) -> Result<HashSet<String>, KafkaError> {
    // Assigned, never subscribed: the group id is required but no offset is ever committed.
    let consumer: BaseConsumer = orderflow_core::kafka::client_config(kafka)
        .set("group.id", "orderflow-checkout-relay-tail")
        .set("enable.auto.commit", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
        if high > low {
            ends.insert(partition.id(), high);
            assignment.add_partition_offset(
                topic,
                partition.id(),
                Offset::Offset((high - window).max(low)),
            )?;
        }
    }
    let mut values = HashSet::new();
    if ends.is_empty() {
        return Ok(values);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ends.is_empty() {
        if Instant::now() > deadline {
            return Err(KafkaError::MessageConsumption(
                rdkafka::types::RDKafkaErrorCode::OperationTimedOut,
            ));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        if let Some(value) = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == header))
            .and_then(|h| h.value)
        {
            values.insert(String::from_utf8_lossy(value).into_owned());
        }
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    Ok(values)
}
