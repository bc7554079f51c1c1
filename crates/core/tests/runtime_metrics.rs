//! The runtime's metrics after a batch that exercises every outcome, read from the process's
//! registry as `/metrics` renders it: events processed, in-process retries, an event parked on
//! the retry topic, and dead letters by their bounded reason (poison, permanent,
//! retries_exhausted).

use std::time::Duration;

use orderflow_core::observe::metrics;
use orderflow_core::{Delivery, Handler, HandlerError, OrderPlaced};
use orderflow_testkit::{self as kit, metric, sample_order_placed, ConsumerFixture};

/// `ok-*` succeed, `perm` fails permanently, `flaky` fails retryably every time.
struct ByKey;

impl Handler for ByKey {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, _: &Delivery) -> Result<(), HandlerError> {
        match order.order_id.as_str() {
            "perm" => Err(HandlerError::permanent("refused")),
            "flaky" => Err(HandlerError::retryable("supplier timed out")),
            _ => Ok(()),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_outcome_is_counted_with_its_group_and_reason() {
    const OK: usize = 4;
    let s = ConsumerFixture::new("runtime-metrics", 1).await;
    let mut settings = s.consumer_settings();
    // Three attempts per delivery (two retries each), and one round on the retry topic.
    settings.retry_max_attempts = 3;
    settings.retry_rounds = 1;
    let mut messages: Vec<(String, Vec<u8>)> = (0..OK)
        .map(|i| {
            let id = format!("ok-{i}");
            (id.clone(), sample_order_placed(&id).encode().unwrap())
        })
        .collect();
    for id in ["perm", "flaky"] {
        messages.push((id.to_string(), sample_order_placed(id).encode().unwrap()));
    }
    messages.push(("poison".to_string(), vec![0xC3, 0x01, 0, 0]));
    kit::produce(&s.topic, &messages).await;

    let (stop, consumer) = kit::spawn_runtime(settings, ByKey);
    let dead = kit::read_topic(&s.dlq, 3, Duration::from_secs(60)).await;
    assert_eq!(dead.len(), 3, "perm, flaky and poison are dead-lettered");
    // The counter follows the dead letter's publication.
    let group = [("group", s.group.as_str())];
    let reason = |text: &str, reason: &str| {
        metric(
            text,
            "orderflow_events_dead_lettered_total",
            &[("group", &s.group), ("reason", reason)],
        )
    };
    let mut text = String::new();
    for _ in 0..50 {
        text = metrics::render(&[]).await;
        if reason(&text, "retries_exhausted").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    consumer.await.unwrap();

    assert_eq!(
        metric(
            &text,
            "orderflow_events_processed_total",
            &[("group", &s.group), ("topic", &s.topic)]
        ),
        Some(OK as f64),
        "{text}"
    );
    assert_eq!(reason(&text, "poison"), Some(1.0), "{text}");
    assert_eq!(reason(&text, "permanent"), Some(1.0), "{text}");
    assert_eq!(reason(&text, "retries_exhausted"), Some(1.0), "{text}");
    assert_eq!(
        metric(&text, "orderflow_events_parked_total", &group),
        Some(1.0),
        "flaky's first delivery is parked for its one round: {text}"
    );
    assert_eq!(
        metric(&text, "orderflow_events_retried_total", &group),
        Some(4.0),
        "two retries in each of flaky's two deliveries: {text}"
    );
    assert_eq!(
        metric(&text, "orderflow_handler_duration_seconds_count", &group),
        Some((OK + 1 + 6) as f64),
        "every handler call, none for the poison message: {text}"
    );
    assert_eq!(
        metric(&text, "orderflow_end_to_end_seconds_count", &group),
        Some(OK as f64),
        "{text}"
    );
}
