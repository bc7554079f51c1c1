//! Rust types of the events, mirroring the newest schema version in `schemas/`.
//! Money is integer minor units of the event's currency; tax rates are basis points.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{self, EncodeError, SchemaFamily};
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

/// Every version of the `OrderDispatched` schema, oldest first. supplier-dispatch publishes the
/// event and holds its Rust type; the family is declared here so the codec's list of families
/// below is complete.
pub static ORDER_DISPATCHED_SCHEMAS: SchemaFamily = SchemaFamily::new(
    "OrderDispatched",
    &[include_str!("../../../schemas/order_dispatched/v1.avsc")],
);

/// Every schema family, one per folder of `schemas/`. The compatibility gate
/// (`tests/schema_compatibility.rs`) checks each of them, and that every file in `schemas/` is
/// one of their versions.
pub static SCHEMA_FAMILIES: [&SchemaFamily; 2] = [&ORDER_PLACED_SCHEMAS, &ORDER_DISPATCHED_SCHEMAS];

impl OrderPlaced {
    /// Avro single-object encoding with the newest schema version.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(&ORDER_PLACED_SCHEMAS, self)
    }
}

impl Event for OrderPlaced {
    fn family() -> &'static SchemaFamily {
        &ORDER_PLACED_SCHEMAS
    }

    fn event_id(&self) -> &str {
        &self.event_id
    }
}

/// Why an event that decoded cleanly still cannot be processed: its amounts disagree or it has
/// nothing to fulfil. Consumers dead-letter such an event with these reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent order: {}", .0.join("; "))]
pub struct Inconsistent(pub Vec<String>);

impl OrderPlaced {
    /// Sets the totals and the payment amount to what the lines (with their tax) and the
    /// shipping add up to, for an order whose lines were just built or edited.
    pub fn settle_totals(&mut self) {
        let subtotal: i64 = self
            .lines
            .iter()
            .map(|l| l.unit_price_minor * i64::from(l.quantity))
            .sum();
        let tax = self.lines.iter().map(|l| l.tax_minor).sum::<i64>() + self.shipping.tax_minor;
        self.totals = Totals {
            subtotal_minor: subtotal,
            shipping_minor: self.shipping.price_minor,
            tax_minor: tax,
            total_minor: subtotal + self.shipping.price_minor + tax,
        };
        self.payment.amount_minor = self.totals.total_minor;
    }

    /// Checks what every consumer relies on: at least one line, positive quantities, no negative
    /// amounts, and totals that add up (subtotal, tax, total and the payment).
    pub fn check_consistency(&self) -> Result<(), Inconsistent> {
        let mut problems = Vec::new();
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(format!(
                "currency {:?} is not an ISO 4217 code",
                self.currency
            ));
        }
        if self.lines.is_empty() {
            problems.push("the order has no lines".to_string());
        }
        for l in &self.lines {
            if l.quantity <= 0 {
                problems.push(format!(
                    "line {}: quantity {} is not positive",
                    l.line_id, l.quantity
                ));
            }
            if l.unit_price_minor < 0 || l.unit_cost_minor < 0 || l.tax_minor < 0 {
                problems.push(format!("line {}: negative amount", l.line_id));
            }
        }
        if self.shipping.price_minor < 0 || self.shipping.tax_minor < 0 {
            problems.push("shipping: negative amount".to_string());
        }
        // Sums in i128 so absurd amounts are reported, not overflowed. Amounts are non-negative,
        // so once the stated totals match, every partial sum a consumer computes fits in i64.
        let subtotal: i128 = self
            .lines
            .iter()
            .map(|l| i128::from(l.unit_price_minor) * i128::from(l.quantity))
            .sum();
        let tax: i128 = self
            .lines
            .iter()
            .map(|l| i128::from(l.tax_minor))
            .sum::<i128>()
            + i128::from(self.shipping.tax_minor);
        let shipping = i128::from(self.shipping.price_minor);
        let t = &self.totals;
        let mut expect = |what: &str, stated: i64, computed: i128| {
            if i128::from(stated) != computed {
                problems.push(format!(
                    "{what} is {stated}, the lines add up to {computed}"
                ));
            }
        };
        expect("totals.subtotal_minor", t.subtotal_minor, subtotal);
        expect("totals.shipping_minor", t.shipping_minor, shipping);
        expect("totals.tax_minor", t.tax_minor, tax);
        expect(
            "totals.total_minor",
            t.total_minor,
            subtotal + shipping + tax,
        );
        expect(
            "payment.amount_minor",
            self.payment.amount_minor,
            i128::from(t.total_minor),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Inconsistent(problems))
        }
    }
}

/// Tax of an amount at a rate in basis points, rounded half up (amounts are never negative).
pub fn tax_of(amount_minor: i64, rate_bp: i32) -> i64 {
    (amount_minor * i64::from(rate_bp) + 5_000) / 10_000
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> OrderPlaced {
        let line = |id: &str, qty: i32, price: i64| OrderLine {
            line_id: id.into(),
            sku: "SKU".into(),
            quantity: qty,
            unit_price_minor: price,
            tax_rate_bp: 2100,
            tax_minor: tax_of(price * i64::from(qty), 2100),
            supplier_id: "sup".into(),
            unit_cost_minor: price / 2,
            product: Product {
                name: "n".into(),
                category: "c".into(),
                design_id: "d".into(),
                print_technique: "dtg".into(),
                size: "M".into(),
                colour: "black".into(),
                material: "cotton".into(),
                attributes: BTreeMap::new(),
            },
        };
        let lines = vec![line("l1", 2, 1000), line("l2", 1, 500)];
        OrderPlaced {
            event_id: "e".into(),
            order_id: "o".into(),
            placed_at: 0,
            channel: "web".into(),
            currency: "EUR".into(),
            customer: Customer {
                id: "c".into(),
                email: "c@example.com".into(),
                name: "C".into(),
                locale: "en".into(),
            },
            sales_agent: None,
            shipping_address: Address {
                name: "C".into(),
                line1: "1 Street".into(),
                line2: None,
                city: "City".into(),
                region: None,
                postal_code: "1".into(),
                country: "ES".into(),
            },
            lines,
            shipping: Shipping {
                method: "standard".into(),
                price_minor: 400,
                tax_rate_bp: 2100,
                tax_minor: 84,
            },
            totals: Totals {
                subtotal_minor: 2500,
                shipping_minor: 400,
                tax_minor: 420 + 105 + 84,
                total_minor: 2500 + 400 + 609,
            },
            payment: Payment {
                provider: "p".into(),
                reference: "r".into(),
                amount_minor: 3509,
            },
            gift_message: None,
        }
    }

    #[test]
    fn a_consistent_order_passes_and_each_mismatch_is_named() {
        assert_eq!(order().check_consistency(), Ok(()));
        let mut o = order();
        o.totals.tax_minor += 1;
        o.lines[0].quantity = 0;
        let problems = o.check_consistency().unwrap_err().0;
        assert!(
            problems.iter().any(|p| p.contains("line l1: quantity 0")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("totals.tax_minor")),
            "{problems:?}"
        );
        let mut o = order();
        o.lines.clear();
        assert!(o
            .check_consistency()
            .unwrap_err()
            .to_string()
            .contains("no lines"));
    }

    #[test]
    fn tax_rounds_half_up() {
        assert_eq!(tax_of(1000, 2100), 210);
        assert_eq!(tax_of(5, 1000), 1); // 0.5 rounds up
        assert_eq!(tax_of(4, 1000), 0); // 0.4 rounds down
        assert_eq!(tax_of(0, 2100), 0);
    }
}
