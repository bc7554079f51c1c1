//! The checkout publisher: the HTTP service the checkout API calls to place a paid order, and the
//! outbox relay that publishes accepted orders to Kafka.

pub mod api;
pub mod metrics;
pub mod order;
pub mod payment;
pub mod relay;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orderflow_core::config::{self, ConfigError, KafkaConfig, Source};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::observe::{self, ObserveServer};
use orderflow_core::registry::SchemaRegistry;
use orderflow_core::topics;
use tokio::sync::watch;

/// The database schema unless `ORDERFLOW_DATABASE_SCHEMA` says otherwise.
pub const DEFAULT_SCHEMA: &str = "checkout";

/// Where `/metrics`, `/healthz` and `/readyz` are served unless `ORDERFLOW_METRICS_LISTEN` says.
pub const METRICS_PORT: u16 = 9101;

/// Everything checkout needs, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub database: DatabaseConfig,
    pub kafka: KafkaConfig,
    pub payment_api_url: String,
    pub payment_timeout: Duration,
    pub topic: String,
    /// How long one Kafka send may wait for a broker before the relay retries it.
    pub delivery_timeout: Duration,
    pub metrics_listen: SocketAddr,
    /// Send Confluent-framed messages, registering the schema (`ORDERFLOW_SCHEMA_REGISTRY_URL`).
    pub schema_registry: Option<SchemaRegistry>,
}

impl Settings {
    /// `ORDERFLOW_CHECKOUT_LISTEN` (default 127.0.0.1:8080), `ORDERFLOW_DATABASE_URL` and
    /// `ORDERFLOW_DATABASE_SCHEMA` (checkout),
    /// `ORDERFLOW_KAFKA_BROKERS` and its security settings, `ORDERFLOW_PAYMENT_API_URL`,
    /// `ORDERFLOW_PAYMENT_TIMEOUT_MS` (3000), `ORDERFLOW_ORDERS_TOPIC` (orders.placed),
    /// `ORDERFLOW_RELAY_DELIVERY_TIMEOUT_MS` (10000), `ORDERFLOW_METRICS_LISTEN` (127.0.0.1:9101),
    /// `ORDERFLOW_SCHEMA_REGISTRY_URL` (none: Avro single-object encoding).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            listen: config::optional(src, "ORDERFLOW_CHECKOUT_LISTEN")?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            database: DatabaseConfig::from_source(src, DEFAULT_SCHEMA)?,
            kafka: KafkaConfig::from_source(src)?,
            payment_api_url: config::url(src, config::PAYMENT_API_URL, &["http", "https"])?,
            payment_timeout: config::millis(
                src,
                "ORDERFLOW_PAYMENT_TIMEOUT_MS",
                Duration::from_secs(3),
            )?,
            topic: config::optional(src, "ORDERFLOW_ORDERS_TOPIC")?
                .unwrap_or_else(|| topics::ORDERS_PLACED.to_string()),
            delivery_timeout: config::millis(
                src,
                "ORDERFLOW_RELAY_DELIVERY_TIMEOUT_MS",
                Duration::from_secs(10),
            )?,
            metrics_listen: observe::listen_address(src, METRICS_PORT)?,
            schema_registry: SchemaRegistry::from_source(src)?,
        })
    }
}

/// A started checkout: the HTTP API and the relay, until `stop` is called.
pub struct Checkout {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    observer: ObserveServer,
}

impl Checkout {
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.observer.addr
    }

    /// Stops accepting requests, lets the relay finish its batch, and waits for both.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Migrates the database and starts the API, the relay, and the metrics and health server
/// (ready when Kafka and the database answer).
pub async fn start(settings: Settings, pool: sqlx::PgPool) -> anyhow::Result<Checkout> {
    store::MIGRATOR.run(&pool).await?;
    let producer =
        orderflow_core::kafka::idempotent_producer(&settings.kafka, settings.delivery_timeout)?;
    let metrics = Arc::new(metrics::CheckoutMetrics::new(pool.clone()));
    let observer = observe::kafka_and_database(&settings.kafka, &settings.topic, &pool)?
        .collect(Arc::clone(&metrics))
        .build()
        .serve(settings.metrics_listen)
        .await?;
    let state = api::AppState {
        metrics,
        pool: pool.clone(),
        payments: payment::PaymentClient::new(
            settings.payment_api_url.clone(),
            settings.payment_timeout,
        )?,
        topic: settings.topic.clone(),
        waker: relay::wake::OutboxWaker::start(pool.clone()),
    };
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let (stop, rx) = watch::channel(false);
    let server = tokio::spawn({
        let rx = rx.clone();
        async move {
            if let Err(e) = axum::serve(listener, api::router(state))
                .with_graceful_shutdown(stopped(rx))
                .await
            {
                tracing::error!(error = %e, "checkout API stopped");
            }
        }
    });
    let relay = relay::Relay::new(
        pool,
        producer,
        settings.kafka.clone(),
        relay::RelaySettings {
            schema_registry: settings.schema_registry.clone(),
            ..relay::RelaySettings::default()
        },
    );
    let relay = tokio::spawn(relay.run(stopped(rx)));
    tracing::info!(%addr, topic = %settings.topic, "checkout listening");
    Ok(Checkout {
        addr,
        stop,
        tasks: vec![server, relay],
        observer,
    })
}

/// Runs checkout until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let pool = settings
        .database
        .connect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", config::DATABASE_URL))?;
    let checkout = start(settings, pool).await?;
    orderflow_core::shutdown::signal().await;
    checkout.stop().await;
    Ok(())
}
