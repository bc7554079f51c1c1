//! `accounting`: journals every placed order as one balanced double-entry in Postgres (consumer
//! group `accounting` on `orders.placed`), and exports a day's journal as a CSV batch for the
//! on-premises ledger.
//!
//! `run` consumes; `export` writes a day's batch. Both first bring the schema up to date and check
//! the business time zone (`migrate`); the consumer also upserts the chart of accounts (`prepare`).

pub mod chart;
mod csv;
pub mod effect;
pub mod entry;
pub mod export;
mod handler;
pub mod store;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDate;
use orderflow_core::config::{self, ConfigError, KafkaConfig, Source};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::observe::{self, ObserveError, ObserveServer};
use orderflow_core::runtime::{self, ConsumerSettings, RuntimeError};
use orderflow_core::topics;
use sqlx::PgPool;
use tokio::sync::oneshot;

use chart::{Chart, ChartError};
use export::{Batch, ExportError};
use handler::Journal;

/// The consumer group, and (with '-' as '_') the default database schema.
pub const GROUP: &str = "accounting";
/// The database schema unless `ORDERFLOW_DATABASE_SCHEMA` says otherwise.
pub const DEFAULT_SCHEMA: &str = "accounting";
/// IANA name of the zone whose calendar days the journal is kept in (default UTC).
pub const BUSINESS_TIME_ZONE: &str = "ORDERFLOW_BUSINESS_TIMEZONE";
/// A chart of accounts file replacing the built-in one.
pub const CHART_FILE: &str = "ORDERFLOW_ACCOUNTING_CHART_FILE";
/// Where `/metrics`, `/healthz` and `/readyz` are served unless `ORDERFLOW_METRICS_LISTEN` says.
pub const METRICS_PORT: u16 = 9105;

/// What both commands need: the database, the business time zone and the chart.
#[derive(Debug, Clone)]
pub struct LedgerSettings {
    pub database: DatabaseConfig,
    pub time_zone: String,
    /// `None`: the chart compiled into the binary.
    pub chart_file: Option<PathBuf>,
}

impl LedgerSettings {
    /// `ORDERFLOW_DATABASE_URL`, `ORDERFLOW_DATABASE_SCHEMA` (accounting),
    /// `ORDERFLOW_BUSINESS_TIMEZONE` (UTC), `ORDERFLOW_ACCOUNTING_CHART_FILE` (built-in chart).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            database: DatabaseConfig::from_source(src, DEFAULT_SCHEMA)?,
            time_zone: config::optional(src, BUSINESS_TIME_ZONE)?
                .unwrap_or_else(|| "UTC".to_string()),
            chart_file: config::optional(src, CHART_FILE)?,
        })
    }
}

/// Everything the consumer needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub ledger: LedgerSettings,
    pub kafka: KafkaConfig,
    pub consumer: ConsumerSettings,
    pub metrics_listen: SocketAddr,
}

impl Settings {
    /// The ledger's variables, `ORDERFLOW_KAFKA_BROKERS` (and its security settings), the
    /// runtime's `ORDERFLOW_CONSUMER_*` overrides and `ORDERFLOW_METRICS_LISTEN`
    /// (127.0.0.1:9105).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            ledger: LedgerSettings::from_source(src)?,
            kafka: KafkaConfig::from_source(src)?,
            consumer: ConsumerSettings::batched(GROUP, topics::ORDERS_PLACED).overridden_by(src)?,
            metrics_listen: observe::listen_address(src, METRICS_PORT)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the chart of accounts {path}: {source}")]
    ChartFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("{BUSINESS_TIME_ZONE} is {0:?}, which is not an IANA time zone known to Postgres (e.g. Europe/Madrid)")]
    UnknownTimeZone(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the accounting schema: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the consumer task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Brings the schema up to date and checks the business time zone against Postgres's list.
pub async fn migrate(pool: &PgPool, time_zone: &str) -> Result<(), Error> {
    store::MIGRATOR.run(pool).await?;
    if !store::is_time_zone(pool, time_zone).await? {
        return Err(Error::UnknownTimeZone(time_zone.to_string()));
    }
    Ok(())
}

/// `migrate`, then upserts and returns the chart of accounts: what the consumer needs to start.
pub async fn prepare(pool: &PgPool, settings: &LedgerSettings) -> Result<Chart, Error> {
    let chart = match &settings.chart_file {
        None => Chart::parse(chart::DEFAULT_CHART, "built-in")?,
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ChartFile {
                path: path.clone(),
                source,
            })?;
            Chart::parse(&text, &path.display().to_string())?
        }
    };
    migrate(pool, &settings.time_zone).await?;
    chart.install(pool).await?;
    Ok(chart)
}

async fn journal(settings: &Settings, pool: PgPool) -> Result<Journal, Error> {
    let chart = prepare(&pool, &settings.ledger).await?;
    Ok(Journal {
        processed: IdempotencyStore::new(pool, &settings.consumer.group_id).await?,
        chart: Arc::new(chart),
        time_zone: settings.ledger.time_zone.clone(),
    })
}

/// A consumer started in the background by `start`.
pub struct Accounting {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), RuntimeError>>,
    observer: ObserveServer,
}

impl Accounting {
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.observer.addr
    }

    /// Finishes the events in flight, commits and leaves the group.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(());
        Ok(self.task.await??)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` (ready when Kafka and the database answer).
async fn observe(settings: &Settings, pool: &PgPool) -> Result<ObserveServer, Error> {
    Ok(
        observe::kafka_and_database(&settings.kafka, &settings.consumer.topic, pool)?
            .build()
            .serve(settings.metrics_listen)
            .await?,
    )
}

/// Prepares the schema, serves metrics and health, and consumes in the background until `stop`.
pub async fn start(settings: Settings, pool: PgPool) -> Result<Accounting, Error> {
    let observer = observe(&settings, &pool).await?;
    let handler = journal(&settings, pool).await?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runtime::run(&settings.kafka, settings.consumer, handler, async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(Accounting {
        stop,
        task,
        observer,
    })
}

/// Consumes until SIGTERM/SIGINT.
pub async fn run(settings: Settings) -> Result<(), Error> {
    let pool = settings.ledger.database.connect().await?;
    let _observer = observe(&settings, &pool).await?;
    let handler = journal(&settings, pool).await?;
    tracing::info!(group = %settings.consumer.group_id, topic = %settings.consumer.topic,
        time_zone = %settings.ledger.time_zone, "accounting consuming");
    runtime::run(
        &settings.kafka,
        settings.consumer,
        handler,
        orderflow_core::shutdown::signal(),
    )
    .await?;
    Ok(())
}

/// Exports `day`'s journal to `out` (replaced atomically) or, without a file, returns it for
/// the caller to print.
pub async fn export(
    settings: &LedgerSettings,
    day: NaiveDate,
    out: Option<&Path>,
) -> Result<Batch, Error> {
    let pool = settings.database.connect().await?;
    // The chart is the consumer's to install; an export reads account names from the postings.
    migrate(&pool, &settings.time_zone).await?;
    let batch = export::export_day(&pool, &settings.time_zone, day).await?;
    if let Some(path) = out {
        write_atomically(path, &batch.csv).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(batch)
}

/// The ledger's pick-up job never sees half a file: write beside it, then rename over it.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let url = (config::DATABASE_URL, "postgres://u:p@localhost/db");
        let s = LedgerSettings::from_source(&[url]).unwrap();
        assert_eq!(s.database.schema, "accounting");
        assert_eq!(s.time_zone, "UTC");
        assert_eq!(s.chart_file, None);
        let s = LedgerSettings::from_source(&[
            url,
            (BUSINESS_TIME_ZONE, "Europe/Madrid"),
            (CHART_FILE, "/etc/chart.csv"),
        ])
        .unwrap();
        assert_eq!(s.time_zone, "Europe/Madrid");
        assert_eq!(s.chart_file, Some(PathBuf::from("/etc/chart.csv")));
        let e = Settings::from_source(&[url]).unwrap_err();
        assert_eq!(e, ConfigError::Missing(config::KAFKA_BROKERS));
        let s = Settings::from_source(&[url, (config::KAFKA_BROKERS, "b:9092")]).unwrap();
        assert_eq!(s.consumer.group_id, "accounting");
        assert_eq!(s.consumer.dead_letter_topic, "orders.placed.accounting.dlq");
    }
}
