//! The order as the checkout API receives it, its validation with field-level reasons, and the
//! `OrderPlaced` event it becomes. Totals are computed here, never taken from the client.

use orderflow_core::event::{self, tax_of, Address, Customer, OrderPlaced, Product, SalesAgent};
use serde::{Deserialize, Serialize};

const CHANNELS: &[&str] = &["web", "mobile", "marketplace", "pos"];
const MAX_LINES: usize = 200;
const MAX_QUANTITY: i64 = 10_000;
const MAX_AMOUNT_MINOR: i64 = 100_000_000_000;
const MAX_ATTRIBUTES: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub order_id: String,
    pub channel: String,
    pub currency: String,
    pub customer: Customer,
    #[serde(default)]
    pub sales_agent: Option<SalesAgent>,
    pub shipping_address: Address,
    pub lines: Vec<Line>,
    pub shipping: Shipping,
    pub payment: Payment,
    #[serde(default)]
    pub gift_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub line_id: String,
    pub sku: String,
    pub quantity: i64,
    pub unit_price_minor: i64,
    pub tax_rate_bp: i64,
    pub supplier_id: String,
    pub unit_cost_minor: i64,
    pub product: Product,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shipping {
    pub method: String,
    pub price_minor: i64,
    pub tax_rate_bp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payment {
    pub provider: String,
    pub reference: String,
}

/// One reason a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Parses a request body, reporting a JSON or type error with the path of the field at fault.
pub fn parse(body: &[u8]) -> Result<OrderRequest, Vec<FieldError>> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        vec![FieldError {
            field: if field == "." { "body".into() } else { field },
            message: e.into_inner().to_string(),
        }]
    })
}

struct Checker(Vec<FieldError>);

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Non-blank text of at most `max` characters.
    fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.fail(field, "must not be empty");
        } else if value.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        }
    }

    fn optional_text(&mut self, field: &str, value: &Option<String>, max: usize) {
        if let Some(v) = value {
            self.text(field, v, max);
        }
    }

    fn email(&mut self, field: &str, value: &str) {
        if value.len() > 254 || !email_address::EmailAddress::is_valid(value) {
            self.fail(field, "must be a valid e-mail address");
        }
    }

    fn range(&mut self, field: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.fail(field, format!("must be between {min} and {max}"));
        }
    }

    fn identifier(&mut self, field: &str, value: &str) {
        let ok = (1..=64).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            self.fail(
                field,
                "must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'",
            );
        }
    }
}

/// Every problem with the request, or nothing.
pub fn validate(req: &OrderRequest) -> Result<(), Vec<FieldError>> {
    let mut c = Checker(Vec::new());
    c.identifier("order_id", &req.order_id);
    if !CHANNELS.contains(&req.channel.as_str()) {
        c.fail("channel", format!("must be one of {}", CHANNELS.join(", ")));
    }
    if iso_currency::Currency::from_code(&req.currency).is_none() {
        c.fail("currency", "must be an ISO 4217 currency code such as EUR");
    }
    c.text("customer.id", &req.customer.id, 64);
    c.email("customer.email", &req.customer.email);
    c.text("customer.name", &req.customer.name, 200);
    let locale_ok = (2..=35).contains(&req.customer.locale.len())
        && req.customer.locale.split('-').enumerate().all(|(i, part)| {
            let len_ok = if i == 0 {
                (2..=3).contains(&part.len())
            } else {
                (2..=8).contains(&part.len())
            };
            len_ok && part.bytes().all(|b| b.is_ascii_alphanumeric())
        });
    if !locale_ok {
        c.fail(
            "customer.locale",
            "must be a BCP 47 language tag such as en-GB",
        );
    }
    if let Some(agent) = &req.sales_agent {
        c.text("sales_agent.id", &agent.id, 64);
        c.email("sales_agent.email", &agent.email);
        c.text("sales_agent.name", &agent.name, 200);
    }
    let a = &req.shipping_address;
    c.text("shipping_address.name", &a.name, 200);
    c.text("shipping_address.line1", &a.line1, 200);
    c.optional_text("shipping_address.line2", &a.line2, 200);
    c.text("shipping_address.city", &a.city, 100);
    c.optional_text("shipping_address.region", &a.region, 100);
    c.text("shipping_address.postal_code", &a.postal_code, 20);
    if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_uppercase()) {
        c.fail(
            "shipping_address.country",
            "must be an ISO 3166-1 alpha-2 code such as ES",
        );
    }
    if req.lines.is_empty() {
        c.fail("lines", "must have at least one line");
    } else if req.lines.len() > MAX_LINES {
        c.fail("lines", format!("must have at most {MAX_LINES} lines"));
    }
    let mut line_ids = std::collections::HashSet::new();
    for (i, l) in req.lines.iter().enumerate() {
        let f = |name: &str| format!("lines[{i}].{name}");
        c.identifier(&f("line_id"), &l.line_id);
        if !line_ids.insert(&l.line_id) {
            c.fail(f("line_id"), "must be unique within the order");
        }
        c.text(&f("sku"), &l.sku, 64);
        c.range(&f("quantity"), l.quantity, 1, MAX_QUANTITY);
        c.range(
            &f("unit_price_minor"),
            l.unit_price_minor,
            0,
            MAX_AMOUNT_MINOR,
        );
        c.range(&f("tax_rate_bp"), l.tax_rate_bp, 0, 10_000);
        c.text(&f("supplier_id"), &l.supplier_id, 64);
        c.range(
            &f("unit_cost_minor"),
            l.unit_cost_minor,
            0,
            MAX_AMOUNT_MINOR,
        );
        let p = &l.product;
        for (name, value) in [
            ("name", &p.name),
            ("category", &p.category),
            ("design_id", &p.design_id),
            ("print_technique", &p.print_technique),
            ("size", &p.size),
            ("colour", &p.colour),
            ("material", &p.material),
        ] {
            c.text(&f(&format!("product.{name}")), value, 200);
        }
        if p.attributes.len() > MAX_ATTRIBUTES {
            c.fail(
                f("product.attributes"),
                format!("must have at most {MAX_ATTRIBUTES} entries"),
            );
        }
        for (k, v) in &p.attributes {
            if k.is_empty() || k.len() > 64 || v.len() > 256 {
                c.fail(
                    f(&format!("product.attributes.{k}")),
                    "keys must be 1-64 and values at most 256 characters",
                );
            }
        }
    }
    c.text("shipping.method", &req.shipping.method, 64);
    c.range(
        "shipping.price_minor",
        req.shipping.price_minor,
        0,
        MAX_AMOUNT_MINOR,
    );
    c.range("shipping.tax_rate_bp", req.shipping.tax_rate_bp, 0, 10_000);
    c.text("payment.provider", &req.payment.provider, 64);
    let reference_ok = (1..=128).contains(&req.payment.reference.len())
        && req
            .payment
            .reference
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !reference_ok {
        c.fail(
            "payment.reference",
            "must be 1-128 characters of A-Z, a-z, 0-9, '_', '.' and '-'",
        );
    }
    c.optional_text("gift_message", &req.gift_message, 500);
    if c.0.is_empty() {
        Ok(())
    } else {
        Err(c.0)
    }
}

impl OrderRequest {
    /// The event for a validated request: line and shipping tax and the totals are computed here.
    pub fn to_event(&self, event_id: String, placed_at_millis: i64) -> OrderPlaced {
        // Validation bounds every number, so these conversions cannot fail.
        let int = |v: i64| i32::try_from(v).expect("validated to fit in an int");
        let lines: Vec<event::OrderLine> = self
            .lines
            .iter()
            .map(|l| event::OrderLine {
                line_id: l.line_id.clone(),
                sku: l.sku.clone(),
                quantity: int(l.quantity),
                unit_price_minor: l.unit_price_minor,
                tax_rate_bp: int(l.tax_rate_bp),
                tax_minor: tax_of(l.unit_price_minor * l.quantity, int(l.tax_rate_bp)),
                supplier_id: l.supplier_id.clone(),
                unit_cost_minor: l.unit_cost_minor,
                product: l.product.clone(),
            })
            .collect();
        let shipping = event::Shipping {
            method: self.shipping.method.clone(),
            price_minor: self.shipping.price_minor,
            tax_rate_bp: int(self.shipping.tax_rate_bp),
            tax_minor: tax_of(self.shipping.price_minor, int(self.shipping.tax_rate_bp)),
        };
        let subtotal: i64 = lines
            .iter()
            .map(|l| l.unit_price_minor * i64::from(l.quantity))
            .sum();
        let tax = lines.iter().map(|l| l.tax_minor).sum::<i64>() + shipping.tax_minor;
        let total = subtotal + shipping.price_minor + tax;
        OrderPlaced {
            event_id,
            order_id: self.order_id.clone(),
            placed_at: placed_at_millis,
            channel: self.channel.clone(),
            currency: self.currency.clone(),
            customer: self.customer.clone(),
            sales_agent: self.sales_agent.clone(),
            shipping_address: self.shipping_address.clone(),
            totals: event::Totals {
                subtotal_minor: subtotal,
                shipping_minor: shipping.price_minor,
                tax_minor: tax,
                total_minor: total,
            },
            lines,
            shipping,
            payment: event::Payment {
                provider: self.payment.provider.clone(),
                reference: self.payment.reference.clone(),
                amount_minor: total,
            },
            gift_message: self.gift_message.clone(),
        }
    }
}
