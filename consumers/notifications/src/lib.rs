//! Notifications: per order, one confirmation e-mail to the customer (in their language) and one
//! notice to the sales agent, when the order has one.
//!
//! Two processes share this crate and its schema. The `notifications` consumer (group
//! `notifications` on `orders.placed`) renders the e-mails and publishes them, persistent and
//! publisher-confirmed, to the durable RabbitMQ queue `orderflow.emails`. The `mailer` consumes
//! that queue with manual acks and delivers over SMTP. Every e-mail has a `Message-ID` derived
//! from (order, recipient kind), which is what makes "no e-mail sent twice" checkable at each
//! step: the consumer skips ids it already queued, the mailer skips ids it already sent.

pub mod consumer;
pub mod effect;
pub mod email;
pub mod locale;
pub mod mailer;
pub mod queue;
pub mod render;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;

use lettre::message::Mailbox;
use orderflow_core::config::{self, ConfigError, KafkaConfig, Source};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::observe::{self, ObserveError};
use orderflow_core::runtime::{self, ConsumerSettings, RuntimeError};
use orderflow_core::topics;

use crate::consumer::Notifier;
use crate::queue::{AmqpSettings, Publisher};
use crate::render::Renderer;

/// The service's migrations, run by both binaries at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The consumer group, and the default schema.
pub const GROUP: &str = "notifications";

/// Where the consumer serves `/metrics`, `/healthz` and `/readyz` unless
/// `ORDERFLOW_METRICS_LISTEN` says.
pub const METRICS_PORT: u16 = 9103;
/// Where the mailer serves them.
pub const MAILER_METRICS_PORT: u16 = 9104;

/// Sender of every e-mail unless `ORDERFLOW_MAIL_FROM` says otherwise.
pub const DEFAULT_MAIL_FROM: &str = "Orderflow <orders@orderflow.example>";

/// Why a notifications process could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("templates: {0}")]
    Templates(#[from] minijinja::Error),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
}

/// Everything the consumer needs, from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub kafka: KafkaConfig,
    pub consumer: ConsumerSettings,
    pub database: DatabaseConfig,
    pub amqp: AmqpSettings,
    pub mail_from: Mailbox,
    pub metrics_listen: SocketAddr,
}

impl Settings {
    /// `ORDERFLOW_KAFKA_BROKERS` and its security settings, the `ORDERFLOW_CONSUMER_*`
    /// overrides, `ORDERFLOW_DATABASE_URL` / `_SCHEMA` (default `notifications`),
    /// `ORDERFLOW_AMQP_URL`, `ORDERFLOW_EMAIL_QUEUE`, `ORDERFLOW_AMQP_CONFIRM_TIMEOUT_MS`,
    /// `ORDERFLOW_MAIL_FROM` (default `Orderflow <orders@orderflow.example>`) and
    /// `ORDERFLOW_METRICS_LISTEN` (127.0.0.1:9103).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let from: String = config::optional(src, "ORDERFLOW_MAIL_FROM")?
            .unwrap_or_else(|| DEFAULT_MAIL_FROM.to_string());
        let mail_from = from
            .parse::<Mailbox>()
            .map_err(|e| ConfigError::Malformed {
                name: "ORDERFLOW_MAIL_FROM",
                value: from.clone(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            kafka: KafkaConfig::from_source(src)?,
            consumer: ConsumerSettings::batched(GROUP, topics::ORDERS_PLACED).overridden_by(src)?,
            database: DatabaseConfig::from_source(src, GROUP)?,
            amqp: AmqpSettings::from_source(src)?,
            mail_from,
            metrics_listen: observe::listen_address(src, METRICS_PORT)?,
        })
    }
}

/// Runs the consumer until `shutdown` completes, serving metrics and health (ready when Kafka
/// and the database answer).
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let pool = settings.database.connect().await?;
    MIGRATOR.run(&pool).await?;
    let _observer = observe::kafka_and_database(&settings.kafka, &settings.consumer.topic, &pool)?
        .build()
        .serve(settings.metrics_listen)
        .await?;
    let notifier = Notifier {
        renderer: Renderer::new(settings.mail_from)?,
        publisher: Publisher::connect(settings.amqp, GROUP).await?,
        idempotency: IdempotencyStore::new(pool, settings.consumer.group_id.clone()).await?,
    };
    runtime::run(&settings.kafka, settings.consumer, notifier, shutdown).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 3] = [
        ("ORDERFLOW_KAFKA_BROKERS", "127.0.0.1:9092"),
        ("ORDERFLOW_DATABASE_URL", "postgres://u:p@localhost/db"),
        (
            "ORDERFLOW_AMQP_URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ),
    ];

    #[test]
    fn defaults_follow_the_service() {
        let s = Settings::from_source(&BASE).unwrap();
        assert_eq!(s.consumer.group_id, "notifications");
        assert_eq!(
            s.consumer.dead_letter_topic,
            "orders.placed.notifications.dlq"
        );
        assert_eq!(s.database.schema, "notifications");
        assert_eq!(s.mail_from.to_string(), DEFAULT_MAIL_FROM);
    }

    #[test]
    fn a_malformed_sender_is_named() {
        let [a, b, c] = BASE;
        let err = Settings::from_source(&[a, b, c, ("ORDERFLOW_MAIL_FROM", "orders at shop")])
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ORDERFLOW_MAIL_FROM is malformed"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_broker_url_is_named() {
        let [a, b, _] = BASE;
        assert_eq!(
            Settings::from_source(&[a, b]).unwrap_err(),
            ConfigError::Missing(config::AMQP_URL)
        );
    }
}
