//! Rust types of the events, mirroring the newest schema version in `schemas/`.
//! Money is integer minor units of the event's currency; tax rates are basis points.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{self, DecodeError, EncodeError, SchemaFamily};
use crate::runtime::Event;

/// A paid order accepted by checkout; the event on `orders.placed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub event_id: String,
    pub order_id: String,
    /// Milliseconds since the Unix epoch (Avro `timestamp-millis`).
    pub placed_at: i64,
    pub channel: String,
    pub currency: String,
    pub customer: Customer,
    pub sales_agent: Option<SalesAgent>,
    pub shipping_address: Address,
    pub lines: Vec<OrderLine>,
    pub shipping: Shipping,
    pub totals: Totals,
    pub payment: Payment,
    /// Since schema v2.
    pub gift_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub id: String,
    pub email: String,
    pub name: String,
    pub locale: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesAgent {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub line_id: String,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub tax_rate_bp: i32,
    pub tax_minor: i64,
    pub supplier_id: String,
    pub unit_cost_minor: i64,
    pub product: Product,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub name: String,
    pub category: String,
    pub design_id: String,
    pub print_technique: String,
    pub size: String,
    pub colour: String,
    pub material: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipping {
    pub method: String,
    pub price_minor: i64,
    pub tax_rate_bp: i32,
    pub tax_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub subtotal_minor: i64,
    pub shipping_minor: i64,
    pub tax_minor: i64,
    pub total_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub provider: String,
    pub reference: String,
    pub amount_minor: i64,
}

/// Every version of the `OrderPlaced` schema, oldest first; the last one is what we write.
pub static ORDER_PLACED_SCHEMAS: SchemaFamily = SchemaFamily::new(
    "OrderPlaced",
    &[
        include_str!("../../../schemas/order_placed/v1.avsc"),
        include_str!("../../../schemas/order_placed/v2.avsc"),
    ],
);

impl OrderPlaced {
    /// Avro single-object encoding with the newest schema version.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(&ORDER_PLACED_SCHEMAS, self)
    }
}

impl Event for OrderPlaced {
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(&ORDER_PLACED_SCHEMAS, bytes)
    }

    fn event_id(&self) -> &str {
        &self.event_id
    }
}

/// Tax of an amount at a rate in basis points, rounded half up (amounts are never negative).
pub fn tax_of(amount_minor: i64, rate_bp: i32) -> i64 {
    (amount_minor * i64::from(rate_bp) + 5_000) / 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_rounds_half_up() {
        assert_eq!(tax_of(1000, 2100), 210);
        assert_eq!(tax_of(5, 1000), 1); // 0.5 rounds up
        assert_eq!(tax_of(4, 1000), 0); // 0.4 rounds down
        assert_eq!(tax_of(0, 2100), 0);
    }
}
