//! `order-tail`: logs one line per order on `orders.placed` (consumer group `order-tail`). It has
//! no side effects, so it needs no idempotency store; it shows the runtime in its smallest form.
//! Like every service it serves `/metrics`, `/healthz` and `/readyz` (ready when Kafka answers)
//! on `ORDERFLOW_METRICS_LISTEN` (127.0.0.1:9108).

use orderflow_core::config::{Env, KafkaConfig};
use orderflow_core::observe::{self, health::KafkaCheck, Observer};
use orderflow_core::runtime::{self, ConsumerSettings};
use orderflow_core::{topics, Delivery, Handler, HandlerError, OrderPlaced};

#[global_allocator]
static ALLOCATOR: orderflow_core::Allocator = orderflow_core::Allocator;

struct Tail;

impl Handler for Tail {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        let units: i32 = order.lines.iter().map(|l| l.quantity).sum();
        tracing::info!(
            order_id = %order.order_id,
            partition = delivery.partition,
            offset = delivery.offset,
            lines = order.lines.len(),
            units,
            total = %format!("{} {}", order.totals.total_minor, order.currency),
            customer_locale = %order.customer.locale,
            "order placed"
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = orderflow_core::telemetry::init("order-tail")?;
    let kafka = KafkaConfig::from_env()?;
    let settings = ConsumerSettings::from_source(&Env, "order-tail", topics::ORDERS_PLACED)?;
    let _observer = Observer::builder()
        .ready_when(KafkaCheck::new(&kafka, &settings.topic)?)
        .build()
        .serve(observe::listen_address(&Env, 9108)?)
        .await?;
    runtime::run(&kafka, settings, Tail, orderflow_core::shutdown::signal()).await?;
    Ok(())
}
