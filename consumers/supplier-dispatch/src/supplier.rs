//! The supplier's print-job API: an order's lines grouped into one job per supplier, and the
//! client that submits a job and sorts the supplier's answer into accepted, worth retrying
//! (429, 5xx, timeouts, with the supplier's `Retry-After`) or refused (any other 4xx).

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_core::{telemetry, OrderPlaced};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

/// The body of `POST /v1/print-jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrintJob {
    pub order_id: String,
    pub supplier_id: String,
    pub items: Vec<PrintItem>,
    pub ship_to: ShipTo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrintItem {
    pub line_id: String,
    pub sku: String,
    pub design_id: String,
    pub print_technique: String,
    pub size: String,
    pub colour: String,
    pub material: String,
    pub quantity: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShipTo {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

impl PrintJob {
    /// `<order_id>:<supplier_id>`: the supplier creates one job per key, however often it is sent.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.order_id, self.supplier_id)
    }

    pub fn line_ids(&self) -> Vec<String> {
        self.items.iter().map(|i| i.line_id.clone()).collect()
    }

    pub fn units(&self) -> i32 {
        self.items.iter().map(|i| i.quantity).sum()
    }
}

/// One print job per supplier of the order, in supplier-id order; each keeps its lines in the
/// order's line order.
pub fn print_jobs(order: &OrderPlaced) -> Vec<PrintJob> {
    let a = &order.shipping_address;
    let ship_to = ShipTo {
        name: a.name.clone(),
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    };
    let mut by_supplier: BTreeMap<&str, Vec<PrintItem>> = BTreeMap::new();
    for line in &order.lines {
        let p = &line.product;
        by_supplier
            .entry(line.supplier_id.as_str())
            .or_default()
            .push(PrintItem {
                line_id: line.line_id.clone(),
                sku: line.sku.clone(),
                design_id: p.design_id.clone(),
                print_technique: p.print_technique.clone(),
                size: p.size.clone(),
                colour: p.colour.clone(),
                material: p.material.clone(),
                quantity: line.quantity,
            });
    }
    by_supplier
        .into_iter()
        .map(|(supplier_id, items)| PrintJob {
            order_id: order.order_id.clone(),
            supplier_id: supplier_id.to_string(),
            items,
            ship_to: ship_to.clone(),
        })
        .collect()
}

/// Why a job was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupplierError {
    /// Sending again later may succeed: 429, 5xx, a timeout or a broken connection.
    #[error("supplier {supplier_id} unavailable for order {order_id}: {reason}")]
    Unavailable {
        order_id: String,
        supplier_id: String,
        reason: String,
        /// How long the supplier asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The supplier will refuse this job every time (a 4xx other than 429).
    #[error(
        "supplier {supplier_id} refused the print job for order {order_id} ({status}): {message}"
    )]
    Refused {
        order_id: String,
        supplier_id: String,
        status: u16,
        message: String,
    },
}

#[derive(Deserialize)]
struct Accepted {
    job_id: String,
}

/// Submits print jobs over HTTP.
#[derive(Clone)]
pub struct SupplierClient {
    http: reqwest::Client,
    base_url: String,
}

impl SupplierClient {
    /// `timeout` bounds a whole request: a supplier slower than that counts as unavailable.
    pub fn new(base_url: String, timeout: Duration) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self { http, base_url })
    }

    /// Sends `job` and returns the supplier's job id (201 for a new job, 200 for a key the
    /// supplier already has, with that job's id).
    pub async fn submit(&self, job: &PrintJob) -> Result<String, SupplierError> {
        let unavailable =
            |reason: String, retry_after: Option<Duration>| SupplierError::Unavailable {
                order_id: job.order_id.clone(),
                supplier_id: job.supplier_id.clone(),
                reason,
                retry_after,
            };
        let url = format!("{}/v1/print-jobs", self.base_url);
        let request = self
            .http
            .post(&url)
            .header("Idempotency-Key", job.idempotency_key())
            .json(job);
        let response = telemetry::send_traced(request, "/v1/print-jobs")
            .await
            .map_err(|e| unavailable(describe(&e), None))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .text()
            .await
            .map_err(|e| unavailable(format!("reading the answer: {}", describe(&e)), None))?;
        if status == StatusCode::CREATED || status == StatusCode::OK {
            // The job exists even if its answer is unreadable: sending the same key again gets
            // its id back, so this is worth retrying rather than a refusal.
            return serde_json::from_str::<Accepted>(&body)
                .map(|a| a.job_id)
                .map_err(|e| unavailable(format!("unreadable {status} answer: {e}"), None));
        }
        let message = supplier_message(&body);
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(unavailable(format!("{status}: {message}"), retry_after));
        }
        Err(SupplierError::Refused {
            order_id: job.order_id.clone(),
            supplier_id: job.supplier_id.clone(),
            status: status.as_u16(),
            message,
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        e.to_string()
    }
}

/// `Retry-After` as delta-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past means
/// "now".
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The supplier's own words: `error` or `message` of a JSON body, else the body itself, cut short.
fn supplier_message(body: &str) -> String {
    const MAX: usize = 500;
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            ["error", "message", "detail"]
                .iter()
                .find_map(|k| v.get(k)?.as_str().map(str::to_string))
        });
    let message = from_json.unwrap_or_else(|| body.trim().to_string());
    if message.is_empty() {
        return "(no message)".to_string();
    }
    match message.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderflow_core::event::{OrderLine, Product};

    fn line(id: &str, supplier: &str, quantity: i32) -> OrderLine {
        OrderLine {
            line_id: id.into(),
            sku: format!("SKU-{id}"),
            quantity,
            unit_price_minor: 1000,
            tax_rate_bp: 0,
            tax_minor: 0,
            supplier_id: supplier.into(),
            unit_cost_minor: 500,
            product: Product {
                name: "n".into(),
                category: "c".into(),
                design_id: format!("dsg-{id}"),
                print_technique: "dtg".into(),
                size: "M".into(),
                colour: "black".into(),
                material: "cotton".into(),
                attributes: Default::default(),
            },
        }
    }

    #[test]
    fn lines_are_grouped_into_one_job_per_supplier() {
        let mut order = orderflow_testkit::sample_order_placed("o-1");
        order.lines = vec![
            line("l1", "sup-b", 2),
            line("l2", "sup-a", 1),
            line("l3", "sup-b", 3),
        ];
        order.shipping_address.line2 = Some("2º B".into());
        let jobs = print_jobs(&order);
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].supplier_id, "sup-a");
        assert_eq!(jobs[0].line_ids(), vec!["l2"]);
        assert_eq!(jobs[1].supplier_id, "sup-b");
        assert_eq!(jobs[1].line_ids(), vec!["l1", "l3"]);
        assert_eq!(jobs[1].units(), 5);
        assert_eq!(jobs[1].idempotency_key(), "o-1:sup-b");
        assert_eq!(jobs[1].items[1].design_id, "dsg-l3");
        assert_eq!(jobs[1].ship_to.line2.as_deref(), Some("2º B"));
        assert_eq!(jobs[1].ship_to.country, "ES");
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        headers.insert(RETRY_AFTER, later.to_rfc2822().parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn the_supplier_s_message_is_kept_in_its_own_words() {
        assert_eq!(
            supplier_message(r#"{"error":"design not printable"}"#),
            "design not printable"
        );
        assert_eq!(supplier_message(r#"{"message":"bad size"}"#), "bad size");
        assert_eq!(supplier_message("  plain text \n"), "plain text");
        assert_eq!(supplier_message(""), "(no message)");
        let long = "é".repeat(600);
        assert_eq!(supplier_message(&long).chars().count(), 501);
    }
}
