//! Readiness: a service is ready when every server it depends on answers. Each [`Check`] gets a
//! couple of seconds; the combined answer is kept for [`CACHE_FOR`], so frequent probes and
//! several probers do not turn into load on Kafka and the database.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::{join_all, BoxFuture};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::config::KafkaConfig;
use crate::kafka;

/// How long one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an answer is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(2);

/// One dependency of a service, asked whether it answers.
pub trait Check: Send + Sync + 'static {
    /// What the readiness answer calls it: `kafka`, `database`, `rabbitmq`.
    fn name(&self) -> &'static str;
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// Kafka answers a metadata request (for one topic, to keep the request small; the answer
/// counts even if the topic is missing, which the runtime reports on its own).
pub struct KafkaCheck {
    client: Arc<BaseConsumer>,
    topic: String,
}

impl KafkaCheck {
    /// A client of its own (no consumer group), so the check never disturbs the service's.
    pub fn new(kafka: &KafkaConfig, topic: &str) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            client: Arc::new(kafka::client_config(kafka).create()?),
            topic: topic.to_string(),
        })
    }
}

impl Check for KafkaCheck {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let (client, topic) = (Arc::clone(&self.client), self.topic.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                client
                    .fetch_metadata(Some(&topic), CHECK_TIMEOUT)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        })
    }
}

/// The service's database answers `SELECT 1` through the service's own pool.
pub struct DatabaseCheck(pub PgPool);

impl Check for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.0)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

/// One check's result in the readiness answer.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The readiness answer, served as JSON by `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ready: bool,
    /// The names of the checks that failed.
    pub failed: Vec<&'static str>,
    pub checks: Vec<CheckResult>,
}

/// A service's checks and its last answer.
#[derive(Default)]
pub struct Readiness {
    checks: Vec<Box<dyn Check>>,
    last: Mutex<Option<(Instant, Report)>>,
}

impl Readiness {
    pub fn add(&mut self, check: impl Check) {
        self.checks.push(Box::new(check));
    }

    /// Runs every check at once, or answers with the last result if it is recent. Probes that
    /// arrive while the checks run wait for them and share their result.
    pub async fn report(&self) -> Report {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return report.clone();
            }
        }
        let checks: Vec<CheckResult> = join_all(self.checks.iter().map(|c| async move {
            let error = match tokio::time::timeout(CHECK_TIMEOUT, c.check()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            CheckResult {
                name: c.name(),
                ok: error.is_none(),
                error,
            }
        }))
        .await;
        let failed: Vec<&'static str> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
        for check in checks.iter().filter(|c| !c.ok) {
            tracing::debug!(
                check = check.name,
                error = check.error.as_deref().unwrap_or(""),
                "not ready"
            );
        }
        let report = Report {
            ready: failed.is_empty(),
            failed,
            checks,
        };
        *last = Some((Instant::now(), report.clone()));
        report
    }
}
