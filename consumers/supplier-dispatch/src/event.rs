//! The `OrderDispatched` event this service publishes to `orders.dispatched`, encoded with its Avro
//! schema family (`schemas/order_dispatched/`, declared in the core with the other families). Its
//! id is derived from (order, supplier), so a republish after a crash is recognisable downstream
//! as the same event.

use orderflow_core::codec::{self, EncodeError, SchemaFamily};
use orderflow_core::Event;
use serde::{Deserialize, Serialize};

/// A print job the supplier accepted; mirrors the newest `OrderDispatched` schema version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDispatched {
    pub event_id: String,
    pub order_id: String,
    pub supplier_id: String,
    pub job_id: String,
    /// Milliseconds since the Unix epoch (Avro `timestamp-millis`).
    pub dispatched_at: i64,
    pub line_ids: Vec<String>,
    pub units: i32,
    pub attempts: i32,
}

/// Every version of the `OrderDispatched` schema, oldest first; the last one is what we write.
/// Declared in the core with the codec's other families.
pub use orderflow_core::event::ORDER_DISPATCHED_SCHEMAS;

/// The id of the dispatch of `order_id` to `supplier_id`, the same on every publication.
pub fn event_id(order_id: &str, supplier_id: &str) -> String {
    format!("dispatch:{order_id}:{supplier_id}")
}

impl OrderDispatched {
    /// Avro single-object encoding with the newest schema version.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(&ORDER_DISPATCHED_SCHEMAS, self)
    }
}

/// Lets a back-office consumer run on the same runtime over `orders.dispatched`.
impl Event for OrderDispatched {
    fn family() -> &'static SchemaFamily {
        &ORDER_DISPATCHED_SCHEMAS
    }

    fn event_id(&self) -> &str {
        &self.event_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_round_trip() {
        let event = OrderDispatched {
            event_id: event_id("o-1", "sup-a"),
            order_id: "o-1".into(),
            supplier_id: "sup-a".into(),
            job_id: "job-1".into(),
            dispatched_at: 1_795_000_000_123,
            line_ids: vec!["l1".into(), "l3".into()],
            units: 3,
            attempts: 2,
        };
        let bytes = event.encode().unwrap();
        assert_eq!(bytes[..2], codec::MAGIC);
        assert_eq!(OrderDispatched::decode(&bytes).unwrap(), event);
        assert_eq!(event.event_id, "dispatch:o-1:sup-a");
    }

    #[test]
    fn every_field_of_the_schema_is_documented() {
        for source in [include_str!("../../../schemas/order_dispatched/v1.avsc")] {
            let schema: serde_json::Value = serde_json::from_str(source).unwrap();
            assert!(schema["doc"].is_string());
            for field in schema["fields"].as_array().unwrap() {
                assert!(field["doc"].is_string(), "{} has no doc", field["name"]);
            }
        }
        ORDER_DISPATCHED_SCHEMAS
            .check_backward_compatible()
            .unwrap();
    }
}
