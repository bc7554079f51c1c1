//! Checkout's metrics, a collector of its `/metrics`: the answers to `POST /v1/orders` by outcome,
//! and the outbox backlog (rows not yet published, and the age of the oldest), read from the
//! database on each scrape. The outbox figures are the table's, whichever relay replica leads, so
//! every replica shows the same (a dashboard takes `max`, not `sum`, across replicas).

use std::sync::atomic::AtomicU64;

use futures::future::BoxFuture;
use orderflow_core::observe::metrics::{Collect, CollectError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::store;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    outcome: &'static str,
    status: u16,
}

pub struct CheckoutMetrics {
    pool: PgPool,
    registry: Registry,
    orders: Family<AnswerLabels, Counter>,
    backlog: Gauge,
    oldest_age: Gauge<f64, AtomicU64>,
    /// Keeps two scrapes from interleaving their updates and encodings.
    scrape: tokio::sync::Mutex<()>,
}

impl CheckoutMetrics {
    pub fn new(pool: PgPool) -> Self {
        let mut registry = Registry::default();
        let orders = Family::<AnswerLabels, Counter>::default();
        let backlog = Gauge::default();
        let oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "orderflow_checkout_orders",
            "Answers to POST /v1/orders by outcome (accepted, repeated, invalid, payment_refused, payment_unavailable, conflict, database_unavailable) and HTTP status",
            orders.clone(),
        );
        registry.register(
            "orderflow_outbox_backlog",
            "Outbox rows not yet published to Kafka",
            backlog.clone(),
        );
        registry.register(
            "orderflow_outbox_oldest_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none is pending)",
            oldest_age.clone(),
        );
        Self {
            pool,
            registry,
            orders,
            backlog,
            oldest_age,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts one answer to `POST /v1/orders`.
    pub fn answered(&self, outcome: &'static str, status: u16) {
        self.orders
            .get_or_create(&AnswerLabels { outcome, status })
            .inc();
    }
}

impl Collect for CheckoutMetrics {
    fn collect(&self) -> BoxFuture<'_, Result<String, CollectError>> {
        Box::pin(async move {
            let _scrape = self.scrape.lock().await;
            let (pending, oldest) = store::outbox_backlog(&self.pool).await?;
            self.backlog.set(pending);
            self.oldest_age.set(oldest);
            let mut out = String::new();
            prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
            Ok(out)
        })
    }
}
