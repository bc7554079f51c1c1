//! The RabbitMQ side: the durable e-mail queue and its dead-letter queue, and publishing with
//! publisher confirms, so a message counts as queued only once the broker has taken
//! responsibility for it.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use orderflow_core::config::{self, ConfigError, Source};
use tokio::sync::Mutex;

/// Where e-mails queue: `ORDERFLOW_AMQP_URL`, `ORDERFLOW_EMAIL_QUEUE` (default
/// `orderflow.emails`; its dead-letter queue is `<queue>.dlq`) and
/// `ORDERFLOW_AMQP_CONFIRM_TIMEOUT_MS` (default 10000), how long a publish waits for the
/// broker's confirm.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    pub url: String,
    pub queue: String,
    pub dead_letter_queue: String,
    pub confirm_timeout: Duration,
}

impl AmqpSettings {
    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let queue = config::optional::<String>(src, "ORDERFLOW_EMAIL_QUEUE")?
            .unwrap_or_else(|| "orderflow.emails".to_string());
        // AMQP short strings: the dead-letter name adds four bytes.
        if queue.len() > 250 {
            return Err(ConfigError::Malformed {
                name: "ORDERFLOW_EMAIL_QUEUE",
                value: queue,
                reason: "a queue name has at most 250 bytes".into(),
            });
        }
        Ok(Self {
            url: config::url(src, config::AMQP_URL, &["amqp"])?,
            dead_letter_queue: format!("{queue}.dlq"),
            queue,
            confirm_timeout: config::millis(
                src,
                "ORDERFLOW_AMQP_CONFIRM_TIMEOUT_MS",
                Duration::from_secs(10),
            )?,
        })
    }
}

/// Connects to the broker, naming the connection after the service for the operator's view.
pub async fn connect(url: &str, service: &str) -> Result<Connection, lapin::Error> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name(LongString::from(service)),
    )
    .await
}

/// Declares the e-mail queue and its dead-letter queue, both durable. Messages the broker
/// itself dead-letters (a reject without requeue) are routed to the dead-letter queue as well.
/// The consumer and the mailer both declare them, with the same arguments, so either can
/// start first.
pub async fn declare(channel: &Channel, settings: &AmqpSettings) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(
            settings.dead_letter_queue.as_str().into(),
            durable,
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(settings.dead_letter_queue.as_str().into()),
    );
    channel
        .queue_declare(settings.queue.as_str().into(), durable, arguments)
        .await?;
    Ok(())
}

/// Why a publish is not known to be safe with the broker.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the broker could not route the message to {queue}: {reason}")]
    Unroutable { queue: String, reason: String },
    #[error("no publisher confirm within {0:?}")]
    ConfirmTimeout(Duration),
}

/// Publishes `messages` (body, properties) to `queue` through the default exchange on a
/// channel in confirm mode, and returns once the broker confirmed every one of them. Messages
/// are mandatory, so a missing queue is an error rather than a silent drop.
pub async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    messages: impl IntoIterator<Item = (&[u8], BasicProperties)>,
    confirm_timeout: Duration,
) -> Result<(), PublishError> {
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..BasicPublishOptions::default()
    };
    let mut pending = Vec::new();
    for (body, properties) in messages {
        pending.push(
            channel
                .basic_publish("".into(), queue.into(), mandatory, body, properties)
                .await?,
        );
    }
    let confirms = async {
        for confirm in pending {
            match confirm.await? {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(returned)) => {
                    return Err(PublishError::Unroutable {
                        queue: queue.to_string(),
                        reason: returned.reply_text.to_string(),
                    })
                }
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(PublishError::Nacked)
                }
            }
        }
        Ok(())
    };
    tokio::time::timeout(confirm_timeout, confirms)
        .await
        .map_err(|_| PublishError::ConfirmTimeout(confirm_timeout))?
}

/// A confirm-mode channel to the e-mail queue that reconnects on the next publish after the
/// broker or the connection went away.
pub struct Publisher {
    settings: AmqpSettings,
    service: String,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl Publisher {
    /// Connects and declares the queues now, so a wrong URL or missing permissions stop the
    /// service at start-up rather than at the first order.
    pub async fn connect(settings: AmqpSettings, service: &str) -> Result<Self, lapin::Error> {
        let publisher = Self {
            settings,
            service: service.to_string(),
            link: Mutex::new(None),
        };
        publisher.channel().await?;
        Ok(publisher)
    }

    async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut link = self.link.lock().await;
        if let Some((connection, channel)) = link.as_ref() {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            tracing::warn!("amqp connection lost; reconnecting");
        }
        let connection = connect(&self.settings.url, &self.service).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare(&channel, &self.settings).await?;
        *link = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// The e-mail queue's name.
    pub fn queue(&self) -> &str {
        &self.settings.queue
    }

    /// Publishes `messages` to the e-mail queue and waits for the broker's confirms.
    pub async fn publish(
        &self,
        messages: impl IntoIterator<Item = (&[u8], BasicProperties)>,
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        publish_confirmed(
            &channel,
            &self.settings.queue,
            messages,
            self.settings.confirm_timeout,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_and_its_dead_letters_are_named_from_one_setting() {
        let url = (config::AMQP_URL, "amqp://guest:guest@127.0.0.1:5672/%2f");
        let s = AmqpSettings::from_source(&[url]).unwrap();
        assert_eq!(
            (s.queue.as_str(), s.dead_letter_queue.as_str()),
            ("orderflow.emails", "orderflow.emails.dlq")
        );
        let s = AmqpSettings::from_source(&[url, ("ORDERFLOW_EMAIL_QUEUE", "t.q")]).unwrap();
        assert_eq!(s.dead_letter_queue, "t.q.dlq");
        assert_eq!(
            AmqpSettings::from_source(&[("X", "y")]).unwrap_err(),
            ConfigError::Missing(config::AMQP_URL)
        );
    }
}
