//! The mailer: consumes the e-mail queue with manual acks and a prefetch bound, and delivers
//! each e-mail over SMTP exactly once per `Message-ID`, as far as SMTP allows.
//!
//! For each delivery it takes the e-mail's lock and checks `sent_emails` (a copy already sent
//! is acked and dropped), records the attempt, talks to SMTP, records the 250, and only then
//! acks. A temporary failure (4xx, refused connection, timeout) is retried in process with
//! backoff, then the message is requeued; a permanent one (5xx) goes to the dead-letter queue
//! with the reason in `x-dlq-reason`.
//!
//! The one window SMTP leaves open: the server accepted the message (250) and the mailer died
//! before recording it, or the connection failed while waiting for that reply. On redelivery
//! the mailer asks the provider's message lookup (`ORDERFLOW_MAIL_LOOKUP_URL`, see [`lookup`])
//! whether it has the message, and records it as sent instead of sending a copy. Without a
//! lookup, or when it cannot answer, the message is sent again with the same `Message-ID`, so
//! the receiver can spot the copy. `sent_emails.interrupted` counts interrupted attempts.

mod lookup;
mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection};
use lettre::address::Envelope;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{Address, AsyncTransport, Tokio1Executor};
use orderflow_core::config::{self, ConfigError, Source};
use orderflow_core::db::DatabaseConfig;
use orderflow_core::observe::health::{Check, DatabaseCheck};
use orderflow_core::observe::{self, Observer};
use orderflow_core::telemetry::{self, HeaderPairs};
use sqlx::PgPool;
use tracing::Instrument;

use self::metrics::{EmailOutcome, SmtpResult};
use crate::email::{self, Email};
use crate::queue::{self, AmqpSettings, PublishError};
use crate::store::{self, Claim, SendGuard};
use crate::Error;
pub use lookup::MessageLookup;

/// Header of a dead-lettered message: why it was given up.
pub const DLQ_REASON: &str = "x-dlq-reason";
/// Header of a dead-lettered message: the SMTP reply code, when the server refused it.
pub const DLQ_SMTP_CODE: &str = "x-dlq-smtp-code";
/// Header of a dead-lettered message: when (RFC 3339).
pub const DLQ_FAILED_AT: &str = "x-dlq-failed-at";

/// In-process retries of a temporary SMTP failure before the message is requeued.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    fn delays(&self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
            .build()
    }
}

/// Where the SMTP server listens, from `smtp://host[:port]` (port 25 by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpEndpoint {
    pub host: String,
    pub port: u16,
}

impl SmtpEndpoint {
    /// Parses `smtp://host[:port]`; a reason when the URL says more than this mailer can do.
    pub fn parse(url: &str) -> Result<Self, String> {
        let authority = url
            .strip_prefix("smtp://")
            .ok_or("expected smtp://host[:port]")?
            .trim_end_matches('/');
        if authority.contains(['/', '?', '@']) {
            return Err(
                "expected smtp://host[:port] with no credentials, path or query (TLS \
                 and AUTH are not built in)"
                    .into(),
            );
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("port {port:?} is not a number"))?;
                (host, port)
            }
            _ => (authority, 25),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("no host".into());
        }
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

/// The provider's message-lookup URL (optional).
pub const LOOKUP_URL: &str = "ORDERFLOW_MAIL_LOOKUP_URL";

/// Everything the mailer needs, from the environment.
#[derive(Debug, Clone)]
pub struct MailerSettings {
    pub database: DatabaseConfig,
    pub amqp: AmqpSettings,
    pub smtp: SmtpEndpoint,
    pub smtp_timeout: Duration,
    /// Unacknowledged messages the broker may hand this mailer at once.
    pub prefetch: u16,
    /// E-mails sent at once (each holds one database connection while it is sent, so the pool
    /// is sized to it unless `ORDERFLOW_DATABASE_MAX_CONNECTIONS` says otherwise).
    pub concurrency: usize,
    pub retry: RetryPolicy,
    /// The provider's message lookup, asked after an interrupted attempt (see [`lookup`]).
    pub lookup_url: Option<String>,
    pub metrics_listen: SocketAddr,
}

impl MailerSettings {
    /// `ORDERFLOW_DATABASE_URL` / `_SCHEMA` (default `notifications`), the AMQP settings,
    /// `ORDERFLOW_SMTP_URL` (`smtp://host:port`), `ORDERFLOW_SMTP_TIMEOUT_MS` (30000),
    /// `ORDERFLOW_MAILER_PREFETCH` (64), `ORDERFLOW_MAILER_CONCURRENCY` (32),
    /// `ORDERFLOW_MAILER_RETRY_MAX_ATTEMPTS` (5), `ORDERFLOW_MAILER_RETRY_MIN_DELAY_MS` (500),
    /// `ORDERFLOW_MAILER_RETRY_MAX_DELAY_MS` (10000), `ORDERFLOW_MAIL_LOOKUP_URL` (none),
    /// `ORDERFLOW_METRICS_LISTEN` (127.0.0.1:9104).
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let smtp_url = config::url(src, config::SMTP_URL, &["smtp"])?;
        let smtp = SmtpEndpoint::parse(&smtp_url).map_err(|reason| ConfigError::Malformed {
            name: config::SMTP_URL,
            value: smtp_url.clone(),
            reason,
        })?;
        let positive = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            match config::optional::<usize>(src, name)? {
                Some(0) => Err(ConfigError::Malformed {
                    name,
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                }),
                n => Ok(n.unwrap_or(default)),
            }
        };
        let concurrency = positive("ORDERFLOW_MAILER_CONCURRENCY", 32)?;
        let mut database = DatabaseConfig::from_source(src, "notifications")?;
        if config::optional::<u32>(src, "ORDERFLOW_DATABASE_MAX_CONNECTIONS")?.is_none() {
            // One connection per e-mail being sent, and a few for the rest.
            database.max_connections = u32::try_from(concurrency)
                .unwrap_or(u32::MAX)
                .saturating_add(4);
        }
        Ok(Self {
            database,
            amqp: AmqpSettings::from_source(src)?,
            smtp,
            smtp_timeout: config::millis(
                src,
                "ORDERFLOW_SMTP_TIMEOUT_MS",
                Duration::from_secs(30),
            )?,
            prefetch: config::optional(src, "ORDERFLOW_MAILER_PREFETCH")?.unwrap_or(64),
            concurrency,
            retry: RetryPolicy {
                attempts: positive("ORDERFLOW_MAILER_RETRY_MAX_ATTEMPTS", 5)?,
                min_delay: config::millis(
                    src,
                    "ORDERFLOW_MAILER_RETRY_MIN_DELAY_MS",
                    Duration::from_millis(500),
                )?,
                max_delay: config::millis(
                    src,
                    "ORDERFLOW_MAILER_RETRY_MAX_DELAY_MS",
                    Duration::from_secs(10),
                )?,
            },
            lookup_url: match config::optional::<String>(src, LOOKUP_URL)? {
                Some(_) => Some(config::url(src, LOOKUP_URL, &["http", "https"])?),
                None => None,
            },
            metrics_listen: observe::listen_address(src, crate::MAILER_METRICS_PORT)?,
        })
    }
}

/// Why an AMQP session of the mailer ended early.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("dead-lettering: {0}")]
    DeadLetter(#[from] PublishError),
    #[error("the broker cancelled the consumer")]
    Cancelled,
}

/// Readiness of the mailer's RabbitMQ side: a session is consuming the queue. It is false from a
/// lost connection until the reconnect loop has a new one.
struct Consuming(Arc<AtomicBool>);

impl Check for Consuming {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let consuming = self.0.load(Ordering::Relaxed);
        Box::pin(async move {
            if consuming {
                Ok(())
            } else {
                Err("not consuming the e-mail queue; connecting to RabbitMQ".into())
            }
        })
    }
}

/// Runs the mailer until `shutdown` completes: finishes the e-mails in flight, then closes the
/// connection, which returns the prefetched messages to the queue. Serves metrics and health
/// (ready while RabbitMQ is connected and the database answers).
pub async fn run(
    settings: MailerSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    // Plain SMTP, as on loopback or inside a cluster; TLS would need one of lettre's TLS
    // features, which this lean build leaves out.
    let smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.smtp.host)
        .port(settings.smtp.port)
        .timeout(Some(settings.smtp_timeout))
        .build();
    let pool = settings.database.connect().await?;
    crate::MIGRATOR.run(&pool).await?;
    let consuming = Arc::new(AtomicBool::new(false));
    let _observer = Observer::builder()
        .ready_when(Consuming(Arc::clone(&consuming)))
        .ready_when(DatabaseCheck(pool.clone()))
        .build()
        .serve(settings.metrics_listen)
        .await?;
    let lookup = match &settings.lookup_url {
        Some(url) => Some(
            MessageLookup::new(url.clone(), settings.smtp_timeout).map_err(|e| {
                ConfigError::Malformed {
                    name: LOOKUP_URL,
                    value: url.clone(),
                    reason: format!("no HTTP client for it: {e}"),
                }
            })?,
        ),
        None => None,
    };
    let mailer = Mailer {
        pool,
        smtp,
        lookup,
        settings,
        consuming,
    };
    tokio::pin!(shutdown);
    // A broker that is unreachable at start-up is a configuration problem worth stopping for;
    // later losses are outages worth riding out.
    let mut connection = queue::connect(&mailer.settings.amqp.url, "mailer").await?;
    loop {
        let outcome = mailer.consume(&connection, shutdown.as_mut()).await;
        mailer.consuming.store(false, Ordering::Relaxed);
        let _ = connection.close(200, "mailer stopping".into()).await;
        match outcome {
            Ok(()) => {
                tracing::info!("mailer stopped");
                return Ok(());
            }
            Err(e) => tracing::warn!(error = %e, "amqp session ended; reconnecting"),
        }
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .without_max_times()
            .build();
        connection = loop {
            tokio::select! {
                _ = shutdown.as_mut() => return Ok(()),
                _ = tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(10))) => {}
            }
            match queue::connect(&mailer.settings.amqp.url, "mailer").await {
                Ok(c) => break c,
                Err(e) => tracing::warn!(error = %e, "amqp reconnect failed"),
            }
        };
    }
}

struct Mailer {
    pool: PgPool,
    smtp: AsyncSmtpTransport<Tokio1Executor>,
    lookup: Option<MessageLookup>,
    settings: MailerSettings,
    /// Whether a session consumes the queue now (the readiness check reads it).
    consuming: Arc<AtomicBool>,
}

/// What became of one e-mail.
enum Outcome {
    Delivered,
    AlreadyDone,
    /// Still failing temporarily after the in-process retries.
    Temporary,
    Permanent {
        reason: String,
        smtp_code: Option<String>,
        guard: SendGuard,
    },
}

impl Mailer {
    /// One AMQP session: consume until `shutdown` (Ok) or until the channel fails (Err).
    async fn consume<F: Future<Output = ()>>(
        &self,
        connection: &Connection,
        shutdown: Pin<&mut F>,
    ) -> Result<(), SessionError> {
        let amqp = &self.settings.amqp;
        let channel = connection.create_channel().await?;
        queue::declare(&channel, amqp).await?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await?;
        let dead_letters = connection.create_channel().await?;
        dead_letters
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                amqp.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %amqp.queue, prefetch = self.settings.prefetch, "mailer consuming");
        self.consuming.store(true, Ordering::Relaxed);
        let tag = consumer.tag();
        let mut deliveries = consumer.take_until(shutdown);
        (&mut deliveries)
            .map_err(SessionError::from)
            .try_for_each_concurrent(self.settings.concurrency, |delivery| {
                self.handle(delivery, &dead_letters)
            })
            .await?;
        if !deliveries.is_stopped() {
            return Err(SessionError::Cancelled);
        }
        // Shutting down: stop deliveries, then close the channels, which hands the prefetched
        // messages back to the queue.
        channel
            .basic_cancel(tag, BasicCancelOptions::default())
            .await?;
        drop(deliveries);
        dead_letters.close(200, "mailer stopping".into()).await?;
        channel.close(200, "mailer stopping".into()).await?;
        Ok(())
    }

    async fn handle(&self, delivery: Delivery, dead_letters: &Channel) -> Result<(), SessionError> {
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let span = tracing::info_span!(
            "deliver_email",
            otel.name = %format!("process {}", self.settings.amqp.queue),
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %self.settings.amqp.queue,
            messaging.message.id = %message_id,
            redelivered = delivery.redelivered,
            otel.status_code = tracing::field::Empty,
            otel.status_description = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        telemetry::set_parent_from(
            &span,
            &HeaderPairs(&email::header_pairs(&delivery.properties)),
        );
        self.deliver(delivery, dead_letters).instrument(span).await
    }

    async fn deliver(
        &self,
        delivery: Delivery,
        dead_letters: &Channel,
    ) -> Result<(), SessionError> {
        let parsed = Email::from_amqp(&delivery.properties, &delivery.data)
            .map_err(|e| e.to_string())
            .and_then(|email| envelope(&email).map(|envelope| (email, envelope)));
        let (email, envelope) = match parsed {
            Ok(parsed) => parsed,
            Err(reason) => {
                tracing::warn!(%reason, "dead-lettering a message that is not a sendable e-mail");
                return self
                    .give_up(&delivery, dead_letters, &reason, None, None)
                    .await;
            }
        };
        let outcome = match self.send(&email, &envelope).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // The database is unavailable: nothing was sent; let the broker keep the message.
                tracing::warn!(error = %e, "database error; requeueing the e-mail");
                metrics::email(&self.settings.amqp.queue, EmailOutcome::Requeued);
                tokio::time::sleep(self.settings.retry.min_delay).await;
                requeue(&delivery).await?;
                return Ok(());
            }
        };
        match outcome {
            Outcome::Delivered | Outcome::AlreadyDone => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Outcome::Temporary => requeue(&delivery).await?,
            Outcome::Permanent {
                reason,
                smtp_code,
                guard,
            } => {
                tracing::warn!(%reason, "SMTP refused the e-mail permanently; dead-lettering it");
                self.give_up(&delivery, dead_letters, &reason, smtp_code, Some(guard))
                    .await?;
            }
        }
        Ok(())
    }

    /// Sends `email` unless a previous delivery already did, retrying temporary failures.
    async fn send(&self, email: &Email, envelope: &Envelope) -> Result<Outcome, sqlx::Error> {
        let queue = &self.settings.amqp.queue;
        let mut guard = match store::claim(&self.pool, email).await? {
            Claim::Send(guard) => guard,
            Claim::AlreadySent => {
                tracing::info!("already sent; dropping this copy");
                metrics::email(queue, EmailOutcome::Duplicate);
                return Ok(Outcome::AlreadyDone);
            }
            Claim::AlreadyFailed => {
                tracing::info!("already dead-lettered; dropping this copy");
                metrics::email(queue, EmailOutcome::Duplicate);
                return Ok(Outcome::AlreadyDone);
            }
        };
        if guard.after_interruption && self.accepted_before(&guard).await {
            self.record_sent(
                &mut guard,
                "accepted before an interrupted attempt (provider lookup)",
            )
            .await?;
            guard.release().await;
            metrics::email(queue, EmailOutcome::Recovered);
            return Ok(Outcome::Delivered);
        }
        let mut delays = self.settings.retry.delays();
        loop {
            let span = tracing::info_span!(
                "smtp",
                otel.name = "SMTP send",
                otel.kind = "client",
                network.protocol.name = "smtp",
                server.address = %self.settings.smtp.host,
                server.port = self.settings.smtp.port,
                smtp.response.code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
                otel.status_description = tracing::field::Empty,
                error.type = tracing::field::Empty,
            );
            let started = Instant::now();
            let sent = self
                .smtp
                .send_raw(envelope, &email.raw)
                .instrument(span.clone())
                .await;
            let result = match &sent {
                Ok(response) => {
                    span.record("smtp.response.code", response.code().to_string());
                    SmtpResult::Accepted
                }
                Err(e) => {
                    let code = e.status().map_or("smtp".to_string(), |c| c.to_string());
                    telemetry::record_error(&span, &code, &e.to_string());
                    if e.is_permanent() || e.is_client() {
                        SmtpResult::Permanent
                    } else {
                        SmtpResult::Temporary
                    }
                }
            };
            metrics::smtp_attempt(queue, result, started.elapsed());
            match sent {
                Ok(response) => {
                    let reply = format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    );
                    self.record_sent(&mut guard, &reply).await?;
                    guard.release().await;
                    metrics::email(queue, EmailOutcome::Sent);
                    tracing::info!(order_id = %email.order_id, kind = email.kind.as_str(), smtp = %reply, "e-mail sent");
                    return Ok(Outcome::Delivered);
                }
                // A refusal, or a message this server can never take (the client refuses to
                // send it, e.g. 8-bit data to a server without 8BITMIME).
                Err(e) if e.is_permanent() || e.is_client() => {
                    return Ok(Outcome::Permanent {
                        reason: e.to_string(),
                        smtp_code: e.status().map(|c| c.to_string()),
                        guard,
                    });
                }
                Err(e) => {
                    guard.retrying(&e.to_string()).await?;
                    let Some(delay) = delays.next() else {
                        tracing::warn!(error = %e, "temporary SMTP failure; retries used up, requeueing");
                        guard.release().await;
                        metrics::email(queue, EmailOutcome::Requeued);
                        return Ok(Outcome::Temporary);
                    };
                    tracing::warn!(error = %e, ?delay, "temporary SMTP failure; retrying");
                    tokio::time::sleep(delay).await;
                    guard.attempt().await?;
                }
            }
        }
    }

    /// After an interrupted attempt: whether the provider says it accepted the e-mail already.
    /// Without a lookup, or when it fails, the answer is no and the e-mail goes out again.
    async fn accepted_before(&self, guard: &SendGuard) -> bool {
        let Some(lookup) = &self.lookup else {
            tracing::warn!(
                "an earlier attempt was cut short and may have reached the server; \
                 sending again with the same Message-ID"
            );
            return false;
        };
        match lookup.accepted(guard.message_id()).await {
            Ok(true) => {
                tracing::warn!("an earlier attempt was cut short after the provider accepted it; recording it as sent");
                true
            }
            Ok(false) => {
                tracing::warn!(
                    "an earlier attempt was cut short before the provider accepted it; sending it"
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "an earlier attempt was cut short and the provider's lookup failed; \
                     sending again with the same Message-ID");
                false
            }
        }
    }

    /// Records an accepted e-mail. The guard's connection is tried first; if it broke, fresh
    /// connections are tried for a while, because failing here means sending the e-mail again.
    async fn record_sent(&self, guard: &mut SendGuard, reply: &str) -> Result<(), sqlx::Error> {
        let Err(first) = guard.sent(reply).await else {
            return Ok(());
        };
        tracing::warn!(error = %first, "recording the sent e-mail failed; retrying");
        let mut delays = self.settings.retry.delays();
        loop {
            let attempt = async {
                let mut conn = self.pool.acquire().await?;
                store::mark_sent(&mut conn, guard.message_id(), reply).await
            };
            match attempt.await {
                Ok(()) => return Ok(()),
                Err(e) => match delays.next() {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => return Err(e),
                },
            }
        }
    }

    /// Moves the delivery to the dead-letter queue (confirmed), records the failure and acks.
    /// If the dead-letter publish fails the message is requeued instead.
    async fn give_up(
        &self,
        delivery: &Delivery,
        dead_letters: &Channel,
        reason: &str,
        smtp_code: Option<String>,
        guard: Option<SendGuard>,
    ) -> Result<(), SessionError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        headers.insert(DLQ_REASON.into(), text(reason));
        headers.insert(
            DLQ_FAILED_AT.into(),
            text(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        if let Some(code) = &smtp_code {
            headers.insert(DLQ_SMTP_CODE.into(), text(code));
        }
        let properties = delivery
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let amqp = &self.settings.amqp;
        if let Err(e) = queue::publish_confirmed(
            dead_letters,
            &amqp.dead_letter_queue,
            [(delivery.data.as_slice(), properties)],
            amqp.confirm_timeout,
        )
        .await
        {
            if let Some(guard) = guard {
                guard.release().await;
            }
            requeue(delivery).await?;
            return Err(e.into());
        }
        if let Some(mut guard) = guard {
            // The message is safe in the dead-letter queue either way; a missing mark only
            // means a later copy would be tried (and refused) again.
            if let Err(e) = guard.failed(reason).await {
                tracing::warn!(error = %e, "recording the dead-lettered e-mail failed");
            }
            guard.release().await;
        }
        delivery.ack(BasicAckOptions::default()).await?;
        telemetry::record_error(
            &tracing::Span::current(),
            smtp_code.as_deref().unwrap_or("dead_letter"),
            reason,
        );
        metrics::email(&amqp.queue, EmailOutcome::DeadLettered);
        Ok(())
    }
}

async fn requeue(delivery: &Delivery) -> Result<(), lapin::Error> {
    delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await?;
    Ok(())
}

/// The SMTP envelope of an e-mail, or why it has none.
fn envelope(email: &Email) -> Result<Envelope, String> {
    let parse = |a: &str| {
        a.parse::<Address>()
            .map_err(|e| format!("envelope address {a:?}: {e}"))
    };
    let from = match email.envelope_from.as_str() {
        "" => None,
        a => Some(parse(a)?),
    };
    let to = email
        .envelope_to
        .iter()
        .map(|a| parse(a))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(from, to).map_err(|e| format!("envelope: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ORDERFLOW_DATABASE_URL", "postgres://u:p@localhost/db"),
            (
                "ORDERFLOW_AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
            ("ORDERFLOW_SMTP_URL", "smtp://127.0.0.1:2525"),
        ]
    }

    struct Vars(Vec<(&'static str, &'static str)>);

    impl Source for Vars {
        fn get(&self, name: &str) -> Option<String> {
            self.0
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn defaults_and_the_schema_follow_the_service() {
        let s = MailerSettings::from_source(&Vars(base())).unwrap();
        assert_eq!(s.database.schema, "notifications");
        assert_eq!((s.prefetch, s.concurrency, s.retry.attempts), (64, 32, 5));
        assert_eq!(s.database.max_connections, 36);
    }

    #[test]
    fn the_pool_follows_the_concurrency_unless_it_is_set() {
        let mut vars = base();
        vars.push(("ORDERFLOW_MAILER_CONCURRENCY", "4"));
        let s = MailerSettings::from_source(&Vars(vars.clone())).unwrap();
        assert_eq!((s.concurrency, s.database.max_connections), (4, 8));
        vars.push(("ORDERFLOW_DATABASE_MAX_CONNECTIONS", "3"));
        let s = MailerSettings::from_source(&Vars(vars)).unwrap();
        assert_eq!((s.concurrency, s.database.max_connections), (4, 3));
    }

    #[test]
    fn smtp_url_must_be_plain_smtp_and_is_named_when_wrong() {
        let mut vars = base();
        vars.retain(|(k, _)| *k != "ORDERFLOW_SMTP_URL");
        assert_eq!(
            MailerSettings::from_source(&Vars(vars.clone())).unwrap_err(),
            ConfigError::Missing("ORDERFLOW_SMTP_URL")
        );
        vars.push(("ORDERFLOW_SMTP_URL", "smtps://mail.example.com"));
        let err = MailerSettings::from_source(&Vars(vars)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ORDERFLOW_SMTP_URL is malformed"),
            "{err}"
        );
    }

    #[test]
    fn smtp_endpoints_are_host_and_port() {
        let at = |host: &str, port| SmtpEndpoint {
            host: host.into(),
            port,
        };
        assert_eq!(
            SmtpEndpoint::parse("smtp://127.0.0.1:2525"),
            Ok(at("127.0.0.1", 2525))
        );
        assert_eq!(
            SmtpEndpoint::parse("smtp://mail.example.com"),
            Ok(at("mail.example.com", 25))
        );
        assert_eq!(
            SmtpEndpoint::parse("smtp://[::1]:2525"),
            Ok(at("::1", 2525))
        );
        assert!(SmtpEndpoint::parse("smtp://u:p@mail.example.com").is_err());
        assert!(SmtpEndpoint::parse("smtp://mail.example.com:smtp").is_err());
    }

    #[test]
    fn zero_concurrency_is_refused() {
        let mut vars = base();
        vars.push(("ORDERFLOW_MAILER_CONCURRENCY", "0"));
        let err = MailerSettings::from_source(&Vars(vars)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ORDERFLOW_MAILER_CONCURRENCY is malformed"),
            "{err}"
        );
    }

    #[test]
    fn the_envelope_comes_from_the_headers_and_bad_addresses_are_named() {
        let mut email = Email {
            message_id: "<m@orderflow>".into(),
            order_id: "o".into(),
            kind: email::Kind::Customer,
            envelope_from: "orders@shop.example".into(),
            envelope_to: vec!["ana@example.com".into()],
            raw: b"x".to_vec(),
        };
        let e = envelope(&email).unwrap();
        assert_eq!(e.to().len(), 1);
        email.envelope_to = vec!["nope".into()];
        assert!(envelope(&email).unwrap_err().contains("\"nope\""));
    }

    #[test]
    fn retries_are_bounded() {
        let policy = RetryPolicy {
            attempts: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        assert_eq!(policy.delays().count(), 2);
    }
}
