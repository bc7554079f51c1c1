//! The checkout API's callers: sample orders placed concurrently through `POST /v1/orders`, as a
//! storefront would, retrying while checkout answers 5xx or cannot be reached (the order is
//! idempotent by id, so a retry of an order that was in fact accepted gets 200, not a second
//! order). An order counts as accepted once checkout said 201 or 200.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use orderflow_simulators::payment::PaymentSim;
use orderflow_simulators::storefront::sample_order;
use serde_json::Value;

/// What a storefront needs to place orders: checkout's address, and the payment provider where
/// each order's payment is taken first.
#[derive(Clone)]
pub struct Storefront {
    pub run: String,
    pub checkout_url: String,
    pub payments: PaymentSim,
    /// Orders accepted so far, for scenarios that strike mid-load.
    pub accepted: Arc<AtomicUsize>,
}

/// An order checkout accepted, and its total in minor units.
#[derive(Debug, Clone)]
pub struct Placed {
    pub order: Value,
    pub total_minor: i64,
}

impl Placed {
    pub fn id(&self) -> &str {
        self.order["order_id"].as_str().expect("order_id")
    }

    pub fn lines(&self) -> &[Value] {
        self.order["lines"].as_array().expect("lines")
    }

    pub fn has_agent(&self) -> bool {
        self.order.get("sales_agent").is_some()
    }
}

/// What placing the orders gave.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub accepted: Vec<Placed>,
    /// Orders checkout refused for good (4xx), with its answer: sample orders are valid, so
    /// each is a finding.
    pub refused: Vec<String>,
}

#[derive(Debug)]
enum PlaceError {
    Transient(String),
    Refused(String),
}

/// Places orders `from..to` of the run, `concurrency` at a time.
pub async fn place_orders(
    shop: &Storefront,
    from: usize,
    to: usize,
    concurrency: usize,
) -> LoadOutcome {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client");
    let results: Vec<Result<Placed, String>> = futures::stream::iter(from..to)
        .map(|n| place_one(shop, &http, n))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut outcome = LoadOutcome::default();
    for r in results {
        match r {
            Ok(p) => outcome.accepted.push(p),
            Err(e) => outcome.refused.push(e),
        }
    }
    outcome
}

async fn place_one(shop: &Storefront, http: &reqwest::Client, n: usize) -> Result<Placed, String> {
    let (order, total_minor) = sample_order(&shop.run, n);
    shop.payments.set_payment(
        order["payment"]["reference"].as_str().expect("reference"),
        "succeeded",
        total_minor,
        order["currency"].as_str().expect("currency"),
    );
    let url = format!("{}/v1/orders", shop.checkout_url);
    let attempt = || async {
        let response = http
            .post(&url)
            .json(&order)
            .send()
            .await
            .map_err(|e| PlaceError::Transient(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        match status.as_u16() {
            200 | 201 => Ok(()),
            s if s >= 500 || s == 429 => Err(PlaceError::Transient(format!("{s} {body}"))),
            s => Err(PlaceError::Refused(format!("{s} {body}"))),
        }
    };
    // Up to about five minutes of patience: longer than any outage a scenario injects.
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(200)
                .with_jitter(),
        )
        .when(|e| matches!(e, PlaceError::Transient(_)))
        .await
        .map(|()| {
            shop.accepted.fetch_add(1, Ordering::Relaxed);
        })
        .map(|()| Placed {
            order: order.clone(),
            total_minor,
        })
        .map_err(|e| match e {
            PlaceError::Transient(why) => format!("order {}: gave up: {why}", order["order_id"]),
            PlaceError::Refused(why) => format!("order {}: refused: {why}", order["order_id"]),
        })
}
