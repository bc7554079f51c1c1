//! Test harness for integration tests against the real local stack (`scripts/stack.sh up`): every
//! test gets its own topics, consumer group and Postgres schema, so tests run in parallel and share
//! nothing but the servers.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use orderflow_core::config::KafkaConfig;
use orderflow_core::db::DatabaseConfig;
use orderflow_core::event::{
    tax_of, Address, Customer, OrderLine, OrderPlaced, Payment, Product, SalesAgent, Shipping,
    Totals,
};
use orderflow_core::kafka::{self, TopicSpec};
use orderflow_core::runtime::{self, ConsumerSettings, Handler};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;

/// The local stack's broker, or `ORDERFLOW_KAFKA_BROKERS`.
pub fn kafka() -> KafkaConfig {
    KafkaConfig::plaintext(
        std::env::var("ORDERFLOW_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    )
}

/// The local stack's database, or `ORDERFLOW_DATABASE_URL`.
pub fn database_url() -> String {
    std::env::var("ORDERFLOW_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://orderflow:orderflow@127.0.0.1:5432/orderflow".into())
}

/// Installs logging and trace-context propagation once per test process, as every binary does.
pub fn init_telemetry() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let guard = orderflow_core::telemetry::init("orderflow-tests").expect("telemetry");
        // Kept for the whole test process: dropping it would shut the tracer down.
        std::mem::forget(guard);
    });
}

/// A TCP port nothing listens on right now, below Linux's ephemeral range (32768 and up). A port
/// the kernel hands out for `:0` is ephemeral: once freed here, any outgoing connection (the
/// services make hundreds) can take it as its local port before the service binds it, and the
/// service then exits with "address already in use". Ports are tried in turn from a start of the
/// process's own, so tests running side by side are not handed the same one.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static START: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = *START.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        (std::process::id() ^ nanos) % COUNT
    });
    (0..COUNT)
        .map(|_| FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % COUNT)
        .find(|port| TcpListener::bind(("127.0.0.1", *port as u16)).is_ok())
        .expect("a free loopback port between 20000 and 32000") as u16
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Creates a fresh topic with `partitions` partitions and returns its name.
pub async fn topic(prefix: &str, partitions: i32) -> String {
    let name = unique(&format!("test.{prefix}"));
    create_topic(&name, partitions).await;
    name
}

/// Creates a topic (and nothing else) on the test broker.
pub async fn create_topic(name: &str, partitions: i32) {
    create_topic_on(&kafka(), name, partitions).await;
}

pub async fn create_topic_on(kafka_config: &KafkaConfig, name: &str, partitions: i32) {
    kafka::ensure_topics(
        kafka_config,
        &[TopicSpec {
            name: name.to_string(),
            partitions,
            retention_ms: 3_600_000,
        }],
    )
    .await
    .unwrap_or_else(|e| {
        panic!("creating topic {name}: {e} (is the stack up? scripts/stack.sh up)")
    });
}

/// The stack's schema registry (Apicurio Registry's Confluent-compatible API), or
/// `ORDERFLOW_TEST_SCHEMA_REGISTRY_URL`.
pub fn schema_registry_url() -> String {
    std::env::var("ORDERFLOW_TEST_SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// A pool on a schema of its own, created for this test.
pub async fn database() -> PgPool {
    database_with_schema().await.0
}

/// A pool on a schema of its own, and the schema's name, for a test that also starts a service
/// process on the same schema (`ORDERFLOW_DATABASE_SCHEMA`).
pub async fn database_with_schema() -> (PgPool, String) {
    let schema = unique("test").replace('-', "_");
    let config = DatabaseConfig {
        url: database_url(),
        schema: schema.clone(),
        max_connections: 8,
    };
    let pool = config.connect().await.unwrap_or_else(|e| {
        panic!(
            "connecting to {}: {e} (is the stack up? scripts/stack.sh up)",
            config.url
        )
    });
    (pool, schema)
}

/// A service binary running as a child process, killed (SIGKILL) when dropped. Its output goes
/// to `target/test-logs/<name>-<pid>.log` so a failing test can be diagnosed.
pub struct Service {
    child: std::process::Child,
    pub log: std::path::PathBuf,
}

impl Service {
    /// Starts `binary` (for example `env!("CARGO_BIN_EXE_accounting")`) with `env` added to
    /// this process's environment. Its metrics and health server takes a free port unless `env`
    /// says otherwise, as tests run side by side.
    pub fn spawn(binary: &str, env: &[(&str, String)]) -> Self {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-logs");
        std::fs::create_dir_all(&dir).expect("test log folder");
        let name = std::path::Path::new(binary)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log = dir.join(format!("{}.log", unique(&name)));
        let out = std::fs::File::create(&log).expect("test log file");
        let err = out.try_clone().expect("test log file");
        let child = std::process::Command::new(binary)
            .env(orderflow_core::observe::METRICS_LISTEN, "127.0.0.1:0")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Self { child, log }
    }

    /// Kills the process at once, as a crash would: no drain, no commit.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads every message of `topic` from the beginning until `count` arrived or `timeout` passed.
pub async fn read_topic(topic: &str, count: usize, timeout: Duration) -> Vec<OwnedMessage> {
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka::client_config(&kafka())
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .expect("topic metadata");
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)
                .expect("partition offset");
        }
        consumer.assign(&tpl).expect("assign");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                out.push(message.expect("read message").detach());
            }
        }
        out
    })
    .await
    .expect("reader thread")
}

/// Writes messages (key, payload) to `topic` and waits until the broker has them all.
pub async fn produce(topic: &str, messages: &[(String, Vec<u8>)]) {
    let producer = kafka::idempotent_producer(&kafka(), Duration::from_secs(30)).expect("producer");
    for (key, payload) in messages {
        producer
            .send(
                FutureRecord::to(topic).key(key).payload(payload),
                Duration::from_secs(0),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

/// Writes one message with headers (a retry, a redrive or a replay, as `orderflowctl` and the
/// runtime write them) and waits until the broker has it.
pub async fn produce_with_headers(
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: &[(&str, &str)],
) {
    let producer = kafka::idempotent_producer(&kafka(), Duration::from_secs(30)).expect("producer");
    let mut owned = OwnedHeaders::new();
    for &(name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    producer
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(owned),
            Duration::from_secs(0),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("produce");
}

/// The offset `group` committed on `topic`/`partition`, if any.
pub async fn committed_offset(group: &str, topic: &str, partition: i32) -> Option<i64> {
    let (group, topic) = (group.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka::client_config(&kafka())
            .set("group.id", &group)
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, partition);
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        match committed.find_partition(&topic, partition)?.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        }
    })
    .await
    .expect("committed offsets thread")
}

/// Value of a header of a message, as UTF-8.
pub fn header(message: &OwnedMessage, name: &str) -> Option<String> {
    kafka::header_pairs(message)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// Polls `check` until it returns true or `timeout` passes; returns the last answer.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A complete, consistent `OrderPlaced` event: two lines from two suppliers, a sales agent.
pub fn sample_order_placed(order_id: &str) -> OrderPlaced {
    let lines = vec![
        sample_line("l1", "TSHIRT-ORG-M-BLK", 2, 1999, "sup-printful"),
        sample_line("l2", "MUG-11OZ-WHT", 1, 1299, "sup-gelato"),
    ];
    let subtotal: i64 = lines
        .iter()
        .map(|l| l.unit_price_minor * i64::from(l.quantity))
        .sum();
    let shipping = Shipping {
        method: "standard".into(),
        price_minor: 495,
        tax_rate_bp: 2100,
        tax_minor: tax_of(495, 2100),
    };
    let tax = lines.iter().map(|l| l.tax_minor).sum::<i64>() + shipping.tax_minor;
    let total = subtotal + shipping.price_minor + tax;
    OrderPlaced {
        event_id: uuid::Uuid::new_v4().to_string(),
        order_id: order_id.to_string(),
        placed_at: 1_795_000_000_000,
        channel: "web".into(),
        currency: "EUR".into(),
        customer: Customer {
            id: "cus-1".into(),
            email: "ana@example.com".into(),
            name: "Ana García".into(),
            locale: "es-ES".into(),
        },
        sales_agent: Some(SalesAgent {
            id: "agent-7".into(),
            email: "agent7@example.com".into(),
            name: "Sam Agent".into(),
        }),
        shipping_address: Address {
            name: "Ana García".into(),
            line1: "Calle Mayor 1".into(),
            line2: None,
            city: "Madrid".into(),
            region: Some("Madrid".into()),
            postal_code: "28013".into(),
            country: "ES".into(),
        },
        lines,
        shipping,
        totals: Totals {
            subtotal_minor: subtotal,
            shipping_minor: 495,
            tax_minor: tax,
            total_minor: total,
        },
        payment: Payment {
            provider: "paysim".into(),
            reference: format!("pay-{order_id}"),
            amount_minor: total,
        },
        gift_message: Some("Happy birthday!".into()),
    }
}

fn sample_line(id: &str, sku: &str, quantity: i32, unit_price: i64, supplier: &str) -> OrderLine {
    OrderLine {
        line_id: id.into(),
        sku: sku.into(),
        quantity,
        unit_price_minor: unit_price,
        tax_rate_bp: 2100,
        tax_minor: tax_of(unit_price * i64::from(quantity), 2100),
        supplier_id: supplier.into(),
        unit_cost_minor: unit_price / 2,
        product: Product {
            name: format!("Product {sku}"),
            category: if sku.starts_with("MUG") {
                "mugs"
            } else {
                "apparel"
            }
            .into(),
            design_id: "dsg-42".into(),
            print_technique: "dtg".into(),
            size: "M".into(),
            colour: "black".into(),
            material: "organic cotton".into(),
            attributes: BTreeMap::from([("fit".to_string(), "regular".to_string())]),
        },
    }
}

/// What one consumer test owns: its source topic, consumer group, dead-letter and retry topics
/// and database schema, so consumer tests run in parallel without seeing each other.
pub struct ConsumerFixture {
    pub topic: String,
    pub group: String,
    pub dlq: String,
    pub retry: String,
    pub pool: PgPool,
    pub schema: String,
}

/// The fixture's first retry-topic round, in milliseconds: short, so an event parked on the
/// retry topic comes back within a test's patience.
const RETRY_TOPIC_DELAY_MS: u64 = 200;

impl ConsumerFixture {
    /// Creates the topic (with `partitions`), its dead-letter and retry topics, and a fresh
    /// schema.
    pub async fn new(service: &str, partitions: i32) -> Self {
        init_telemetry();
        let topic = topic(service, partitions).await;
        let group = unique(service);
        let dlq = orderflow_core::topics::dead_letter_topic(&topic, &group);
        create_topic(&dlq, 1).await;
        let retry = orderflow_core::topics::retry_topic(&topic, &group);
        create_topic(&retry, partitions).await;
        let (pool, schema) = database_with_schema().await;
        Self {
            topic,
            group,
            dlq,
            retry,
            pool,
            schema,
        }
    }

    /// Runtime settings on this fixture with quick retries, retry-topic rounds and commits, so
    /// a failure or a dead letter shows within a test's patience.
    pub fn consumer_settings(&self) -> ConsumerSettings {
        self.quick(ConsumerSettings::new(&self.group, &self.topic))
    }

    /// `consumer_settings` for a handler that takes runs of events (`ConsumerSettings::batched`).
    pub fn batched_consumer_settings(&self) -> ConsumerSettings {
        self.quick(ConsumerSettings::batched(&self.group, &self.topic))
    }

    fn quick(&self, mut consumer: ConsumerSettings) -> ConsumerSettings {
        consumer.retry_min_delay = Duration::from_millis(10);
        consumer.retry_max_delay = Duration::from_millis(50);
        consumer.retry_max_attempts = 3;
        consumer.retry_topic_delay = Duration::from_millis(RETRY_TOPIC_DELAY_MS);
        consumer.commit_interval = Duration::from_millis(100);
        consumer.session_timeout = Duration::from_secs(6);
        consumer
    }

    /// The fixture's schema on the test database.
    pub fn database(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: database_url(),
            schema: self.schema.clone(),
            max_connections: 8,
        }
    }

    /// The environment that points a service's real binary at this fixture (brokers, database,
    /// schema, group, topic, quick retries and rounds); a test adds the service's own variables.
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (orderflow_core::config::KAFKA_BROKERS, kafka().brokers),
            (orderflow_core::config::DATABASE_URL, database_url()),
            (orderflow_core::config::DATABASE_SCHEMA, self.schema.clone()),
            ("ORDERFLOW_CONSUMER_GROUP", self.group.clone()),
            ("ORDERFLOW_CONSUMER_TOPIC", self.topic.clone()),
            ("ORDERFLOW_CONSUMER_RETRY_MIN_DELAY_MS", "10".into()),
            ("ORDERFLOW_CONSUMER_RETRY_MAX_DELAY_MS", "500".into()),
            (
                "ORDERFLOW_CONSUMER_RETRY_TOPIC_DELAY_MS",
                RETRY_TOPIC_DELAY_MS.to_string(),
            ),
        ]
    }

    /// Publishes `orders` to the fixture's topic, keyed by order id.
    pub async fn produce(&self, orders: &[OrderPlaced]) {
        let messages: Vec<(String, Vec<u8>)> = orders
            .iter()
            .map(|o| (o.order_id.clone(), o.encode().expect("encode order")))
            .collect();
        produce(&self.topic, &messages).await;
    }
}

/// The value of the sample `name` whose labels include every pair of `labels`, in Prometheus
/// text as `/metrics` serves it (`name{k="v",...} value`); `None` if there is none.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_set, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| {
                label_set
                    .split(',')
                    .any(|pair| pair == format!("{k}=\"{v}\""))
            })
            .then(|| value.trim().parse().ok())?
    })
}

/// The consumer runtime over `handler` on the test stack, in the background until the returned
/// sender is used or dropped; the task panics if the runtime fails.
pub fn spawn_runtime<H: Handler>(
    settings: ConsumerSettings,
    handler: H,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        runtime::run(&kafka(), settings, handler, async {
            let _ = stopped.await;
        })
        .await
        .expect("runtime");
    });
    (stop, task)
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_finds_a_sample_by_name_and_labels() {
        let text = "# TYPE x counter\n\
                    x_total{group=\"a\",topic=\"t\"} 3\n\
                    x_total{group=\"b\",topic=\"t\"} 4\n\
                    x_total_other{group=\"a\"} 9\n\
                    y 1.5\n";
        assert_eq!(super::metric(text, "x_total", &[("group", "b")]), Some(4.0));
        assert_eq!(
            super::metric(text, "x_total", &[("group", "a"), ("topic", "t")]),
            Some(3.0)
        );
        assert_eq!(super::metric(text, "x_total", &[("group", "c")]), None);
        assert_eq!(super::metric(text, "y", &[]), Some(1.5));
        assert_eq!(super::metric(text, "x", &[]), None);
    }
}
