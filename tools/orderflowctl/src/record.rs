//! Records as operators see them: headers, the decoded `OrderPlaced` when the payload decodes,
//! and the copy of a record onto a group's retry topic that redrive and replay both write.

use orderflow_core::headers::{
    is_runtime_header, OPERATOR_ACTION, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC,
};
use orderflow_core::registry::{self, SchemaRegistry};
use orderflow_core::OrderPlaced;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use serde::Serialize;

/// A header's value: text when it is UTF-8, hex otherwise.
pub fn header_text(value: Option<&[u8]>) -> String {
    match value {
        None => String::new(),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => text.to_string(),
            Err(_) => format!("0x{}", hex(bytes)),
        },
    }
}

/// Every header of `message`, in order.
pub fn headers_of(message: &impl Message) -> Vec<(String, String)> {
    message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_string(), header_text(h.value)))
                .collect()
        })
        .unwrap_or_default()
}

/// The last value of header `name` (a record may repeat a header; the last one wins).
pub fn header(message: &impl Message, name: &str) -> Option<String> {
    message.headers().and_then(|headers| {
        headers
            .iter()
            .filter(|h| h.key == name)
            .last()
            .map(|h| header_text(h.value))
    })
}

/// The record's key as text (hex when it is not UTF-8).
pub fn key_of(message: &impl Message) -> Option<String> {
    message.key().map(|k| header_text(Some(k)))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The payload decoded as `OrderPlaced`, in either framing, or why it does not decode. A
/// Confluent-framed payload's writer schema comes from `registry`; call this off the async
/// runtime's workers (in `blocking`), as the lookup waits for the registry.
pub fn decode(
    message: &impl Message,
    registry: Option<&SchemaRegistry>,
) -> Result<OrderPlaced, String> {
    let bytes = message.payload().ok_or("no payload")?;
    tokio::runtime::Handle::current()
        .block_on(registry::decode(registry, bytes))
        .map_err(|e| e.to_string())
}

/// Where an event was first read from, as the `x-origin-*` headers say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl Origin {
    /// The origin recorded in the record's headers, if complete.
    pub fn of(message: &impl Message) -> Option<Self> {
        Some(Self {
            topic: header(message, ORIGIN_TOPIC)?,
            partition: header(message, ORIGIN_PARTITION)?.parse().ok()?,
            offset: header(message, ORIGIN_OFFSET)?.parse().ok()?,
        })
    }
}

/// What an operator action writes on a retry-topic copy besides the origin and the action.
pub struct CopyHeaders<'a> {
    pub origin: &'a Origin,
    /// `redrive <time>` or `replay <time>`.
    pub action: &'a str,
    /// Further runtime headers (`x-retry-attempts`, `x-orderflow-reprocess`).
    pub extra: &'a [(&'a str, String)],
}

/// The copy of `message` for a retry topic: the same key and payload, the non-runtime headers
/// (such as the trace context), then the origin, the operator action and `extra`. It goes to
/// `partition` when given, else wherever the key hashes to.
pub fn retry_copy<'a>(
    message: &'a impl Message,
    topic: &'a str,
    partition: Option<i32>,
    copy: &CopyHeaders<'_>,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = message.headers() {
        for h in original.iter().filter(|h| !is_runtime_header(h.key)) {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let origin_partition = copy.origin.partition.to_string();
    let origin_offset = copy.origin.offset.to_string();
    let fixed = [
        (ORIGIN_TOPIC, copy.origin.topic.as_str()),
        (ORIGIN_PARTITION, origin_partition.as_str()),
        (ORIGIN_OFFSET, origin_offset.as_str()),
        (OPERATOR_ACTION, copy.action),
    ];
    for (key, value) in fixed
        .into_iter()
        .chain(copy.extra.iter().map(|(k, v)| (*k, v.as_str())))
    {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    let mut record = FutureRecord::to(topic).headers(headers);
    if let Some(key) = message.key() {
        record = record.key(key);
    }
    if let Some(payload) = message.payload() {
        record = record.payload(payload);
    }
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    record
}

/// The partition a copy of a record from `source_partition` goes to on a topic of
/// `target_partitions` partitions: the same number when it exists, so the records of one key
/// stay together and in order; otherwise the key decides.
pub fn same_partition(source_partition: i32, target_partitions: usize) -> Option<i32> {
    usize::try_from(source_partition)
        .ok()
        .filter(|p| *p < target_partitions)
        .map(|_| source_partition)
}

/// `partition:offset`, as operators give and read record coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Coordinates {
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for Coordinates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

impl std::str::FromStr for Coordinates {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not PARTITION:OFFSET (for example 3:1207)");
        let (partition, offset) = s.split_once(':').ok_or_else(bad)?;
        let partition: i32 = partition.trim().parse().map_err(|_| bad())?;
        let offset: i64 = offset.trim().parse().map_err(|_| bad())?;
        if partition < 0 || offset < 0 {
            return Err(bad());
        }
        Ok(Self { partition, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_parse_and_print() {
        let c: Coordinates = "3:1207".parse().unwrap();
        assert_eq!(
            c,
            Coordinates {
                partition: 3,
                offset: 1207
            }
        );
        assert_eq!(c.to_string(), "3:1207");
        for bad in ["3", "a:1", "1:b", "-1:4", "1:-4", ""] {
            assert!(bad.parse::<Coordinates>().is_err(), "{bad}");
        }
    }

    #[test]
    fn copies_keep_the_partition_only_when_it_exists() {
        assert_eq!(same_partition(3, 12), Some(3));
        assert_eq!(same_partition(11, 12), Some(11));
        assert_eq!(same_partition(12, 12), None);
        assert_eq!(same_partition(5, 1), None);
    }

    #[test]
    fn binary_header_values_show_as_hex() {
        assert_eq!(header_text(Some(b"abc")), "abc");
        assert_eq!(header_text(Some(&[0xff, 0x01])), "0xff01");
        assert_eq!(header_text(None), "");
    }
}
