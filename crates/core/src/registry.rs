//! Optional Confluent Schema Registry framing, for back offices whose tools (Kafka Connect,
//! ksqlDB, Flink, Spark) read Confluent's wire format: a zero byte, the schema's registry id as
//! 4 bytes big-endian, then the Avro binary body.
//!
//! With `ORDERFLOW_SCHEMA_REGISTRY_URL` set (the registry's Confluent-compatible API, e.g.
//! `http://127.0.0.1:8081/apis/ccompat/v7` for Apicurio Registry), producers register the schema
//! they write under the subject `<topic>-value` (Confluent's TopicNameStrategy) and send that
//! framing; without it they send Avro single-object encoding. Checkout's outbox keeps single-object
//! bytes either way and the relay re-frames them when it sends, so a registry outage holds
//! messages back instead of refusing orders. Consumers accept both framings; a Confluent schema
//! id is looked up once and cached (ids never change meaning).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use serde::Deserialize;

use crate::codec::{self, SchemaFamily};
use crate::config::{self, ConfigError, Source};
use crate::runtime::Event;

/// The registry's Confluent-compatible API, when producers should register and frame.
pub const SCHEMA_REGISTRY_URL: &str = "ORDERFLOW_SCHEMA_REGISTRY_URL";

/// The first byte of a Confluent-framed message.
pub const CONFLUENT_MAGIC: u8 = 0;

/// Why the registry could not help.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No answer, or a 5xx: the same request may succeed later.
    #[error("schema registry {url} is unavailable: {reason}")]
    Unavailable { url: String, reason: String },
    /// The registry said no (an unknown id, a schema its compatibility rules refuse): asking
    /// again changes nothing until someone changes the registry.
    #[error("schema registry {url} refused: {reason}")]
    Refused { url: String, reason: String },
    /// A message that is not single-object encoded with a known version of the family.
    #[error("cannot re-frame for the registry: {0}")]
    NotOurs(#[from] codec::DecodeError),
}

impl RegistryError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// (subject, fingerprint) → id.
type RegisteredIds = HashMap<(String, [u8; 8]), u32>;

/// A client of a Confluent-compatible schema registry, with the ids it has learnt.
#[derive(Clone, Debug)]
pub struct SchemaRegistry {
    http: reqwest::Client,
    url: String,
    /// What this process registered.
    registered: Arc<Mutex<RegisteredIds>>,
    /// id → writer schema and its fingerprint, for what this process read.
    schemas: Arc<Mutex<HashMap<u32, Writer>>>,
}

/// A writer schema from the registry, with its fingerprint worked out once.
type Writer = (Arc<Schema>, [u8; 8]);

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
}

/// The subject a topic's values are registered under (Confluent's TopicNameStrategy).
pub fn subject(topic: &str) -> String {
    format!("{topic}-value")
}

impl SchemaRegistry {
    /// `ORDERFLOW_SCHEMA_REGISTRY_URL`, if set.
    pub fn from_source(src: &impl Source) -> Result<Option<Self>, ConfigError> {
        if src.get(SCHEMA_REGISTRY_URL).is_none() {
            return Ok(None);
        }
        Ok(Some(Self::new(config::url(
            src,
            SCHEMA_REGISTRY_URL,
            &["http", "https"],
        )?)))
    }

    pub fn new(url: String) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client with a timeout builds");
        Self {
            http,
            url,
            registered: Arc::default(),
            schemas: Arc::default(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn unavailable(&self, reason: impl ToString) -> RegistryError {
        RegistryError::Unavailable {
            url: self.url.clone(),
            reason: reason.to_string(),
        }
    }

    /// Turns an answer into its JSON body, or the error its status means.
    async fn body<T: serde::de::DeserializeOwned>(
        &self,
        answer: reqwest::Result<reqwest::Response>,
    ) -> Result<T, RegistryError> {
        let response = answer.map_err(|e| self.unavailable(e))?;
        let status = response.status();
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(self.unavailable(format!("{status}")));
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(RegistryError::Refused {
                url: self.url.clone(),
                reason: format!("{status}: {text}"),
            });
        }
        response
            .json()
            .await
            .map_err(|e| self.unavailable(format!("unreadable answer: {e}")))
    }

    /// The registry's id of the schema `source` under `subject`, registering it if it is new
    /// there (registering a schema the subject has already returns its id).
    pub async fn register(
        &self,
        subject: &str,
        source: &str,
        fingerprint: [u8; 8],
    ) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), fingerprint);
        if let Some(id) = self.registered.lock().expect("not poisoned").get(&key) {
            return Ok(*id);
        }
        let answer = self
            .http
            .post(format!("{}/subjects/{subject}/versions", self.url))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({ "schema": source, "schemaType": "AVRO" }))
            .send()
            .await;
        let Registered { id } = self.body(answer).await?;
        self.registered
            .lock()
            .expect("not poisoned")
            .insert(key, id);
        Ok(id)
    }

    /// The writer schema the registry holds under `id`.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>, RegistryError> {
        Ok(self.writer(id).await?.0)
    }

    /// The writer schema under `id` and its fingerprint, which picks the known version it is.
    async fn writer(&self, id: u32) -> Result<Writer, RegistryError> {
        if let Some(writer) = self.schemas.lock().expect("not poisoned").get(&id) {
            return Ok(writer.clone());
        }
        let answer = self
            .http
            .get(format!("{}/schemas/ids/{id}", self.url))
            .send()
            .await;
        let SchemaById { schema } = self.body(answer).await?;
        let schema = Arc::new(
            Schema::parse_str(&schema).map_err(|e| RegistryError::Refused {
                url: self.url.clone(),
                reason: format!("schema id {id} is not valid Avro: {e}"),
            })?,
        );
        let writer = (Arc::clone(&schema), codec::fingerprint_of(&schema));
        self.schemas
            .lock()
            .expect("not poisoned")
            .insert(id, writer.clone());
        Ok(writer)
    }

    /// Re-frames a single-object encoded message of `family` for `topic`: registers its
    /// writer version under the topic's subject and swaps the header for Confluent's.
    pub async fn confluent_frame(
        &self,
        topic: &str,
        family: &SchemaFamily,
        single_object: &[u8],
    ) -> Result<Vec<u8>, RegistryError> {
        let (version, body) = codec::split_single_object(family, single_object)?;
        let id = self
            .register(&subject(topic), version.source, version.fingerprint)
            .await?;
        let mut framed = Vec::with_capacity(5 + body.len());
        framed.push(CONFLUENT_MAGIC);
        framed.extend_from_slice(&id.to_be_bytes());
        framed.extend_from_slice(body);
        Ok(framed)
    }
}

/// Why a payload gave no event.
#[derive(Debug, thiserror::Error)]
pub enum Undecodable {
    /// The same bytes never decode.
    #[error("{0}")]
    Poison(String),
    /// The writer schema could not be fetched now; the bytes may decode later.
    #[error(transparent)]
    RegistryUnavailable(RegistryError),
}

/// The event in a payload of either framing: Avro single-object, or Confluent's, whose writer
/// schema `registry` gives. A Confluent payload without a registry, or with an id the registry
/// refuses, is poison; an unreachable registry is not.
pub async fn decode<E: Event>(
    registry: Option<&SchemaRegistry>,
    bytes: &[u8],
) -> Result<E, Undecodable> {
    let poison = |e: &dyn std::fmt::Display| Undecodable::Poison(e.to_string());
    let Some((id, body)) = confluent_parts(bytes) else {
        return E::decode(bytes).map_err(|e| poison(&e));
    };
    let Some(registry) = registry else {
        return Err(Undecodable::Poison(format!(
            "message is Confluent-framed (schema id {id}) but no schema registry is configured \
             ({SCHEMA_REGISTRY_URL})"
        )));
    };
    let (writer, fingerprint) = registry.writer(id).await.map_err(|e| {
        if e.is_retryable() {
            Undecodable::RegistryUnavailable(e)
        } else {
            poison(&format!("schema id {id}: {e}"))
        }
    })?;
    codec::decode_fingerprinted(E::family(), &writer, &fingerprint, body).map_err(|e| poison(&e))
}

/// The schema id of a Confluent-framed message and its body, or `None` for another framing.
pub fn confluent_parts(bytes: &[u8]) -> Option<(u32, &[u8])> {
    match bytes {
        [CONFLUENT_MAGIC, a, b, c, d, body @ ..] => {
            Some((u32::from_be_bytes([*a, *b, *c, *d]), body))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confluent_framing_is_a_zero_then_the_id_big_endian() {
        assert_eq!(
            confluent_parts(&[0, 0, 0, 1, 2, 0xAA]),
            Some((258, &[0xAA][..]))
        );
        assert_eq!(confluent_parts(&[0xC3, 0x01, 0, 0, 0]), None);
        assert_eq!(confluent_parts(&[0, 0, 1]), None);
    }

    #[test]
    fn the_url_is_optional_and_checked() {
        assert!(SchemaRegistry::from_source(&[("X", "y")])
            .unwrap()
            .is_none());
        let registry = SchemaRegistry::from_source(&[(
            SCHEMA_REGISTRY_URL,
            "http://127.0.0.1:8081/apis/ccompat/v7/",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(registry.url(), "http://127.0.0.1:8081/apis/ccompat/v7");
        assert!(SchemaRegistry::from_source(&[(SCHEMA_REGISTRY_URL, "ftp://x")]).is_err());
        assert_eq!(subject("orders.placed"), "orders.placed-value");
    }
}
