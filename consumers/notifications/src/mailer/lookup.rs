//! The mail provider's message lookup. SMTP has no idempotency: when an attempt was cut short
//! after the server may have accepted the message, only the provider knows whether it did. Mail
//! providers offer a search of accepted messages by `Message-ID` (Postmark's and SendGrid's
//! message APIs, SES's event records); asking it first turns "send again and hope the receiver
//! spots the copy" into "send only what never arrived".
//!
//! The API this speaks: `GET <url>?message_id=<Message-ID>` answers a JSON array of the
//! messages accepted with that Message-ID (empty when none).

use std::time::Duration;

use orderflow_core::telemetry;

/// A provider's message-lookup endpoint.
#[derive(Debug, Clone)]
pub struct MessageLookup {
    http: reqwest::Client,
    url: String,
}

impl MessageLookup {
    pub fn new(url: String, timeout: Duration) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(timeout).build()?,
            url,
        })
    }

    /// Whether the provider accepted a message with `message_id`.
    pub async fn accepted(&self, message_id: &str) -> Result<bool, reqwest::Error> {
        let request = self
            .http
            .get(&self.url)
            .query(&[("message_id", message_id)]);
        let found: Vec<serde_json::Value> = telemetry::send_traced(request, "message lookup")
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(!found.is_empty())
    }
}
