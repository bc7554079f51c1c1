//! One test's world: its own topic, dead-letter and retry topics, consumer group, database schema,
//! RabbitMQ queues and SMTP sink, with the consumer and the mailer run in process or as the
//! real binaries.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::{BasicProperties, Channel, Connection};
use notifications::email::{message_id, Kind};
use notifications::mailer::MailerSettings;
use notifications::Settings;
use orderflow_core::config::Source;
use orderflow_core::topics;
use orderflow_core::OrderPlaced;
use orderflow_simulators::smtp::{ReceivedMessage, SmtpSink};
use orderflow_testkit::Service;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(60);

/// Configuration values as the binaries read them from their environment.
struct Vars(Vec<(&'static str, String)>);

impl Source for Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

pub fn amqp_url() -> String {
    std::env::var("ORDERFLOW_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub struct World {
    pub topic: String,
    pub group: String,
    pub dead_letter_topic: String,
    pub pool: PgPool,
    pub schema: String,
    pub queue: String,
    pub sink: SmtpSink,
    /// The sink's message search, which the mailer asks after an interrupted attempt.
    pub lookup_url: String,
    amqp: Connection,
    pub channel: Channel,
}

impl World {
    pub async fn new() -> Self {
        orderflow_testkit::init_telemetry();
        let topic = orderflow_testkit::topic("notifications", 2).await;
        let group = orderflow_testkit::unique("notifications");
        let dead_letter_topic = topics::dead_letter_topic(&topic, &group);
        orderflow_testkit::create_topic(&dead_letter_topic, 1).await;
        orderflow_testkit::create_topic(&topics::retry_topic(&topic, &group), 2).await;
        let (pool, schema) = orderflow_testkit::database_with_schema().await;
        let sink = SmtpSink::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("smtp sink");
        let http = sink
            .serve_http(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("smtp sink HTTP API");
        let amqp = Connection::connect(&amqp_url(), Default::default())
            .await
            .expect("rabbitmq (is the stack up? scripts/stack.sh up)");
        let channel = amqp.create_channel().await.expect("amqp channel");
        Self {
            queue: orderflow_testkit::unique("test.emails"),
            topic,
            group,
            dead_letter_topic,
            pool,
            schema,
            sink,
            lookup_url: format!("http://{http}/messages"),
            amqp,
            channel,
        }
    }

    /// The environment of both binaries, pointing at this test's topic, group, schema, queue
    /// and sink, with short retry delays and retry-topic rounds.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "ORDERFLOW_KAFKA_BROKERS",
                orderflow_testkit::kafka().brokers,
            ),
            ("ORDERFLOW_CONSUMER_TOPIC", self.topic.clone()),
            ("ORDERFLOW_CONSUMER_GROUP", self.group.clone()),
            ("ORDERFLOW_CONSUMER_RETRY_MIN_DELAY_MS", "100".into()),
            ("ORDERFLOW_CONSUMER_RETRY_MAX_DELAY_MS", "500".into()),
            ("ORDERFLOW_CONSUMER_RETRY_TOPIC_DELAY_MS", "200".into()),
            ("ORDERFLOW_DATABASE_URL", orderflow_testkit::database_url()),
            ("ORDERFLOW_DATABASE_SCHEMA", self.schema.clone()),
            ("ORDERFLOW_AMQP_URL", amqp_url()),
            ("ORDERFLOW_EMAIL_QUEUE", self.queue.clone()),
            ("ORDERFLOW_SMTP_URL", self.sink.url()),
            ("ORDERFLOW_MAIL_LOOKUP_URL", self.lookup_url.clone()),
            ("ORDERFLOW_SMTP_TIMEOUT_MS", "10000".into()),
            (
                "ORDERFLOW_MAIL_FROM",
                "Test Shop <orders@shop.example>".into(),
            ),
            ("ORDERFLOW_MAILER_RETRY_MAX_ATTEMPTS", "3".into()),
            ("ORDERFLOW_MAILER_RETRY_MIN_DELAY_MS", "50".into()),
            ("ORDERFLOW_MAILER_RETRY_MAX_DELAY_MS", "100".into()),
            ("ORDERFLOW_METRICS_LISTEN", "127.0.0.1:0".into()),
        ]
    }

    fn env_with(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = self.env();
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push((k, v.to_string()));
        }
        env
    }

    pub fn start_consumer(&self) -> Running {
        let settings = Settings::from_source(&Vars(self.env())).expect("consumer settings");
        Running::spawn(|stop| notifications::run(settings, stop))
    }

    pub fn start_mailer(&self) -> Running {
        let settings = MailerSettings::from_source(&Vars(self.env())).expect("mailer settings");
        Running::spawn(|stop| notifications::mailer::run(settings, stop))
    }

    pub fn spawn_consumer_process(&self, extra: &[(&'static str, &str)]) -> Service {
        Service::spawn(env!("CARGO_BIN_EXE_notifications"), &self.env_with(extra))
    }

    pub fn spawn_mailer_process(&self, extra: &[(&'static str, &str)]) -> Service {
        Service::spawn(env!("CARGO_BIN_EXE_mailer"), &self.env_with(extra))
    }

    pub async fn produce(&self, orders: &[OrderPlaced]) {
        let messages: Vec<(String, Vec<u8>)> = orders
            .iter()
            .map(|o| (o.order_id.clone(), o.encode().expect("encode")))
            .collect();
        orderflow_testkit::produce(&self.topic, &messages).await;
    }

    /// Waits until the sink holds `count` messages; returns them.
    pub async fn wait_for_emails(&self, count: usize) -> Vec<ReceivedMessage> {
        let arrived =
            orderflow_testkit::eventually(WAIT, || async { self.sink.messages().len() >= count })
                .await;
        let messages = self.sink.messages();
        assert!(
            arrived,
            "expected {count} e-mails, the sink has {}",
            messages.len()
        );
        messages
    }

    /// Waits until the queue is empty and the mailer has nothing left to do, then a moment
    /// longer, so an e-mail that should not exist has had every chance to arrive.
    pub async fn settle(&self) {
        let drained = orderflow_testkit::eventually(WAIT, || async {
            self.ready_messages(&self.queue).await == 0
                && self
                    .count("sent_emails WHERE state IN ('sending', 'retrying')")
                    .await
                    == 0
        })
        .await;
        assert!(drained, "the e-mail queue did not drain");
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }

    pub async fn ready_messages(&self, queue: &str) -> u32 {
        self.queue_length(queue).await.unwrap_or(0)
    }

    /// The messages ready on `queue`, or `None` while no service has declared it.
    async fn queue_length(&self, queue: &str) -> Option<u32> {
        // A channel of its own: a passive declare of a missing queue fails, and the broker
        // closes the channel it was asked on.
        let channel = self.amqp.create_channel().await.ok()?;
        let length = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                Default::default(),
            )
            .await
            .map(|q| q.message_count())
            .ok();
        // Already closed by the broker when the queue was missing; nothing to do then.
        let _ = channel.close(200, "counted".into()).await;
        length
    }

    /// Takes every message off `queue`.
    pub async fn drain(&self, queue: &str) -> Vec<BasicGetMessage> {
        let mut out = Vec::new();
        while let Some(m) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            out.push(m);
        }
        out
    }

    /// Publishes straight to the e-mail queue, as a consumer that crashed after its publish
    /// and republished on redelivery would.
    /// Publishes to the e-mail queue once a service has declared it: before that, the broker
    /// would drop the message.
    pub async fn publish_raw(&self, body: &[u8], properties: BasicProperties) {
        let declared = orderflow_testkit::eventually(WAIT, || async {
            self.queue_length(&self.queue).await.is_some()
        })
        .await;
        assert!(
            declared,
            "no service declared the e-mail queue {}",
            self.queue
        );
        self.channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish");
    }

    pub async fn count(&self, table_and_filter: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table_and_filter}"))
            .fetch_one(&self.pool)
            .await
            .unwrap_or(0)
    }

    /// Deletes this test's queues (the topic and schema are per test and left behind).
    pub async fn cleanup(self) {
        for queue in [format!("{}.dlq", self.queue), self.queue.clone()] {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self.amqp.close(200, "test done".into()).await;
    }
}

/// A consumer or mailer running in this process, stopped (gracefully) by `stop` or on drop.
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), notifications::Error>>,
}

impl Running {
    fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
        Fut: std::future::Future<Output = Result<(), notifications::Error>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async move {
            let _ = stopped.await;
        })));
        Self {
            stop: Some(stop),
            task,
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task)
            .await
            .expect("service task")
            .expect("service stopped cleanly");
    }
}

/// How many e-mails carry each Message-ID.
pub fn by_message_id(messages: &[ReceivedMessage]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for m in messages {
        let id = m.message_id.clone().expect("every e-mail has a Message-ID");
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// The Message-IDs the orders should produce: one customer e-mail each, one agent e-mail for
/// each order with an agent.
pub fn expected_ids(orders: &[OrderPlaced]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for o in orders {
        ids.insert(message_id(&o.order_id, Kind::Customer).unwrap(), 1);
        if o.sales_agent.is_some() {
            ids.insert(message_id(&o.order_id, Kind::Agent).unwrap(), 1);
        }
    }
    ids
}

/// `n` sample orders; every other one without a sales agent.
pub fn orders(n: usize) -> Vec<OrderPlaced> {
    (0..n)
        .map(|i| {
            let mut o = orderflow_testkit::sample_order_placed(&orderflow_testkit::unique("ord"));
            if i % 2 == 1 {
                o.sales_agent = None;
            }
            o
        })
        .collect()
}
