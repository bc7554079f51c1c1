//! `supplier-dispatch`: consumes `orders.placed` (consumer group `supplier-dispatch`), groups each
//! order's lines by supplier and sends one print job per supplier to the supplier's API
//! (`POST /v1/print-jobs` with `Idempotency-Key: <order_id>:<supplier_id>`), records each dispatch
//! in Postgres (`dispatches`) and announces each accepted job as an Avro `OrderDispatched` on
//! `orders.dispatched`. A print job is created once per (order, supplier) across redelivery,
//! crash and replay; its event is published once in normal operation and carries a deterministic
//! `event_id`, so a republish after a crash is deduplicable downstream.

pub mod effect;
pub mod event;
pub mod handler;
pub mod store;
pub mod supplier;

use std::net::SocketAddr;
use std::time::Duration;

use orderflow_core::config::{self, ConfigError, KafkaConfig, Source};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::observe::{self, ObserveError, ObserveServer};
use orderflow_core::runtime::{self, ConsumerSettings, RuntimeError};
use orderflow_core::{kafka, topics};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};
use sqlx::PgPool;
use tokio::sync::oneshot;

use crate::handler::{Publisher, SupplierDispatch};
use crate::supplier::SupplierClient;

/// The consumer group, and the service's name in logs and traces.
pub const GROUP: &str = "supplier-dispatch";
/// The database schema unless `ORDERFLOW_DATABASE_SCHEMA` says otherwise.
pub const DEFAULT_SCHEMA: &str = "supplier_dispatch";
/// Where accepted print jobs are announced.
pub const DISPATCHED_TOPIC: &str = "orders.dispatched";
/// Where `/metrics`, `/healthz` and `/readyz` are served unless `ORDERFLOW_METRICS_LISTEN` says.
pub const METRICS_PORT: u16 = 9102;

/// Everything supplier-dispatch needs, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub consumer: ConsumerSettings,
    pub database: DatabaseConfig,
    pub supplier_api_url: String,
    /// Bounds one request to the supplier; a slower answer counts as a retryable failure.
    pub supplier_timeout: Duration,
    pub dispatched_topic: String,
    /// How long publishing one event may wait for a broker before it counts as failed.
    pub delivery_timeout: Duration,
    pub metrics_listen: SocketAddr,
}

impl Settings {
    /// `ORDERFLOW_KAFKA_BROKERS` (and its security settings), the `ORDERFLOW_CONSUMER_*`
    /// overrides of the runtime, `ORDERFLOW_DATABASE_URL` and `ORDERFLOW_DATABASE_SCHEMA`
    /// (supplier_dispatch), `ORDERFLOW_SUPPLIER_API_URL` (required),
    /// `ORDERFLOW_SUPPLIER_TIMEOUT_MS` (5000), `ORDERFLOW_DISPATCHED_TOPIC` (orders.dispatched)
    /// `ORDERFLOW_DISPATCH_DELIVERY_TIMEOUT_MS` (10000) and `ORDERFLOW_METRICS_LISTEN`
    /// (127.0.0.1:9102).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let supplier_timeout =
            config::millis(src, "ORDERFLOW_SUPPLIER_TIMEOUT_MS", Duration::from_secs(5))?;
        if supplier_timeout.is_zero() {
            return Err(ConfigError::Malformed {
                name: "ORDERFLOW_SUPPLIER_TIMEOUT_MS",
                value: "0".into(),
                reason: "every request would time out; expected a positive number of ms".into(),
            });
        }
        Ok(Self {
            kafka: KafkaConfig::from_source(src)?,
            consumer: ConsumerSettings::from_source(src, GROUP, topics::ORDERS_PLACED)?,
            database: DatabaseConfig::from_source(src, DEFAULT_SCHEMA)?,
            supplier_api_url: config::url(src, config::SUPPLIER_API_URL, &["http", "https"])?,
            supplier_timeout,
            dispatched_topic: config::optional(src, "ORDERFLOW_DISPATCHED_TOPIC")?
                .unwrap_or_else(|| DISPATCHED_TOPIC.to_string()),
            delivery_timeout: config::millis(
                src,
                "ORDERFLOW_DISPATCH_DELIVERY_TIMEOUT_MS",
                Duration::from_secs(10),
            )?,
            metrics_listen: observe::listen_address(src, METRICS_PORT)?,
        })
    }
}

/// Why supplier-dispatch could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the database ({}): {source}", config::DATABASE_URL)]
    Database { source: sqlx::Error },
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "topic {0} does not exist; declare it in deploy/topics.txt and run scripts/stack.sh up"
    )]
    MissingTopic(String),
    #[error("building the supplier client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("the consumer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A started supplier-dispatch consumer, until `stop` is called.
pub struct Dispatcher {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
    observer: ObserveServer,
}

impl Dispatcher {
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.observer.addr
    }

    /// Stops reading, lets the handlers in flight finish, commits and leaves the group.
    pub async fn stop(self) -> Result<(), Error> {
        // The task may already have ended with an error, which `await` reports.
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }

    /// Runs until `shutdown` completes, then stops; returns early if the consumer fails.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::select! {
            ended = &mut self.task => Ok(ended??),
            _ = shutdown => self.stop().await,
        }
    }
}

/// Migrates the database, checks the topics, serves metrics and health (ready when Kafka and
/// the database answer) and starts consuming.
pub async fn start(settings: Settings, pool: PgPool) -> Result<Dispatcher, Error> {
    store::MIGRATOR.run(&pool).await?;
    let observer = observe::kafka_and_database(&settings.kafka, &settings.consumer.topic, &pool)?
        .build()
        .serve(settings.metrics_listen)
        .await?;
    // Each send is awaited inside a handler's slot, so lingering to fill a batch would add its
    // wait to every print job.
    let producer = kafka::idempotent_producer_config(&settings.kafka, settings.delivery_timeout)
        .set("linger.ms", "0")
        .create()?;
    ensure_topic(&producer, &settings.dispatched_topic).await?;
    let handler = SupplierDispatch::new(
        pool,
        SupplierClient::new(settings.supplier_api_url.clone(), settings.supplier_timeout)?,
        Publisher {
            producer,
            topic: settings.dispatched_topic.clone(),
            registry: settings.consumer.schema_registry.clone(),
        },
    );
    tracing::info!(
        supplier = %settings.supplier_api_url,
        dispatched_topic = %settings.dispatched_topic,
        "supplier-dispatch starting"
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runtime::run(&settings.kafka, settings.consumer, handler, async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(Dispatcher {
        stop,
        task,
        observer,
    })
}

/// Connects to the database and runs until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let pool = settings
        .database
        .connect()
        .await
        .map_err(|source| Error::Database { source })?;
    start(settings, pool)
        .await?
        .run_until(orderflow_core::shutdown::signal())
        .await
}

/// Refuses to start without the topic events go to, rather than failing every publish later.
async fn ensure_topic(producer: &FutureProducer, topic: &str) -> Result<(), Error> {
    let producer = producer.clone();
    let name = topic.to_string();
    let found = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(Some(&name), Duration::from_secs(10))
            .map(|m| {
                m.topics()
                    .iter()
                    .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            })
    })
    .await??;
    if found {
        Ok(())
    } else {
        Err(Error::MissingTopic(topic.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [(&str, &str); 3] = [
        ("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:9092"),
        ("ORDERFLOW_DATABASE_URL", "postgres://u:p@localhost/db"),
        ("ORDERFLOW_SUPPLIER_API_URL", "http://127.0.0.1:8092/"),
    ];

    #[test]
    fn defaults_follow_the_service_name() {
        let s = Settings::from_source(&REQUIRED).unwrap();
        assert_eq!(s.consumer.group_id, "supplier-dispatch");
        assert_eq!(s.consumer.topic, "orders.placed");
        assert_eq!(
            s.consumer.dead_letter_topic,
            "orders.placed.supplier-dispatch.dlq"
        );
        assert_eq!(s.database.schema, "supplier_dispatch");
        assert_eq!(s.supplier_api_url, "http://127.0.0.1:8092");
        assert_eq!(s.supplier_timeout, Duration::from_secs(5));
        assert_eq!(s.dispatched_topic, "orders.dispatched");
    }

    #[test]
    fn the_supplier_url_is_required_and_checked() {
        let src = [REQUIRED[0], REQUIRED[1]];
        assert_eq!(
            Settings::from_source(&src).unwrap_err(),
            ConfigError::Missing("ORDERFLOW_SUPPLIER_API_URL")
        );
        let src = [
            REQUIRED[0],
            REQUIRED[1],
            ("ORDERFLOW_SUPPLIER_API_URL", "127.0.0.1:8092"),
        ];
        assert!(Settings::from_source(&src)
            .unwrap_err()
            .to_string()
            .starts_with("ORDERFLOW_SUPPLIER_API_URL is malformed"));
        let src = [
            REQUIRED[0],
            REQUIRED[1],
            REQUIRED[2],
            ("ORDERFLOW_SUPPLIER_TIMEOUT_MS", "fast"),
        ];
        assert!(Settings::from_source(&src)
            .unwrap_err()
            .to_string()
            .starts_with("ORDERFLOW_SUPPLIER_TIMEOUT_MS is malformed"));
        let src = [
            REQUIRED[0],
            REQUIRED[1],
            REQUIRED[2],
            ("ORDERFLOW_SUPPLIER_TIMEOUT_MS", "0"),
        ];
        assert!(Settings::from_source(&src)
            .unwrap_err()
            .to_string()
            .starts_with("ORDERFLOW_SUPPLIER_TIMEOUT_MS is malformed"));
    }
}
