//! Verifies a payment with the provider before checkout accepts an order: the client's word that
//! it paid is never trusted.

use std::time::Duration;

use orderflow_core::telemetry;
use serde::Deserialize;

/// The provider's view of a payment.
#[derive(Debug, Deserialize)]
struct ProviderPayment {
    status: String,
    amount_minor: i64,
    currency: String,
}

/// Why a payment does not back an order.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The order must not be accepted: answer 402.
    #[error("{0}")]
    Refused(String),
    /// The provider could not answer: answer 503 and let the client retry.
    #[error("payment provider unavailable: {0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub struct PaymentClient {
    http: reqwest::Client,
    base_url: String,
}

impl PaymentClient {
    pub fn new(base_url: String, timeout: Duration) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self { http, base_url })
    }

    /// Succeeds only for a `succeeded` payment of exactly `amount_minor` in `currency`.
    pub async fn verify(
        &self,
        reference: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<(), PaymentError> {
        let url = format!("{}/v1/payments/{reference}", self.base_url);
        let response = telemetry::send_traced(self.http.get(&url), "/v1/payments/{reference}")
            .await
            .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(PaymentError::Refused(format!(
                "payment {reference} is unknown to the provider"
            )));
        }
        if !status.is_success() {
            return Err(PaymentError::Unavailable(format!(
                "provider answered {status}"
            )));
        }
        let payment: ProviderPayment = response
            .json()
            .await
            .map_err(|e| PaymentError::Unavailable(format!("unreadable provider answer: {e}")))?;
        if payment.status != "succeeded" {
            return Err(PaymentError::Refused(format!(
                "payment {reference} is {}, not succeeded",
                payment.status
            )));
        }
        if payment.amount_minor != amount_minor || payment.currency != currency {
            return Err(PaymentError::Refused(format!(
                "payment {reference} is {} {} but the order total is {amount_minor} {currency}",
                payment.amount_minor, payment.currency
            )));
        }
        Ok(())
    }
}
