//! Renders an order's e-mails from the templates under `templates/{en,es}/` (compiled into the
//! binary): the confirmation to the customer in their language, and the notice to the sales
//! agent in English. Each is a complete MIME message with a plain-text and an HTML part.

use std::time::SystemTime;

use chrono::DateTime;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{Address, Message};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::Environment;
use orderflow_core::OrderPlaced;
use serde::Serialize;

use crate::email::{self, Email, Kind, OrderIdTooLong};
use crate::locale::{self, Lang, UnknownCurrency};

/// (name, source) of every template; names end in `.html` or `.txt`, which decides whether
/// values are HTML-escaped.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "en/customer.subject.txt",
        include_str!("../templates/en/customer.subject.txt"),
    ),
    (
        "en/customer.txt",
        include_str!("../templates/en/customer.txt"),
    ),
    (
        "en/customer.html",
        include_str!("../templates/en/customer.html"),
    ),
    (
        "es/customer.subject.txt",
        include_str!("../templates/es/customer.subject.txt"),
    ),
    (
        "es/customer.txt",
        include_str!("../templates/es/customer.txt"),
    ),
    (
        "es/customer.html",
        include_str!("../templates/es/customer.html"),
    ),
    (
        "en/agent.subject.txt",
        include_str!("../templates/en/agent.subject.txt"),
    ),
    ("en/agent.txt", include_str!("../templates/en/agent.txt")),
    ("en/agent.html", include_str!("../templates/en/agent.html")),
];

/// Why an order's e-mails cannot be rendered. The same order fails the same way every time.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{who} e-mail address {address:?} is invalid: {reason}")]
    InvalidAddress {
        who: &'static str,
        address: String,
        reason: String,
    },
    #[error(transparent)]
    UnknownCurrency(#[from] UnknownCurrency),
    #[error(transparent)]
    OrderIdTooLong(#[from] OrderIdTooLong),
    #[error("placed_at {0} is out of range")]
    PlacedAt(i64),
    #[error("template: {0:#}")]
    Template(#[from] minijinja::Error),
    #[error("building the message: {0}")]
    Message(#[from] lettre::error::Error),
}

/// One rendered e-mail and what it was rendered as.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub email: Email,
    pub subject: String,
    pub lang: Lang,
}

/// The compiled templates and the sender.
pub struct Renderer {
    templates: Environment<'static>,
    from: Mailbox,
}

impl Renderer {
    pub fn new(from: Mailbox) -> Result<Self, minijinja::Error> {
        let mut templates = Environment::new();
        // Block tags on their own line leave no blank line behind in the plain-text part.
        templates.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        for (name, source) in TEMPLATES {
            templates.add_template(name, source)?;
        }
        Ok(Self { templates, from })
    }

    /// The customer confirmation and, when the order has a sales agent, the agent notice.
    pub fn order_emails(&self, order: &OrderPlaced) -> Result<Vec<Rendered>, RenderError> {
        let customer_to = mailbox("customer", &order.customer.name, &order.customer.email)?;
        let lang = Lang::for_locale(&order.customer.locale);
        let mut out = vec![self.render(order, Kind::Customer, lang, customer_to.clone(), None)?];
        if let Some(agent) = &order.sales_agent {
            let agent_to = mailbox("sales agent", &agent.name, &agent.email)?;
            // Replies from the agent go straight to the customer.
            out.push(self.render(order, Kind::Agent, Lang::En, agent_to, Some(customer_to))?);
        }
        Ok(out)
    }

    fn render(
        &self,
        order: &OrderPlaced,
        kind: Kind,
        lang: Lang,
        to: Mailbox,
        reply_to: Option<Mailbox>,
    ) -> Result<Rendered, RenderError> {
        let view = View::new(order, lang)?;
        let template = |part: &str| {
            let name = format!("{}/{}.{part}", lang.code(), kind.as_str());
            self.templates.get_template(&name)?.render(Serde(&view))
        };
        // A subject is one line whatever the data holds.
        let subject = template("subject.txt")?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let (text, html) = (template("txt")?, template("html")?);
        let message_id = email::message_id(&order.order_id, kind)?;
        let mut builder = Message::builder()
            .message_id(Some(message_id.clone()))
            .from(self.from.clone())
            .to(to)
            .subject(subject.clone())
            .date(SystemTime::now())
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Content-Language"),
                lang.code().to_string(),
            ));
        if let Some(reply_to) = reply_to {
            builder = builder.reply_to(reply_to);
        }
        let message = builder.multipart(MultiPart::alternative_plain_html(text, html))?;
        let envelope = message.envelope();
        Ok(Rendered {
            email: Email {
                message_id,
                order_id: order.order_id.clone(),
                kind,
                envelope_from: envelope.from().map(ToString::to_string).unwrap_or_default(),
                envelope_to: envelope.to().iter().map(ToString::to_string).collect(),
                raw: message.formatted(),
            },
            subject,
            lang,
        })
    }
}

fn mailbox(who: &'static str, name: &str, address: &str) -> Result<Mailbox, RenderError> {
    let parsed: Address = address
        .trim()
        .parse()
        .map_err(
            |e: lettre::address::AddressError| RenderError::InvalidAddress {
                who,
                address: address.to_string(),
                reason: e.to_string(),
            },
        )?;
    let name = name.trim();
    Ok(Mailbox::new(
        (!name.is_empty()).then(|| name.to_string()),
        parsed,
    ))
}

/// What the templates see: the order with its amounts, date and address already written for
/// the reader.
#[derive(Serialize)]
struct View<'a> {
    order_id: &'a str,
    placed_on: String,
    channel: &'a str,
    customer: &'a orderflow_core::event::Customer,
    agent: Option<&'a orderflow_core::event::SalesAgent>,
    payment: &'a orderflow_core::event::Payment,
    lines: Vec<LineView<'a>>,
    shipping_method: &'a str,
    totals: TotalsView,
    address: Vec<String>,
    gift_message: Option<&'a str>,
}

#[derive(Serialize)]
struct LineView<'a> {
    name: &'a str,
    sku: &'a str,
    details: String,
    quantity: i32,
    unit_price: String,
    amount: String,
}

#[derive(Serialize)]
struct TotalsView {
    subtotal: String,
    shipping: String,
    tax: String,
    total: String,
}

impl<'a> View<'a> {
    fn new(order: &'a OrderPlaced, lang: Lang) -> Result<Self, RenderError> {
        let money = |minor: i64| locale::money(minor, &order.currency, lang);
        let placed_at = DateTime::from_timestamp_millis(order.placed_at)
            .ok_or(RenderError::PlacedAt(order.placed_at))?;
        let lines = order
            .lines
            .iter()
            .map(|l| {
                let p = &l.product;
                Ok(LineView {
                    name: &p.name,
                    sku: &l.sku,
                    details: [&p.size, &p.colour, &p.material]
                        .into_iter()
                        .filter(|s| !s.trim().is_empty())
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    quantity: l.quantity,
                    unit_price: money(l.unit_price_minor)?,
                    amount: money(l.unit_price_minor * i64::from(l.quantity))?,
                })
            })
            .collect::<Result<_, UnknownCurrency>>()?;
        let a = &order.shipping_address;
        let city = format!("{} {}", a.postal_code, a.city);
        let address = [
            Some(a.name.as_str()),
            Some(a.line1.as_str()),
            a.line2.as_deref(),
            Some(city.trim()),
            a.region.as_deref().filter(|r| *r != a.city),
            Some(a.country.as_str()),
        ]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
        Ok(Self {
            order_id: &order.order_id,
            placed_on: locale::date(placed_at, lang),
            channel: &order.channel,
            customer: &order.customer,
            agent: order.sales_agent.as_ref(),
            payment: &order.payment,
            lines,
            shipping_method: &order.shipping.method,
            totals: TotalsView {
                subtotal: money(order.totals.subtotal_minor)?,
                shipping: money(order.totals.shipping_minor)?,
                tax: money(order.totals.tax_minor)?,
                total: money(order.totals.total_minor)?,
            },
            address,
            gift_message: order
                .gift_message
                .as_deref()
                .filter(|m| !m.trim().is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_core::event::{
        Address as ShipTo, Customer, OrderLine, Payment, Product, SalesAgent, Shipping, Totals,
    };

    fn order(locale: &str) -> OrderPlaced {
        OrderPlaced {
            event_id: "e-1".into(),
            order_id: "ord-1".into(),
            placed_at: 1_795_000_000_000,
            channel: "web".into(),
            currency: "EUR".into(),
            customer: Customer {
                id: "c".into(),
                email: "ana@example.com".into(),
                name: "Ana <b>García</b>".into(),
                locale: locale.into(),
            },
            sales_agent: Some(SalesAgent {
                id: "a".into(),
                email: "agent@example.com".into(),
                name: "Sam".into(),
            }),
            shipping_address: ShipTo {
                name: "Ana García".into(),
                line1: "Calle Mayor 1".into(),
                line2: None,
                city: "Madrid".into(),
                region: Some("Madrid".into()),
                postal_code: "28013".into(),
                country: "ES".into(),
            },
            lines: vec![OrderLine {
                line_id: "l1".into(),
                sku: "TEE-M".into(),
                quantity: 2,
                unit_price_minor: 1_999,
                tax_rate_bp: 2_100,
                tax_minor: 840,
                supplier_id: "s".into(),
                unit_cost_minor: 900,
                product: Product {
                    name: "Organic tee".into(),
                    category: "apparel".into(),
                    design_id: "d".into(),
                    print_technique: "dtg".into(),
                    size: "M".into(),
                    colour: "black".into(),
                    material: "cotton".into(),
                    attributes: Default::default(),
                },
            }],
            shipping: Shipping {
                method: "standard".into(),
                price_minor: 495,
                tax_rate_bp: 2_100,
                tax_minor: 104,
            },
            totals: Totals {
                subtotal_minor: 3_998,
                shipping_minor: 495,
                tax_minor: 944,
                total_minor: 5_437,
            },
            payment: Payment {
                provider: "paysim".into(),
                reference: "pay-1".into(),
                amount_minor: 5_437,
            },
            gift_message: None,
        }
    }

    fn renderer() -> Renderer {
        Renderer::new("Shop <orders@shop.example>".parse().unwrap()).unwrap()
    }

    fn text(r: &Rendered) -> String {
        String::from_utf8(r.email.raw.clone()).unwrap()
    }

    #[test]
    fn every_template_compiles_and_renders() {
        let emails = renderer().order_emails(&order("es-ES")).unwrap();
        assert_eq!(emails.len(), 2);
        assert_eq!(emails[0].subject, "Tu pedido ord-1 está confirmado");
        assert_eq!(emails[0].lang, Lang::Es);
        assert_eq!(
            emails[1].subject,
            "New order ord-1 from Ana <b>García</b> (€54.37)"
        );
        assert_eq!(emails[1].email.envelope_to, vec!["agent@example.com"]);
        assert_eq!(emails[1].email.envelope_from, "orders@shop.example");
        assert!(text(&emails[1]).contains("Reply-To: "));
    }

    #[test]
    fn the_html_part_escapes_what_the_order_says() {
        let o = order("en");
        let emails = renderer().order_emails(&o).unwrap();
        let view = View::new(&o, Lang::En).unwrap();
        let html = renderer()
            .templates
            .get_template("en/customer.html")
            .unwrap()
            .render(Serde(&view))
            .unwrap();
        assert!(
            html.contains("Ana &lt;b&gt;García&lt;&#x2f;b&gt;"),
            "{html}"
        );
        assert!(!html.contains("<b>García"));
        assert_eq!(emails.len(), 2);
    }

    #[test]
    fn the_plain_text_part_has_no_stray_blank_lines_from_the_loops() {
        let o = order("en");
        let view = View::new(&o, Lang::En).unwrap();
        let text = renderer()
            .templates
            .get_template("en/customer.txt")
            .unwrap()
            .render(Serde(&view))
            .unwrap();
        assert!(
            text.contains(
                "- 2 x Organic tee (TEE-M; M, black, cotton) at €19.99: €39.98\n\nSubtotal: €39.98"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Shipping address:\n  Ana García\n  Calle Mayor 1\n  28013 Madrid\n  ES\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_order_without_an_agent_gets_the_customer_email_only() {
        let mut o = order("en");
        o.sales_agent = None;
        let emails = renderer().order_emails(&o).unwrap();
        assert_eq!(emails.len(), 1);
        assert_eq!(emails[0].email.kind, Kind::Customer);
    }

    #[test]
    fn an_invalid_address_is_named() {
        let mut o = order("en");
        o.customer.email = "not-an-address".into();
        let err = renderer().order_emails(&o).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("customer e-mail address \"not-an-address\" is invalid"),
            "{err}"
        );
    }
}
