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
use tracing::Instrument;

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
        let span = telemetry::http_client_span("GET", "message lookup", &self.url);
        let answer = async {
            let mut request = self
                .http
                .get(&self.url)
                .query(&[("message_id", message_id)]);
            for (name, value) in telemetry::context_headers(&span) {
                request = request.header(name, value);
            }
            let response = request.send().await?;
            telemetry::record_http_status(&span, response.status().as_u16());
            response
                .error_for_status()?
                .json::<Vec<serde_json::Value>>()
                .await
        }
        .instrument(span.clone())
        .await;
        match answer {
            Ok(found) => Ok(!found.is_empty()),
            Err(e) => {
                telemetry::record_error(&span, "lookup", &e.to_string());
                Err(e)
            }
        }
    }
}
