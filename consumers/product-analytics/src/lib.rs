//! `product-analytics`: archives the product characteristics of every sold order line (no
//! customer data) as date-partitioned Parquet files for marketing analysis, in a local folder or
//! on S3. Consumer group `product-analytics` on `orders.placed`.
//!
//! The handler stages lines in Postgres exactly once per event ([`handler`], [`staging`]); a
//! flusher task in the same process cuts staged lines into batches by size or age and writes
//! each batch's files at deterministic paths before marking it written ([`flusher`]), so a
//! crash between the two only means the same files are written again.

pub mod archive;
pub mod columnar;
pub mod effect;
pub mod flusher;
pub mod handler;
pub mod line;
pub mod staging;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use orderflow_core::config::{self, ConfigError, KafkaConfig, Source};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::observe::{self, ObserveError, ObserveServer};
use orderflow_core::runtime::{self, ConsumerSettings, RuntimeError};
use orderflow_core::topics;
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use archive::{Archive, ArchiveError, ArchiveUrl};
pub use staging::FlushPolicy;

/// The consumer group, and the service's name.
pub const GROUP: &str = "product-analytics";
/// The database schema unless `ORDERFLOW_DATABASE_SCHEMA` says otherwise.
pub const SCHEMA: &str = "product_analytics";

pub const ARCHIVE_URL: &str = "ORDERFLOW_ANALYTICS_ARCHIVE_URL";
pub const FLUSH_ROWS: &str = "ORDERFLOW_ANALYTICS_FLUSH_ROWS";
pub const FLUSH_INTERVAL_MS: &str = "ORDERFLOW_ANALYTICS_FLUSH_INTERVAL_MS";
/// Where `/metrics`, `/healthz` and `/readyz` are served unless `ORDERFLOW_METRICS_LISTEN` says.
pub const METRICS_PORT: u16 = 9107;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Everything the service needs, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub consumer: ConsumerSettings,
    pub database: DatabaseConfig,
    pub archive: ArchiveUrl,
    pub flush: FlushPolicy,
    pub metrics_listen: SocketAddr,
}

impl Settings {
    /// Kafka, consumer and database settings as every consumer reads them, plus
    /// `ORDERFLOW_ANALYTICS_ARCHIVE_URL` (default `./analytics-archive`; a folder, `file:///…` or
    /// `s3://bucket/prefix` with the standard `AWS_*` variables), `ORDERFLOW_ANALYTICS_FLUSH_ROWS`
    /// (10000), `ORDERFLOW_ANALYTICS_FLUSH_INTERVAL_MS` (60000) and `ORDERFLOW_METRICS_LISTEN`
    /// (127.0.0.1:9107).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let archive = config::optional::<String>(src, ARCHIVE_URL)?
            .unwrap_or_else(|| "./analytics-archive".into());
        let archive = archive.parse().map_err(|reason| ConfigError::Malformed {
            name: ARCHIVE_URL,
            value: archive,
            reason,
        })?;
        let rows = config::optional::<usize>(src, FLUSH_ROWS)?.unwrap_or(10_000);
        if rows == 0 {
            return Err(ConfigError::Malformed {
                name: FLUSH_ROWS,
                value: "0".into(),
                reason: "a batch needs at least one row".into(),
            });
        }
        Ok(Self {
            kafka: KafkaConfig::from_source(src)?,
            consumer: ConsumerSettings::batched(GROUP, topics::ORDERS_PLACED).overridden_by(src)?,
            database: DatabaseConfig::from_source(src, SCHEMA)?,
            archive,
            flush: FlushPolicy {
                rows,
                interval: config::millis(src, FLUSH_INTERVAL_MS, Duration::from_secs(60))?,
            },
            metrics_listen: observe::listen_address(src, METRICS_PORT)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("consumer: {0}")]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("a task of the service panicked: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A started service: the consumer and the flusher, until [`ProductAnalytics::stop`].
pub struct ProductAnalytics {
    stop: watch::Sender<bool>,
    consumer: JoinHandle<Result<(), RuntimeError>>,
    flusher: JoinHandle<()>,
    observer: ObserveServer,
}

impl ProductAnalytics {
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.observer.addr
    }

    /// Stops consuming (running handlers finish and commit), lets the flusher finish the batch
    /// it is writing, and waits for both. Staged lines not yet written wait for the next start.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        let consumed = self.consumer.await;
        self.flusher.await?;
        Ok(consumed??)
    }

    /// Runs until `shutdown` completes or the consumer fails (say, its topic is missing).
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let ended = tokio::select! {
            _ = shutdown => None,
            consumed = &mut self.consumer => Some(consumed),
        };
        match ended {
            None => self.stop().await,
            Some(consumed) => {
                let _ = self.stop.send(true);
                self.flusher.await?;
                Ok(consumed??)
            }
        }
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Migrates the database, opens the archive, serves metrics and health (ready when Kafka and
/// the database answer) and starts the consumer and the flusher.
pub async fn start(settings: Settings, pool: PgPool) -> Result<ProductAnalytics, Error> {
    MIGRATOR.run(&pool).await?;
    let archive = Archive::open(&settings.archive)?;
    let observer = observe::kafka_and_database(&settings.kafka, &settings.consumer.topic, &pool)?
        .build()
        .serve(settings.metrics_listen)
        .await?;
    let store = IdempotencyStore::new(pool.clone(), settings.consumer.group_id.clone()).await?;
    let (stop, rx) = watch::channel(false);
    tracing::info!(
        %archive,
        flush_rows = settings.flush.rows,
        flush_interval_ms = settings.flush.interval.as_millis() as u64,
        topic = %settings.consumer.topic,
        group = %settings.consumer.group_id,
        "product analytics starting"
    );
    let flusher = tokio::spawn(flusher::run(pool, archive, settings.flush, rx.clone()));
    let consumer = tokio::spawn(async move {
        runtime::run(
            &settings.kafka,
            settings.consumer,
            handler::StageLines::new(store),
            stopped(rx),
        )
        .await
    });
    Ok(ProductAnalytics {
        stop,
        consumer,
        flusher,
        observer,
    })
}

/// Runs the service until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let pool = settings.database.connect().await?;
    start(settings, pool)
        .await?
        .run_until(orderflow_core::shutdown::signal())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 2] = [
        ("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:9092"),
        ("ORDERFLOW_DATABASE_URL", "postgres://u:p@localhost/db"),
    ];

    #[test]
    fn defaults_are_a_local_folder_ten_thousand_rows_or_a_minute() {
        let s = Settings::from_source(&BASE).unwrap();
        assert_eq!(s.archive, ArchiveUrl::Local("./analytics-archive".into()));
        assert_eq!(s.flush.rows, 10_000);
        assert_eq!(s.flush.interval, Duration::from_secs(60));
        assert_eq!(s.consumer.group_id, "product-analytics");
        assert_eq!(s.consumer.topic, "orders.placed");
        assert_eq!(s.database.schema, "product_analytics");
    }

    #[test]
    fn every_setting_can_be_overridden() {
        let s = Settings::from_source(&[
            BASE[0],
            BASE[1],
            (ARCHIVE_URL, "s3://marketing/orderflow"),
            (FLUSH_ROWS, "500"),
            (FLUSH_INTERVAL_MS, "2500"),
        ])
        .unwrap();
        assert_eq!(
            s.archive,
            ArchiveUrl::S3 {
                bucket: "marketing".into(),
                prefix: "orderflow".into()
            }
        );
        assert_eq!(s.flush.rows, 500);
        assert_eq!(s.flush.interval, Duration::from_millis(2500));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            (ARCHIVE_URL, "ftp://host/x"),
            (FLUSH_ROWS, "0"),
            (FLUSH_ROWS, "many"),
            (FLUSH_INTERVAL_MS, "-1"),
        ] {
            let err = Settings::from_source(&[BASE[0], BASE[1], (name, value)]).unwrap_err();
            assert!(
                matches!(err, ConfigError::Malformed { name: n, .. } if n == name),
                "{name}={value}: {err}"
            );
        }
    }
}
