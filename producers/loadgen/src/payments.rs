//! Checkout verifies every order's payment with the provider before accepting it, so a run's
//! payments are scripted at the provider's simulator before the clock starts, a thousand a request.

use serde_json::json;

use crate::catalogue::GeneratedOrder;

/// Why the payments could not be scripted.
#[derive(Debug, thiserror::Error)]
#[error("scripting payments at {url}: {source}")]
pub struct PaymentsError {
    url: String,
    source: reqwest::Error,
}

/// Scripts a succeeded payment of each order's total at the simulator at `payments_url`.
pub async fn register_payments(
    payments_url: &str,
    orders: &[GeneratedOrder],
) -> Result<(), PaymentsError> {
    let url = format!("{}/_sim/payments", payments_url.trim_end_matches('/'));
    let http = reqwest::Client::new();
    for chunk in orders.chunks(1_000) {
        let body: Vec<_> = chunk
            .iter()
            .map(|o| {
                json!({"reference": o.payment_reference, "status": "succeeded",
                       "amount_minor": o.total_minor, "currency": o.currency})
            })
            .collect();
        http.put(&url)
            .json(&body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|source| PaymentsError {
                url: url.clone(),
                source,
            })?;
    }
    Ok(())
}
