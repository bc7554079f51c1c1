//! The mailer's metrics, in the process-wide registry (so its `/metrics` has them without wiring):
//! what became of each e-mail taken from the queue, and how the SMTP server answered each attempt
//! and how long it took. The `queue` label keeps mailers of several queues apart.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// What became of an e-mail taken from the queue.
#[derive(Debug, Clone, Copy)]
pub enum EmailOutcome {
    /// The SMTP server accepted it.
    Sent,
    /// The provider's lookup showed an interrupted attempt had got through; recorded, not resent.
    Recovered,
    /// A copy of an e-mail already sent or dead-lettered; dropped.
    Duplicate,
    /// Still failing temporarily (or the database was down); back on the queue for later.
    Requeued,
    /// Refused for good, or not a sendable e-mail: moved to the dead-letter queue.
    DeadLettered,
}

impl EmailOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Recovered => "recovered",
            Self::Duplicate => "duplicate",
            Self::Requeued => "requeued",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// How the SMTP server answered one attempt.
#[derive(Debug, Clone, Copy)]
pub enum SmtpResult {
    Accepted,
    /// A 4xx answer, a timeout or no connection.
    Temporary,
    /// A 5xx answer, or a message the client could not send.
    Permanent,
}

impl SmtpResult {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Temporary => "temporary",
            Self::Permanent => "permanent",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    queue: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    queue: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

struct MailerMetrics {
    emails: Family<OutcomeLabels, Counter>,
    attempts: Family<ResultLabels, Counter>,
    duration: Family<QueueLabel, Histogram>,
}

/// 1 ms to about 33 s, past the default SMTP timeout of 30 s.
fn smtp_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

static METRICS: LazyLock<MailerMetrics> = LazyLock::new(|| {
    let m = MailerMetrics {
        emails: Family::default(),
        attempts: Family::default(),
        duration: Family::new_with_constructor(smtp_buckets),
    };
    orderflow_core::observe::metrics::register(|r| {
        r.register(
            "orderflow_emails",
            "E-mails taken from the queue, by outcome (sent, recovered, duplicate, requeued, dead_lettered)",
            m.emails.clone(),
        );
        r.register(
            "orderflow_smtp_attempts",
            "SMTP send attempts, by result (accepted, temporary, permanent)",
            m.attempts.clone(),
        );
        r.register(
            "orderflow_smtp_send_duration_seconds",
            "Duration of one SMTP send attempt, answered or not",
            m.duration.clone(),
        );
    });
    m
});

/// Counts what became of one e-mail of `queue`.
pub fn email(queue: &str, outcome: EmailOutcome) {
    METRICS
        .emails
        .get_or_create(&OutcomeLabels {
            queue: queue.to_string(),
            outcome: outcome.label(),
        })
        .inc();
}

/// Counts one SMTP attempt and its duration.
pub fn smtp_attempt(queue: &str, result: SmtpResult, took: Duration) {
    METRICS
        .attempts
        .get_or_create(&ResultLabels {
            queue: queue.to_string(),
            result: result.label(),
        })
        .inc();
    METRICS
        .duration
        .get_or_create(&QueueLabel {
            queue: queue.to_string(),
        })
        .observe(took.as_secs_f64());
}
