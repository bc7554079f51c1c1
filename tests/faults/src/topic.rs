//! Reading and writing a run's topics from the outside, as an operator's tool would.

use std::time::{Duration, Instant};

use orderflow_core::config::KafkaConfig;
use orderflow_core::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Every message of `topic` up to its current end, exactly: each partition is read from the
/// beginning to the high watermark taken when the read started.
pub async fn read_all(kafka: &KafkaConfig, topic: &str) -> Result<Vec<OwnedMessage>, String> {
    let (kafka, topic) = (kafka.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || read_all_blocking(&kafka, &topic))
        .await
        .map_err(|e| e.to_string())?
}

fn read_all_blocking(kafka: &KafkaConfig, topic: &str) -> Result<Vec<OwnedMessage>, String> {
    let consumer: BaseConsumer = kafka::client_config(kafka)
        .set("group.id", "orderflow-faults-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("metadata of {topic}: {e}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut remaining = 0usize;
    let mut assignment = TopicPartitionList::new();
    let mut ends = std::collections::HashMap::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
        if high > low {
            remaining += 1;
            ends.insert(p, high);
            assignment
                .add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(|e| e.to_string())?;
        }
    }
    let mut messages = Vec::new();
    if remaining == 0 {
        return Ok(messages);
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while remaining > 0 {
        if Instant::now() > deadline {
            return Err(format!("reading {topic} did not reach its end within 60 s"));
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let end = ends[&m.partition()];
                if m.offset() < end {
                    if m.offset() + 1 == end {
                        remaining -= 1;
                    }
                    messages.push(m.detach());
                }
            }
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
            None => {}
        }
    }
    Ok(messages)
}

/// Produces raw messages (key, payload) to `topic`.
pub async fn produce(
    kafka: &KafkaConfig,
    topic: &str,
    messages: &[(String, Vec<u8>)],
) -> Result<(), String> {
    let producer: FutureProducer =
        kafka::idempotent_producer(kafka, Duration::from_secs(30)).map_err(|e| e.to_string())?;
    for (key, payload) in messages {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| format!("producing to {topic}: {e}"))?;
    }
    Ok(())
}
