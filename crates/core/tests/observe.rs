//! The metrics and health server against real and dead servers: `/readyz` answers 200 while
//! Kafka and the database answer, and 503 naming each one that does not; `/healthz` answers
//! whatever the dependencies do; `/metrics` is OpenMetrics text ending in `# EOF`.

use std::net::SocketAddr;
use std::time::Duration;

use orderflow_core::config::KafkaConfig;
use orderflow_core::observe::health::{DatabaseCheck, KafkaCheck};
use orderflow_core::observe::{self, Observer};
use orderflow_testkit as kit;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;

/// A loopback port nobody listens on: bound, then let go.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn readyz(addr: SocketAddr) -> (u16, Value) {
    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_while_kafka_and_the_database_answer() {
    kit::init_telemetry();
    let topic = kit::topic("observe", 1).await;
    let pool = kit::database().await;
    let server = observe::kafka_and_database(&kit::kafka(), &topic, &pool)
        .unwrap()
        .build()
        .serve(loopback())
        .await
        .unwrap();

    let (status, report) = readyz(server.addr).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ready"], true);
    assert_eq!(report["failed"], serde_json::json!([]));

    let metrics = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap();
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(metrics.text().await.unwrap().ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_names_the_database_when_it_does_not_answer() {
    kit::init_telemetry();
    let topic = kit::topic("observe", 1).await;
    // The pool a service would have if its database went away: connecting is refused.
    let dead_database = PgPoolOptions::new()
        .connect_lazy(&format!(
            "postgres://orderflow:orderflow@127.0.0.1:{}/orderflow",
            closed_port()
        ))
        .unwrap();
    let server = Observer::builder()
        .ready_when(KafkaCheck::new(&kit::kafka(), &topic).unwrap())
        .ready_when(DatabaseCheck(dead_database))
        .build()
        .serve(loopback())
        .await
        .unwrap();

    let (status, report) = readyz(server.addr).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["ready"], false);
    assert_eq!(
        report["failed"],
        serde_json::json!(["database"]),
        "{report}"
    );
    let database = &report["checks"][1];
    assert_eq!(database["name"], "database");
    assert!(!database["error"].as_str().unwrap().is_empty(), "{report}");
    assert_eq!(report["checks"][0]["ok"], true, "{report}");

    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "alive, if not ready");
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_names_kafka_when_no_broker_answers() {
    kit::init_telemetry();
    let pool = kit::database().await;
    let dead_kafka = KafkaConfig::plaintext(format!("127.0.0.1:{}", closed_port()));
    let server = observe::kafka_and_database(&dead_kafka, "orders.placed", &pool)
        .unwrap()
        .build()
        .serve(loopback())
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let (status, report) = readyz(server.addr).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["failed"], serde_json::json!(["kafka"]), "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead dependency is reported within its check's timeout"
    );
}
