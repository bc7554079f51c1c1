//! Checkout keeps accepting orders while Kafka is down and publishes each exactly once when it
//! returns. The test runs a broker of its own (scripts/kafka-node.sh) so it can kill it without
//! disturbing the other tests.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{order_request, spawn_app_with};
use orderflow_core::config::KafkaConfig;
use orderflow_core::{Event, OrderPlaced};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

struct Broker {
    dir: PathBuf,
    port: u16,
    controller_port: u16,
    process: Option<Child>,
}

impl Broker {
    fn start(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/kafka-node.sh");
        let child = Command::new("bash")
            .arg(script)
            .arg(&self.dir)
            .arg(self.port.to_string())
            .arg(self.controller_port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start scripts/kafka-node.sh");
        self.process = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn config(&self) -> KafkaConfig {
        KafkaConfig::plaintext(format!("127.0.0.1:{}", self.port))
    }

    async fn wait_ready(&self) {
        let kafka = self.config();
        let ready = orderflow_testkit::eventually(Duration::from_secs(60), || {
            let kafka = kafka.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let consumer: Result<BaseConsumer, _> =
                        orderflow_core::kafka::client_config(&kafka).create();
                    consumer.is_ok_and(|c| {
                        c.fetch_metadata(None, Duration::from_secs(1))
                            .is_ok_and(|m| !m.brokers().is_empty())
                    })
                })
                .await
                .unwrap()
            }
        })
        .await;
        assert!(
            ready,
            "broker on port {} did not come up; see {}/kafka.log",
            self.port,
            self.dir.display()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_all(kafka: &KafkaConfig, topic: &str, partitions: i32, want: usize) -> Vec<OrderPlaced> {
    let consumer: BaseConsumer = orderflow_core::kafka::client_config(kafka)
        .set("group.id", orderflow_testkit::unique("reader"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < want && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            out.push(OrderPlaced::decode(m.unwrap().payload().unwrap()).unwrap());
        }
    }
    // Keep reading a little: a duplicate would arrive right behind.
    while let Some(m) = consumer.poll(Duration::from_secs(2)) {
        out.push(OrderPlaced::decode(m.unwrap().payload().unwrap()).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn orders_accepted_while_kafka_is_down_are_published_once_when_it_returns() {
    let mut broker = Broker {
        dir: std::env::temp_dir().join(orderflow_testkit::unique("orderflow-kafka")),
        port: orderflow_testkit::free_port(),
        controller_port: orderflow_testkit::free_port(),
        process: None,
    };
    broker.start();
    broker.wait_ready().await;
    let topic = "orders.placed".to_string();
    orderflow_testkit::create_topic_on(&broker.config(), &topic, 3).await;
    let app = spawn_app_with(broker.config(), topic.clone()).await;

    assert_eq!(
        app.place_paid(&order_request("before-outage"))
            .await
            .status(),
        201
    );
    assert!(app.wait_published(1).await);

    broker.kill();
    let mut ids = vec!["before-outage".to_string()];
    for i in 0..10 {
        let id = format!("during-outage-{i}");
        assert_eq!(
            app.place_paid(&order_request(&id)).await.status(),
            201,
            "accepted with Kafka down"
        );
        ids.push(id);
    }
    // Long enough for the relay's sends to time out at least once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        pending, 10,
        "nothing is marked published while Kafka is down"
    );

    broker.start();
    broker.wait_ready().await;
    assert!(
        app.wait_published(11).await,
        "every order is published after Kafka returns"
    );

    let kafka = broker.config();
    let events = tokio::task::spawn_blocking(move || read_all(&kafka, &topic, 3, 11))
        .await
        .unwrap();
    let published: Vec<String> = events.iter().map(|e| e.order_id.clone()).collect();
    assert_eq!(
        published.len(),
        11,
        "each order exactly once: {published:?}"
    );
    assert_eq!(
        published.into_iter().collect::<BTreeSet<_>>(),
        ids.into_iter().collect::<BTreeSet<_>>()
    );
    app.checkout.stop().await;
}
