//! The posting rules: what an order's journal entry is, worked out in memory before anything is
//! written. Amounts stay integer minor units of the order's currency.
//!
//! Dr receivable (the customer) for the total; Cr sales revenue per line; Cr tax payable for the
//! tax of the lines and the shipping; Cr shipping revenue; and per supplier Dr cost of goods sold
//! and Cr supplier payable for the unit costs of that supplier's lines. Zero amounts give no
//! posting (a posting is one positive side), so free shipping has no shipping line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orderflow_core::event::Inconsistent;
use orderflow_core::OrderPlaced;

use crate::chart::{Chart, Role, Side};

/// An order's entry, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub order_id: String,
    pub event_id: String,
    pub currency: String,
    /// Decimal places of the currency's minor unit.
    pub minor_exponent: u16,
    pub total_minor: i64,
    pub booked_at: DateTime<Utc>,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account_code: String,
    pub account_name: String,
    pub counterparty: Option<String>,
    pub side: Side,
    pub amount_minor: i64,
    pub memo: String,
}

/// Why an order cannot be journaled; each is permanent, so the event is dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error(transparent)]
    Inconsistent(#[from] Inconsistent),
    #[error("currency {0} has no ISO 4217 minor unit, so its amounts cannot be booked")]
    UnknownCurrency(String),
    #[error("placed_at {0} is not a representable time")]
    PlacedAt(i64),
    #[error("an amount of order {0} overflows 64 bits")]
    Overflow(String),
}

impl Entry {
    /// Sum of one side's postings.
    pub fn side_total(&self, side: Side) -> i64 {
        self.postings
            .iter()
            .filter(|p| p.side == side)
            .map(|p| p.amount_minor)
            .sum()
    }
}

/// The entry for `order` under `chart`'s roles.
pub fn entry_for(order: &OrderPlaced, chart: &Chart) -> Result<Entry, EntryError> {
    order.check_consistency()?;
    let minor_exponent = iso_currency::Currency::from_code(&order.currency)
        .and_then(|c| c.exponent())
        .ok_or_else(|| EntryError::UnknownCurrency(order.currency.clone()))?;
    let booked_at = DateTime::<Utc>::from_timestamp_millis(order.placed_at)
        .ok_or(EntryError::PlacedAt(order.placed_at))?;
    let overflow = || EntryError::Overflow(order.order_id.clone());
    let mut postings = Vec::new();
    let mut post = |role: Role, side, amount_minor, counterparty: Option<&str>, memo: String| {
        if amount_minor > 0 {
            let account = chart.account(role);
            postings.push(Posting {
                account_code: account.code.clone(),
                account_name: account.name.clone(),
                counterparty: counterparty.map(str::to_string),
                side,
                amount_minor,
                memo,
            });
        }
    };

    post(
        Role::Receivable,
        Side::Debit,
        order.totals.total_minor,
        Some(&order.customer.id),
        format!("order {}", order.order_id),
    );
    // Sorted by supplier id, so the same order always gives the same line numbers.
    let mut cost_by_supplier: BTreeMap<&str, i64> = BTreeMap::new();
    for line in &order.lines {
        let qty = i64::from(line.quantity);
        let revenue = line
            .unit_price_minor
            .checked_mul(qty)
            .ok_or_else(overflow)?;
        post(
            Role::SalesRevenue,
            Side::Credit,
            revenue,
            None,
            format!("line {} {} x{}", line.line_id, line.sku, line.quantity),
        );
        let cost = line.unit_cost_minor.checked_mul(qty).ok_or_else(overflow)?;
        let supplier = cost_by_supplier.entry(&line.supplier_id).or_default();
        *supplier = supplier.checked_add(cost).ok_or_else(overflow)?;
    }
    post(
        Role::TaxPayable,
        Side::Credit,
        order.totals.tax_minor,
        None,
        "tax on lines and shipping".to_string(),
    );
    post(
        Role::ShippingRevenue,
        Side::Credit,
        order.shipping.price_minor,
        None,
        format!("shipping {}", order.shipping.method),
    );
    for (supplier, cost) in cost_by_supplier {
        post(
            Role::CostOfGoodsSold,
            Side::Debit,
            cost,
            Some(supplier),
            format!("cost of goods from {supplier}"),
        );
        post(
            Role::SupplierPayable,
            Side::Credit,
            cost,
            Some(supplier),
            format!("payable to {supplier}"),
        );
    }
    Ok(Entry {
        order_id: order.order_id.clone(),
        event_id: order.event_id.clone(),
        currency: order.currency.clone(),
        minor_exponent,
        total_minor: order.totals.total_minor,
        booked_at,
        postings,
    })
}

/// `minor` as a decimal string with `exponent` places: 12345, 2 → "123.45"; 7, 3 → "0.007".
pub fn decimal(minor: i64, exponent: u16) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10_u64.pow(u32::from(exponent));
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = usize::from(exponent)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::DEFAULT_CHART;
    use orderflow_core::event::{tax_of, OrderLine};

    fn chart() -> Chart {
        Chart::parse(DEFAULT_CHART, "built-in").unwrap()
    }

    /// The testkit's sample with a third line from the first supplier, totals recomputed.
    fn order() -> OrderPlaced {
        let mut o = orderflow_testkit::sample_order_placed("ord-1");
        let third = OrderLine {
            line_id: "l3".into(),
            quantity: 3,
            unit_price_minor: 500,
            unit_cost_minor: 200,
            tax_minor: tax_of(1500, 2100),
            ..o.lines[0].clone()
        };
        o.lines.push(third);
        o.settle_totals();
        o
    }

    fn lines(e: &Entry) -> Vec<(&str, Side, i64, Option<&str>)> {
        e.postings
            .iter()
            .map(|p| {
                (
                    p.account_code.as_str(),
                    p.side,
                    p.amount_minor,
                    p.counterparty.as_deref(),
                )
            })
            .collect()
    }

    #[test]
    fn an_order_gives_a_balanced_entry_with_costs_per_supplier() {
        let o = order();
        let e = entry_for(&o, &chart()).unwrap();
        // 2 × 19.99 + 1 × 12.99 + 3 × 5.00 = 66.97; tax 8.40 + 2.73 + 3.15 + shipping 1.04.
        assert_eq!(
            lines(&e),
            vec![
                ("1200", Side::Debit, o.totals.total_minor, Some("cus-1")),
                ("4000", Side::Credit, 3998, None),
                ("4000", Side::Credit, 1299, None),
                ("4000", Side::Credit, 1500, None),
                ("2200", Side::Credit, 840 + 273 + 315 + 104, None),
                ("4100", Side::Credit, 495, None),
                ("5000", Side::Debit, 649, Some("sup-gelato")),
                ("2000", Side::Credit, 649, Some("sup-gelato")),
                ("5000", Side::Debit, 2 * 999 + 3 * 200, Some("sup-printful")),
                (
                    "2000",
                    Side::Credit,
                    2 * 999 + 3 * 200,
                    Some("sup-printful")
                ),
            ]
        );
        assert_eq!(e.side_total(Side::Debit), e.side_total(Side::Credit));
        assert_eq!(e.postings[1].memo, "line l1 TSHIRT-ORG-M-BLK x2");
        assert_eq!(e.minor_exponent, 2);
        assert_eq!(e.booked_at.timestamp_millis(), o.placed_at);
    }

    #[test]
    fn zero_amounts_give_no_posting() {
        let mut o = order();
        o.shipping.price_minor = 0;
        o.shipping.tax_minor = 0;
        for l in &mut o.lines {
            l.unit_cost_minor = 0;
        }
        o.settle_totals();
        let e = entry_for(&o, &chart()).unwrap();
        let codes: Vec<_> = e.postings.iter().map(|p| p.account_code.as_str()).collect();
        assert_eq!(codes, ["1200", "4000", "4000", "4000", "2200"]);
        assert_eq!(e.side_total(Side::Debit), e.side_total(Side::Credit));
    }

    #[test]
    fn inconsistent_orders_and_unknown_currencies_are_refused() {
        let mut o = order();
        o.totals.total_minor += 1;
        let e = entry_for(&o, &chart()).unwrap_err().to_string();
        assert!(e.contains("totals.total_minor"), "{e}");
        let mut o = order();
        o.currency = "ZZZ".into();
        let e = entry_for(&o, &chart()).unwrap_err();
        assert!(matches!(e, EntryError::UnknownCurrency(c) if c == "ZZZ"));
    }

    #[test]
    fn decimals_follow_the_exponent() {
        assert_eq!(decimal(12345, 2), "123.45");
        assert_eq!(decimal(5, 2), "0.05");
        assert_eq!(decimal(0, 2), "0.00");
        assert_eq!(decimal(1500, 0), "1500");
        assert_eq!(decimal(7, 3), "0.007");
        assert_eq!(decimal(-250, 2), "-2.50");
    }
}
