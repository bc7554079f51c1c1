//! `sales-reporting`: the monthly sales report, kept current as orders arrive on `orders.placed`
//! (consumer group `sales-reporting`). Per month of the business time zone and currency it keeps
//! orders, units, net, tax, shipping and gross, broken down by product category, SKU, sales agent
//! and channel; the upserts commit with the idempotency mark, so each order counts exactly once.
//! The report is served as JSON and CSV over HTTP and by the `report` command, and sales of the
//! last hour are exposed as Prometheus gauges, with the runtime's metrics, on the report's port
//! and on `ORDERFLOW_METRICS_LISTEN`.

pub mod effect;
pub mod handler;
pub mod http;
pub mod metrics;
pub mod report;
pub mod sale;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orderflow_core::config::{self, ConfigError, KafkaConfig, Source};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::observe::{self, ObserveError, ObserveServer};
use orderflow_core::runtime::{self, ConsumerSettings, RuntimeError};
use orderflow_core::topics;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::report::{Currency, Month, Report};

/// The consumer group, and the service's name.
pub const GROUP: &str = "sales-reporting";
/// The database schema unless `ORDERFLOW_DATABASE_SCHEMA` says otherwise.
pub const DEFAULT_SCHEMA: &str = "sales_reporting";
pub const LISTEN: &str = "ORDERFLOW_REPORTING_LISTEN";
pub const BUSINESS_TIMEZONE: &str = "ORDERFLOW_BUSINESS_TIMEZONE";
/// Where `/metrics`, `/healthz` and `/readyz` are served unless `ORDERFLOW_METRICS_LISTEN` says
/// (they are on the report's port too).
pub const METRICS_PORT: u16 = 9106;

/// How often each instance deletes expired minutes of `recent_sales_by_minute`.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Everything the service needs, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub consumer: ConsumerSettings,
    pub database: DatabaseConfig,
    pub listen: SocketAddr,
    /// IANA name of the time zone whose calendar months the report counts in.
    pub business_timezone: String,
    pub metrics_listen: SocketAddr,
}

impl Settings {
    /// `ORDERFLOW_KAFKA_BROKERS` (and its security settings), the `ORDERFLOW_CONSUMER_*`
    /// overrides, `ORDERFLOW_DATABASE_URL`, `ORDERFLOW_DATABASE_SCHEMA` (sales_reporting),
    /// `ORDERFLOW_REPORTING_LISTEN` (127.0.0.1:8093), `ORDERFLOW_BUSINESS_TIMEZONE` (UTC) and
    /// `ORDERFLOW_METRICS_LISTEN` (127.0.0.1:9106).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            kafka: KafkaConfig::from_source(src)?,
            consumer: ConsumerSettings::batched(GROUP, topics::ORDERS_PLACED).overridden_by(src)?,
            database: DatabaseConfig::from_source(src, DEFAULT_SCHEMA)?,
            listen: config::optional(src, LISTEN)?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8093))),
            business_timezone: config::optional(src, BUSINESS_TIMEZONE)?
                .unwrap_or_else(|| "UTC".to_string()),
            metrics_listen: observe::listen_address(src, METRICS_PORT)?,
        })
    }
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{BUSINESS_TIMEZONE} is {configured} but this schema's months were counted in {stored}; \
         set it back, or rebuild the report from an empty schema by replaying {topic} with a \
         new consumer group",
        topic = topics::ORDERS_PLACED
    )]
    TimeZoneChanged { configured: String, stored: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot listen on {LISTEN} {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Consumer(#[from] RuntimeError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
}

/// A started service: the consumer, the HTTP server and the pruning of recent minutes.
pub struct SalesReporting {
    pub addr: SocketAddr,
    stop: Arc<watch::Sender<bool>>,
    consumer: tokio::task::JoinHandle<Result<(), RuntimeError>>,
    others: Vec<tokio::task::JoinHandle<()>>,
    observer: ObserveServer,
}

impl SalesReporting {
    /// Where `/metrics`, `/healthz` and `/readyz` answer besides the report's port.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.observer.addr
    }

    /// Completes when the service is stopping: asked to, or because the consumer stopped.
    pub async fn stopping(&self) {
        stopped(self.stop.subscribe()).await;
    }

    /// Stops consuming (finishing the orders in flight), stops the server and waits for both;
    /// returns why the consumer stopped if it failed.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        for task in self.others {
            let _ = task.await;
        }
        match self.consumer.await {
            Ok(result) => Ok(result?),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Prepares the schema, checks the business time zone and starts consuming and serving.
pub async fn start(settings: Settings, pool: PgPool) -> Result<SalesReporting, Error> {
    store::MIGRATOR.run(&pool).await?;
    let tz = &settings.business_timezone;
    if !store::is_time_zone(&pool, tz).await? {
        return Err(ConfigError::Malformed {
            name: BUSINESS_TIMEZONE,
            value: tz.clone(),
            reason: "not an IANA time zone name known to Postgres (for example Europe/Madrid)"
                .into(),
        }
        .into());
    }
    let stored = store::pin_time_zone(&pool, tz).await?;
    if stored != *tz {
        return Err(Error::TimeZoneChanged {
            configured: tz.clone(),
            stored,
        });
    }
    let idempotency = IdempotencyStore::new(pool.clone(), &settings.consumer.group_id).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: settings.listen,
        source,
    })?;
    let (stop, rx) = watch::channel(false);
    let stop = Arc::new(stop);

    let observer = observe::kafka_and_database(&settings.kafka, &settings.consumer.topic, &pool)?
        .collect(metrics::LastHourSales::new(pool.clone()))
        .build();
    let metrics_server = observer.serve(settings.metrics_listen).await?;
    let state = http::AppState { pool: pool.clone() };
    let server = tokio::spawn({
        let rx = rx.clone();
        async move {
            if let Err(e) = axum::serve(listener, http::router(state, &observer))
                .with_graceful_shutdown(stopped(rx))
                .await
            {
                tracing::error!(error = %e, "report server stopped");
            }
        }
    });
    let pruner = tokio::spawn(prune_recent_sales(pool, stopped(rx.clone())));
    let consumer = tokio::spawn({
        let stop = Arc::clone(&stop);
        let handler = handler::SalesHandler::new(idempotency);
        let (kafka, consumer) = (settings.kafka, settings.consumer);
        async move {
            let result = runtime::run(&kafka, consumer, handler, stopped(rx)).await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "consumer stopped");
            }
            // A consumer that gave up takes the server down with it: a report that silently
            // stops growing is worse than a restart.
            let _ = stop.send(true);
            result
        }
    });
    tracing::info!(%addr, business_timezone = %tz, "sales reporting listening");
    Ok(SalesReporting {
        addr,
        stop,
        consumer,
        others: vec![server, pruner],
        observer: metrics_server,
    })
}

async fn prune_recent_sales(pool: PgPool, stop: impl std::future::Future<Output = ()>) {
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => match store::prune_recent(&pool).await {
                Ok(n) => tracing::debug!(deleted = n, "pruned recent sales"),
                // Harmless: the gauges only read the last hour; the next tick tries again.
                Err(e) => tracing::warn!(error = %e, "pruning recent sales failed"),
            },
        }
    }
}

/// Runs the service until SIGTERM/SIGINT, or until the consumer fails.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let pool = settings.database.connect().await?;
    let service = start(settings, pool).await?;
    tokio::select! {
        _ = orderflow_core::shutdown::signal() => {}
        _ = service.stopping() => {}
    }
    service.stop().await
}

/// The report of `month` from the database `database` points at (the `report` command).
pub async fn load_report(
    database: &DatabaseConfig,
    month: Month,
    currency: Option<&Currency>,
) -> Result<Report, Error> {
    let pool = database.connect().await?;
    // Migrating first lets the command answer (with an empty report) before the consumer ever ran.
    store::MIGRATOR.run(&pool).await?;
    Ok(Report::load(&pool, month, currency).await?)
}
