//! Checkout's `/metrics` and `/readyz`: the outbox backlog equals the pending rows while Kafka
//! is unreachable (and is back to zero once the relay has published), and every answer to
//! `POST /v1/orders` is counted by outcome and status.

use orderflow_core::config::KafkaConfig;
use orderflow_testkit::metric;
use serde_json::{json, Value};

use crate::common::{order_request, spawn_app, spawn_app_with, TestApp};

async fn scrape(app: &TestApp) -> String {
    reqwest::get(format!("http://{}/metrics", app.checkout.metrics_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}/readyz", app.checkout.metrics_addr()))
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn pending(app: &TestApp) -> i64 {
    app.count("outbox WHERE published_at IS NULL").await
}

fn answers(text: &str, outcome: &str, status: &str) -> Option<f64> {
    metric(
        text,
        "orderflow_checkout_orders_total",
        &[("outcome", outcome), ("status", status)],
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backlog_is_the_pending_outbox_rows_while_kafka_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(
        KafkaConfig::plaintext(format!("127.0.0.1:{closed}")),
        "orders.unreachable".into(),
    )
    .await;
    for id in ["m-1", "m-2", "m-3"] {
        assert_eq!(app.place_paid(&order_request(id)).await.status(), 201);
    }
    assert_eq!(app.place_paid(&order_request("m-1")).await.status(), 200);
    assert_eq!(app.post_order(&json!({})).await.status(), 422);

    let text = scrape(&app).await;
    assert_eq!(pending(&app).await, 3);
    assert_eq!(
        metric(&text, "orderflow_outbox_backlog", &[]),
        Some(3.0),
        "{text}"
    );
    let age = metric(&text, "orderflow_outbox_oldest_age_seconds", &[]).unwrap();
    assert!(age > 0.0 && age < 60.0, "{text}");
    assert_eq!(answers(&text, "accepted", "201"), Some(3.0), "{text}");
    assert_eq!(answers(&text, "repeated", "200"), Some(1.0), "{text}");
    assert_eq!(answers(&text, "invalid", "422"), Some(1.0), "{text}");

    let (status, report) = readyz(&app).await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["failed"], json!(["kafka"]), "{report}");
    app.checkout.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backlog_is_empty_once_the_relay_has_published() {
    let app = spawn_app().await;
    for id in ["p-1", "p-2"] {
        assert_eq!(app.place_paid(&order_request(id)).await.status(), 201);
    }
    assert!(app.wait_published(2).await);

    let text = scrape(&app).await;
    assert_eq!(
        metric(&text, "orderflow_outbox_backlog", &[]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "orderflow_outbox_oldest_age_seconds", &[]),
        Some(0.0),
        "{text}"
    );
    let (status, report) = readyz(&app).await;
    assert_eq!(status, 200, "{report}");
    app.checkout.stop().await;
}
