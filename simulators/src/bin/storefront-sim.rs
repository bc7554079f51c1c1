//! The storefront: places a batch of varied sample orders the way a real shop does, by taking
//! the payment at the provider (the payment simulator) and then calling checkout.
//!
//! `storefront-sim [COUNT]` (default 20), with `ORDERFLOW_CHECKOUT_URL` (http://127.0.0.1:8080)
//! and `ORDERFLOW_PAYMENT_SIM_URL` (http://127.0.0.1:8091).

use anyhow::{bail, Context};
use orderflow_simulators::storefront::sample_order;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .with_context(|| format!("COUNT must be a number, not {arg:?}"))?,
        None => 20,
    };
    let checkout =
        std::env::var("ORDERFLOW_CHECKOUT_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let payments = std::env::var("ORDERFLOW_PAYMENT_SIM_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8091".into());
    let run = run_id();
    let http = reqwest::Client::new();
    for n in 0..count {
        let (order, total) = sample_order(&run, n);
        let reference = order["payment"]["reference"].as_str().expect("reference");
        http.put(format!("{payments}/v1/payments/{reference}"))
            .json(&json!({"status": "succeeded", "amount_minor": total, "currency": "EUR"}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("taking payment {reference} at {payments}"))?;
        let response = http
            .post(format!("{checkout}/v1/orders"))
            .json(&order)
            .send()
            .await
            .with_context(|| format!("calling checkout at {checkout}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("checkout refused {}: {status} {body}", order["order_id"]);
        }
        let order_id = order["order_id"].as_str().expect("order id");
        println!("placed {order_id} ({total} EUR minor units): {status}");
    }
    Ok(())
}

/// A short id that keeps order ids of different runs apart.
fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("{:x}", secs)
}
