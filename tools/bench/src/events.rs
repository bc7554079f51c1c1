//! Order-placed events as checkout writes them, made from the load generator's catalogue, and a
//! topic pre-filled with them as fast as the broker takes them, for the consumers to drain.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::Context;
use orderflow_core::config::KafkaConfig;
use orderflow_core::event::OrderPlaced;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// The checkout request and the event it becomes, for the `n`th order of `run`.
pub fn order_placed(run: &str, n: u64) -> (checkout::order::OrderRequest, OrderPlaced) {
    let order = loadgen::catalogue::order(run, n);
    let request =
        checkout::order::parse(&order.body).expect("the catalogue's orders parse in checkout");
    let event = request.to_event(
        uuid::Uuid::now_v7().to_string(),
        chrono::Utc::now().timestamp_millis(),
    );
    (request, event)
}

/// Writes `count` events of `run` to `topic`, keyed by order id like the relay; returns how long
/// it took.
pub async fn prefill(
    kafka: &KafkaConfig,
    topic: &str,
    run: &str,
    count: u64,
) -> anyhow::Result<Duration> {
    let producer: FutureProducer = orderflow_core::kafka::client_config(kafka)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "500000")
        .set("compression.type", "zstd")
        .create()
        .context("the pre-fill producer")?;
    let started = std::time::Instant::now();
    let mut pending = VecDeque::new();
    for n in 0..count {
        let (_, event) = order_placed(run, n);
        let payload = event.encode().context("encoding an event")?;
        let delivery = producer
            .send_result(
                FutureRecord::to(topic)
                    .key(&event.order_id)
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)
            .context("queueing an event")?;
        pending.push_back(delivery);
        // Bounded so a million events do not all wait in memory at once.
        if pending.len() >= 50_000 {
            acked(pending.pop_front()).await?;
        }
    }
    while let Some(delivery) = pending.pop_front() {
        acked(Some(delivery)).await?;
    }
    Ok(started.elapsed())
}

async fn acked(delivery: Option<rdkafka::producer::DeliveryFuture>) -> anyhow::Result<()> {
    if let Some(delivery) = delivery {
        delivery
            .await
            .context("the pre-fill producer went away")?
            .map_err(|(e, _)| e)
            .context("a pre-fill event was not acknowledged")?;
    }
    Ok(())
}
