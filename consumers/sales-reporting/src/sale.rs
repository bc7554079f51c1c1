//! What one order adds to the monthly report: its order-level figures and one row per breakdown
//! key. Pure arithmetic over a consistent `OrderPlaced`, so the definitions live in one place:
//!
//! - net = Σ unit price × quantity of the lines (goods, excluding tax and shipping);
//! - shipping = the shipping price, excluding tax;
//! - tax = all tax, of the lines and of the shipping;
//! - gross = net + shipping + tax = the order total the customer paid.
//!
//! Category and SKU rows use the lines' own amounts (units, net, line tax; no shipping, gross =
//! net + line tax) and count an order once per key however many of its lines share it. Agent and
//! channel rows carry whole orders, so each of those breakdowns adds up to the month's total.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orderflow_core::OrderPlaced;
use serde::Serialize;

/// The agent key of orders placed without a sales agent.
pub const NO_AGENT: &str = "(none)";

/// What a breakdown row is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dimension {
    Category,
    Sku,
    Agent,
    Channel,
}

impl Dimension {
    pub const ALL: [Dimension; 4] = [
        Dimension::Category,
        Dimension::Sku,
        Dimension::Agent,
        Dimension::Channel,
    ];

    /// The name stored in `monthly_sales_by.dimension` and shown in the CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Category => "category",
            Dimension::Sku => "sku",
            Dimension::Agent => "agent",
            Dimension::Channel => "channel",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == name)
    }
}

/// The figures of a report row, amounts in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Figures {
    pub orders: i64,
    pub units: i64,
    pub net_minor: i64,
    pub tax_minor: i64,
    pub shipping_minor: i64,
    pub gross_minor: i64,
}

impl Figures {
    fn add(&mut self, other: &Figures) {
        self.orders += other.orders;
        self.units += other.units;
        self.net_minor += other.net_minor;
        self.tax_minor += other.tax_minor;
        self.shipping_minor += other.shipping_minor;
        self.gross_minor += other.gross_minor;
    }
}

/// One order's contribution to the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sale {
    pub event_id: String,
    pub placed_at: DateTime<Utc>,
    pub currency: String,
    pub total: Figures,
    /// One entry per (dimension, key), in a fixed order: upserting rows in the same order in
    /// every transaction keeps concurrent orders from deadlocking on each other's rows.
    pub breakdown: BTreeMap<(Dimension, String), Figures>,
}

/// An order whose time cannot be placed on a calendar.
#[derive(Debug, thiserror::Error)]
#[error("placed_at {0} ms since the epoch is outside the range of dates")]
pub struct PlacedAtOutOfRange(pub i64);

impl Sale {
    /// The contribution of `order`, which must have passed `check_consistency`: the stated
    /// totals are used as they are.
    pub fn from_order(order: &OrderPlaced) -> Result<Self, PlacedAtOutOfRange> {
        let placed_at = DateTime::from_timestamp_millis(order.placed_at)
            .ok_or(PlacedAtOutOfRange(order.placed_at))?;
        let t = &order.totals;
        let total = Figures {
            orders: 1,
            units: order.lines.iter().map(|l| i64::from(l.quantity)).sum(),
            net_minor: t.subtotal_minor,
            tax_minor: t.tax_minor,
            shipping_minor: t.shipping_minor,
            gross_minor: t.total_minor,
        };
        let mut breakdown: BTreeMap<(Dimension, String), Figures> = BTreeMap::new();
        for line in &order.lines {
            let net = line.unit_price_minor * i64::from(line.quantity);
            let figures = Figures {
                orders: 0,
                units: i64::from(line.quantity),
                net_minor: net,
                tax_minor: line.tax_minor,
                shipping_minor: 0,
                gross_minor: net + line.tax_minor,
            };
            for key in [
                (Dimension::Category, line.product.category.clone()),
                (Dimension::Sku, line.sku.clone()),
            ] {
                breakdown.entry(key).or_default().add(&figures);
            }
        }
        // Counted once per key, after the lines are summed: two lines of one SKU are one order.
        for figures in breakdown.values_mut() {
            figures.orders = 1;
        }
        let agent = order
            .sales_agent
            .as_ref()
            .map_or(NO_AGENT.to_string(), |a| a.id.clone());
        breakdown.insert((Dimension::Agent, agent), total);
        breakdown.insert((Dimension::Channel, order.channel.clone()), total);
        Ok(Self {
            event_id: order.event_id.clone(),
            placed_at,
            currency: order.currency.clone(),
            total,
            breakdown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_core::event::{
        tax_of, Address, Customer, OrderLine, Payment, Product, Shipping, Totals,
    };

    fn line(id: &str, sku: &str, category: &str, quantity: i32, price: i64) -> OrderLine {
        OrderLine {
            line_id: id.into(),
            sku: sku.into(),
            quantity,
            unit_price_minor: price,
            tax_rate_bp: 2100,
            tax_minor: tax_of(price * i64::from(quantity), 2100),
            supplier_id: "sup".into(),
            unit_cost_minor: price / 2,
            product: Product {
                name: "n".into(),
                category: category.into(),
                design_id: "d".into(),
                print_technique: "dtg".into(),
                size: "M".into(),
                colour: "black".into(),
                material: "cotton".into(),
                attributes: BTreeMap::new(),
            },
        }
    }

    /// 2 × 10.00 tee, 1 × 10.00 tee (same SKU, another line), 1 × 5.00 mug; shipping 4.00.
    fn order() -> OrderPlaced {
        let lines = vec![
            line("l1", "TEE", "apparel", 2, 1000),
            line("l2", "TEE", "apparel", 1, 1000),
            line("l3", "MUG", "mugs", 1, 500),
        ];
        OrderPlaced {
            event_id: "e".into(),
            order_id: "o".into(),
            placed_at: 1_795_000_000_000,
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
                subtotal_minor: 3500,
                shipping_minor: 400,
                tax_minor: 420 + 210 + 105 + 84,
                total_minor: 3500 + 400 + 819,
            },
            payment: Payment {
                provider: "p".into(),
                reference: "r".into(),
                amount_minor: 4719,
            },
            gift_message: None,
        }
    }

    #[test]
    fn an_order_counts_once_per_key_with_line_amounts_for_products() {
        let o = order();
        o.check_consistency().unwrap();
        let sale = Sale::from_order(&o).unwrap();
        assert_eq!(
            sale.total,
            Figures {
                orders: 1,
                units: 4,
                net_minor: 3500,
                tax_minor: 819,
                shipping_minor: 400,
                gross_minor: 4719
            }
        );
        let tee = sale.breakdown[&(Dimension::Sku, "TEE".to_string())];
        assert_eq!(
            tee,
            Figures {
                orders: 1,
                units: 3,
                net_minor: 3000,
                tax_minor: 630,
                shipping_minor: 0,
                gross_minor: 3630
            }
        );
        assert_eq!(
            sale.breakdown[&(Dimension::Category, "apparel".to_string())],
            tee
        );
        assert_eq!(
            sale.breakdown[&(Dimension::Agent, NO_AGENT.to_string())],
            sale.total
        );
        assert_eq!(
            sale.breakdown[&(Dimension::Channel, "web".to_string())],
            sale.total
        );
        assert_eq!(sale.breakdown.len(), 6);
    }

    #[test]
    fn a_time_off_the_calendar_is_refused() {
        let mut o = order();
        o.placed_at = i64::MAX;
        assert!(Sale::from_order(&o)
            .unwrap_err()
            .to_string()
            .contains("outside the range"));
    }
}
