//! The archived row: one sold order line with its product's characteristics and the order facts
//! marketing slices by. The type has no field for the customer, the sales agent, the address
//! (but its country) or the payment, so personal data cannot reach a file by mistake.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use orderflow_core::OrderPlaced;

/// One sold line, exactly as it is archived.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SoldLine {
    pub order_line_id: String,
    pub order_id: String,
    pub placed_at: DateTime<Utc>,
    pub sku: String,
    pub category: String,
    pub design_id: String,
    pub print_technique: String,
    pub size: String,
    pub colour: String,
    pub material: String,
    #[sqlx(json)]
    pub attributes: BTreeMap<String, String>,
    pub quantity: i32,
    pub unit_price_minor: i64,
    pub currency: String,
    pub shipping_country: String,
    pub channel: String,
}

impl SoldLine {
    /// The archive partition the line belongs to: the UTC day the order was placed.
    pub fn date(&self) -> NaiveDate {
        self.placed_at.date_naive()
    }
}

/// Why an order's lines cannot be archived, whatever the number of attempts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unarchivable {
    #[error("placed_at {0} ms is not a date between the years 1 and 9999")]
    PlacedAtOutOfRange(i64),
    #[error("line id {0:?} appears more than once in the order")]
    DuplicateLineId(String),
}

/// The sold lines of an order, in the order's line order.
pub fn sold_lines(order: &OrderPlaced) -> Result<Vec<SoldLine>, Unarchivable> {
    let placed_at = DateTime::from_timestamp_millis(order.placed_at)
        // The partition folder is `date=YYYY-MM-DD`, which needs a four-digit year.
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or(Unarchivable::PlacedAtOutOfRange(order.placed_at))?;
    let mut seen = HashSet::new();
    order
        .lines
        .iter()
        .map(|line| {
            // The (order, line id) key is what keeps a line archived once; two lines sharing it
            // would silently lose one.
            if !seen.insert(line.line_id.as_str()) {
                return Err(Unarchivable::DuplicateLineId(line.line_id.clone()));
            }
            let p = &line.product;
            Ok(SoldLine {
                order_line_id: line.line_id.clone(),
                order_id: order.order_id.clone(),
                placed_at,
                sku: line.sku.clone(),
                category: p.category.clone(),
                design_id: p.design_id.clone(),
                print_technique: p.print_technique.clone(),
                size: p.size.clone(),
                colour: p.colour.clone(),
                material: p.material.clone(),
                attributes: p.attributes.clone(),
                quantity: line.quantity,
                unit_price_minor: line.unit_price_minor,
                currency: order.currency.clone(),
                shipping_country: order.shipping_address.country.clone(),
                channel: order.channel.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_core::event::{Address, Customer, OrderLine, Payment, Product, Shipping, Totals};

    fn order() -> OrderPlaced {
        let line = |id: &str| OrderLine {
            line_id: id.into(),
            sku: format!("SKU-{id}"),
            quantity: 3,
            unit_price_minor: 1250,
            tax_rate_bp: 0,
            tax_minor: 0,
            supplier_id: "sup".into(),
            unit_cost_minor: 600,
            product: Product {
                name: "Tee".into(),
                category: "apparel".into(),
                design_id: "dsg-1".into(),
                print_technique: "dtg".into(),
                size: "L".into(),
                colour: "navy".into(),
                material: "cotton".into(),
                attributes: BTreeMap::from([("fit".into(), "slim".into())]),
            },
        };
        OrderPlaced {
            event_id: "e".into(),
            order_id: "o-1".into(),
            placed_at: 1_795_000_000_123,
            channel: "marketplace".into(),
            currency: "GBP".into(),
            customer: Customer {
                id: "c".into(),
                email: "jo@example.com".into(),
                name: "Jo".into(),
                locale: "en-GB".into(),
            },
            sales_agent: None,
            shipping_address: Address {
                name: "Jo".into(),
                line1: "1 High St".into(),
                line2: None,
                city: "Leeds".into(),
                region: None,
                postal_code: "LS1".into(),
                country: "GB".into(),
            },
            lines: vec![line("a"), line("b")],
            shipping: Shipping {
                method: "standard".into(),
                price_minor: 0,
                tax_rate_bp: 0,
                tax_minor: 0,
            },
            totals: Totals {
                subtotal_minor: 7500,
                shipping_minor: 0,
                tax_minor: 0,
                total_minor: 7500,
            },
            payment: Payment {
                provider: "p".into(),
                reference: "r".into(),
                amount_minor: 7500,
            },
            gift_message: None,
        }
    }

    #[test]
    fn a_line_carries_its_product_and_the_order_facts() {
        let lines = sold_lines(&order()).unwrap();
        assert_eq!(lines.len(), 2);
        let l = &lines[1];
        assert_eq!(l.order_line_id, "b");
        assert_eq!(l.order_id, "o-1");
        assert_eq!(l.placed_at.timestamp_millis(), 1_795_000_000_123);
        assert_eq!(l.date().to_string(), "2026-11-18");
        assert_eq!(l.sku, "SKU-b");
        assert_eq!((l.quantity, l.unit_price_minor), (3, 1250));
        assert_eq!(
            (l.currency.as_str(), l.shipping_country.as_str()),
            ("GBP", "GB")
        );
        assert_eq!(l.channel, "marketplace");
        assert_eq!(l.attributes["fit"], "slim");
    }

    #[test]
    fn duplicate_line_ids_and_impossible_dates_are_refused() {
        let mut o = order();
        o.lines[1].line_id = "a".into();
        assert_eq!(
            sold_lines(&o).unwrap_err(),
            Unarchivable::DuplicateLineId("a".into())
        );
        let mut o = order();
        o.placed_at = i64::MAX;
        assert!(sold_lines(&o)
            .unwrap_err()
            .to_string()
            .contains("not a date"));
        o.placed_at = 300_000_000_000_000; // year 11476
        assert_eq!(
            sold_lines(&o).unwrap_err(),
            Unarchivable::PlacedAtOutOfRange(300_000_000_000_000)
        );
    }
}
