//! The service's `/metrics`, `/healthz` and `/readyz`, scraped as Prometheus and a Kubernetes
//! probe would: the runtime's counters and histograms after a batch with one poison message, the
//! consumer lag once the batch is committed, and readiness with the stack up.

use std::time::Duration;

use orderflow_testkit::{self as kit, metric};

use crate::common::{self, at, encoded, order};

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Scrapes `url` until `done` holds for the text or `timeout` passes; returns the last text.
async fn scrape_until(url: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = get(url).await.text().await.unwrap();
        if done(&text) || tokio::time::Instant::now() >= deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_processed_and_dead_lettered_events_and_the_lag() {
    const N: usize = 7;
    let s = common::setup(2).await;
    let placed = at("2026-11-10T12:00:00Z");
    let orders: Vec<_> = (0..N).map(|i| order(&format!("m-{i}"), placed)).collect();
    let mut messages = vec![("poison".to_string(), b"not avro".to_vec())];
    messages.extend(encoded(&orders));
    kit::produce(&s.topic, &messages).await;
    let consumer = common::start(&s).await;
    let base = format!("http://{}", consumer.metrics_addr());
    let group = [("group", s.group.as_str())];

    let metrics_url = format!("{base}/metrics");
    let processed = |text: &str| {
        metric(
            text,
            "orderflow_events_processed_total",
            &[("group", &s.group), ("topic", &s.topic)],
        )
    };
    let poison = |text: &str| {
        metric(
            text,
            "orderflow_events_dead_lettered_total",
            &[("group", &s.group), ("reason", "poison")],
        )
    };
    let text = scrape_until(&metrics_url, Duration::from_secs(60), |text| {
        processed(text) == Some(N as f64) && poison(text) == Some(1.0)
    })
    .await;
    assert_eq!(processed(&text), Some(N as f64), "{text}");
    assert_eq!(poison(&text), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "orderflow_handler_duration_seconds_count", &group),
        Some(N as f64),
        "the poison message never reached the handler: {text}"
    );
    assert_eq!(
        metric(&text, "orderflow_end_to_end_seconds_count", &group),
        Some(N as f64),
        "{text}"
    );
    for reason in ["permanent", "retries_exhausted"] {
        assert_eq!(
            metric(
                &text,
                "orderflow_events_dead_lettered_total",
                &[("group", &s.group), ("reason", reason)]
            ),
            None,
            "{text}"
        );
    }
    assert_eq!(
        metric(&text, "orderflow_events_retried_total", &group),
        None
    );
    assert_eq!(metric(&text, "orderflow_events_parked_total", &group), None);
    assert_eq!(common::entries(&s.pool).await, N as i64);

    // Every message is committed within a second; librdkafka's statistics follow within five.
    let lag = |text: &str, partition: i32| {
        metric(
            text,
            "orderflow_consumer_lag",
            &[
                ("group", &s.group),
                ("topic", &s.topic),
                ("partition", &partition.to_string()),
            ],
        )
    };
    let text = scrape_until(&metrics_url, Duration::from_secs(30), |text| {
        (0..2).all(|p| lag(text, p) == Some(0.0))
    })
    .await;
    for p in 0..2 {
        assert_eq!(lag(&text, p), Some(0.0), "partition {p}: {text}");
    }

    assert_eq!(get(&format!("{base}/healthz")).await.status(), 200);
    let ready = get(&format!("{base}/readyz")).await;
    assert_eq!(ready.status(), 200);
    let report: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(report["ready"], true, "{report}");
    assert_eq!(report["failed"], serde_json::json!([]), "{report}");
    let checks: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["kafka", "database"]);

    consumer.stop().await.unwrap();
}
