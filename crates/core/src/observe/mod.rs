//! What every service serves for operators, on `ORDERFLOW_METRICS_LISTEN` (a default port per
//! service, listed in docs/observability.md): `GET /metrics` (Prometheus, OpenMetrics text),
//! `GET /healthz` (200 while the process runs) and `GET /readyz` (200 when every dependency
//! answers, else 503 with a JSON body naming what failed).

pub mod health;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use sqlx::PgPool;

use crate::config::{self, ConfigError, KafkaConfig, Source};
use health::{Check, DatabaseCheck, KafkaCheck, Readiness};
use metrics::Collect;

/// Where a service serves its metrics and health.
pub const METRICS_LISTEN: &str = "ORDERFLOW_METRICS_LISTEN";

/// `ORDERFLOW_METRICS_LISTEN`, or 127.0.0.1 on the service's own `default_port`, so services
/// started side by side on one machine do not collide. Tests set `127.0.0.1:0`.
pub fn listen_address(src: &impl Source, default_port: u16) -> Result<SocketAddr, ConfigError> {
    Ok(config::optional(src, METRICS_LISTEN)?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port))))
}

/// Why the metrics and health server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("cannot listen on {METRICS_LISTEN} {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("kafka client of the readiness check: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Ready when Kafka answers a metadata request for `topic` and the database a `SELECT 1`: what
/// checkout and every consumer depend on.
pub fn kafka_and_database(
    kafka: &KafkaConfig,
    topic: &str,
    pool: &PgPool,
) -> Result<ObserverBuilder, ObserveError> {
    Ok(Observer::builder()
        .ready_when(KafkaCheck::new(kafka, topic)?)
        .ready_when(DatabaseCheck(pool.clone())))
}

/// A service's readiness checks and its own metric collectors; cheap to clone.
#[derive(Clone, Default)]
pub struct Observer {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    readiness: Readiness,
    collectors: Vec<Arc<dyn Collect>>,
}

/// Builds an [`Observer`].
#[derive(Default)]
pub struct ObserverBuilder {
    inner: Inner,
}

impl ObserverBuilder {
    /// Readiness also requires `check` to pass.
    pub fn ready_when(mut self, check: impl Check) -> Self {
        self.inner.readiness.add(check);
        self
    }

    /// `/metrics` also renders `collector`'s families.
    pub fn collect(mut self, collector: impl Collect) -> Self {
        self.inner.collectors.push(Arc::new(collector));
        self
    }

    pub fn build(self) -> Observer {
        Observer {
            inner: Arc::new(self.inner),
        }
    }
}

impl Observer {
    pub fn builder() -> ObserverBuilder {
        ObserverBuilder::default()
    }

    /// `/metrics`, `/healthz` and `/readyz`, to serve alone ([`Observer::serve`]) or merged into
    /// a service's own API.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(scrape))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state(self.clone())
    }

    /// Serves [`Observer::router`] on `listen` until the returned server is dropped.
    pub async fn serve(&self, listen: SocketAddr) -> Result<ObserveServer, ObserveError> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ObserveError::Listen {
                addr: listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ObserveError::Listen {
                addr: listen,
                source,
            })?;
        let router = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        Ok(ObserveServer { addr, task })
    }
}

/// The running metrics and health server. It lives as long as its service: dropping it stops
/// it and frees the port. Nothing needs a graceful stop here, as scrapes and probes are retried.
pub struct ObserveServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ObserveServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn scrape(State(observer): State<Observer>) -> Response {
    let body = metrics::render(&observer.inner.collectors).await;
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

async fn ready(State(observer): State<Observer>) -> Response {
    let report = observer.inner.readiness.report().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report)).into_response()
}
