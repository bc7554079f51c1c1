//! Kafka client settings built from [`KafkaConfig`], so every producer and consumer speaks to the
//! cluster the same way (brokers, TLS, SASL/SCRAM).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Base client settings: brokers and security.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &kafka.brokers);
    let sec = &kafka.security;
    if let Some(protocol) = &sec.protocol {
        cfg.set("security.protocol", protocol);
    }
    if let Some((mechanism, user, password)) = &sec.sasl {
        cfg.set("sasl.mechanism", mechanism)
            .set("sasl.username", user)
            .set("sasl.password", password);
    }
    for (key, value) in [
        ("ssl.ca.location", &sec.ssl_ca_location),
        ("ssl.certificate.location", &sec.ssl_certificate_location),
        ("ssl.key.location", &sec.ssl_key_location),
    ] {
        if let Some(value) = value {
            cfg.set(key, value);
        }
    }
    cfg
}

/// An idempotent producer (`acks=all`, no duplicates or reordering on retries), so per-key order
/// holds and a retried send never writes twice. `delivery_timeout` bounds how long one send may
/// wait for a broker before it reports failure to the caller.
pub fn idempotent_producer(
    kafka: &KafkaConfig,
    delivery_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    idempotent_producer_config(kafka, delivery_timeout).create()
}

/// The settings of `idempotent_producer`, for a caller that changes one before creating it.
pub fn idempotent_producer_config(kafka: &KafkaConfig, delivery_timeout: Duration) -> ClientConfig {
    let mut config = client_config(kafka);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "zstd")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        );
    config
}

/// A topic to create: name, partitions and retention.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub retention_ms: i64,
}

/// Creates topics that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &[TopicSpec]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let retention: Vec<String> = topics.iter().map(|t| t.retention_ms.to_string()).collect();
    let new: Vec<NewTopic> = topics
        .iter()
        .zip(&retention)
        .map(|(t, retention)| {
            NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1))
                .set("retention.ms", retention)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// A message's headers as UTF-8 name/value pairs (non-UTF-8 values are skipped).
pub fn header_pairs<M: Message>(message: &M) -> Vec<(String, String)> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .filter_map(|h| {
                    let value = std::str::from_utf8(h.value?).ok()?;
                    Some((h.key.to_string(), value.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}
