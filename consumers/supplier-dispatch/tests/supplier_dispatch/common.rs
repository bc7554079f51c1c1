//! A supplier-dispatch consumer on a test's own topics, group and schema, talking to a supplier
//! simulator of its own; helpers to build orders and to read what came out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use orderflow_core::config;
use orderflow_core::event::{tax_of, OrderPlaced};
use orderflow_core::Event;
use orderflow_simulators::supplier::SupplierSim;
use orderflow_testkit as kit;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use supplier_dispatch::event::OrderDispatched;
use supplier_dispatch::store::Dispatch;
use supplier_dispatch::{Dispatcher, Settings};

pub struct TestEnv {
    pub fixture: kit::ConsumerFixture,
    pub dispatched: String,
    pub sim: SupplierSim,
}

impl std::ops::Deref for TestEnv {
    type Target = kit::ConsumerFixture;

    fn deref(&self) -> &kit::ConsumerFixture {
        &self.fixture
    }
}

pub async fn test_env(partitions: i32) -> TestEnv {
    TestEnv {
        fixture: kit::ConsumerFixture::new("supplier-dispatch", partitions).await,
        dispatched: kit::topic("dispatched", 3).await,
        sim: SupplierSim::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap(),
    }
}

impl TestEnv {
    /// Settings for an in-process consumer: quick retries, quick commits.
    pub fn settings(&self) -> Settings {
        // More attempts than the fixture's: the failure tests script long runs of 5xx.
        let mut consumer = self.consumer_settings();
        consumer.retry_min_delay = Duration::from_millis(20);
        consumer.retry_max_delay = Duration::from_millis(200);
        consumer.retry_max_attempts = 10;
        Settings {
            kafka: kit::kafka(),
            consumer,
            database: self.database(),
            supplier_api_url: self.sim.url(),
            supplier_timeout: Duration::from_secs(2),
            dispatched_topic: self.dispatched.clone(),
            delivery_timeout: Duration::from_secs(10),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    pub async fn start(&self) -> Dispatcher {
        self.start_with(self.settings()).await
    }

    pub async fn start_with(&self, settings: Settings) -> Dispatcher {
        supplier_dispatch::start(settings, self.pool.clone())
            .await
            .expect("supplier-dispatch starts")
    }

    /// The environment of the real binary on this test's topics, group, schema and simulator.
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.fixture.service_env();
        env.extend([
            (config::SUPPLIER_API_URL, self.sim.url()),
            ("ORDERFLOW_DISPATCHED_TOPIC", self.dispatched.clone()),
        ]);
        env
    }

    pub async fn rows(&self) -> Vec<Dispatch> {
        sqlx::query_as(
            "SELECT order_id, supplier_id, status, job_id, attempts, last_error, line_ids, units,
                    accepted_at, published_at
               FROM dispatches ORDER BY order_id, supplier_id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    pub async fn count_published(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM dispatches WHERE status = 'accepted' AND published_at IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .unwrap_or(0)
    }

    /// Waits until `n` dispatches are accepted and announced.
    pub async fn wait_published(&self, n: i64, timeout: Duration) -> bool {
        kit::eventually(timeout, || async { self.count_published().await >= n }).await
    }

    /// Every event on the test's `orders.dispatched`, decoded, once at least `expected` are
    /// there (and a moment more, so a duplicate would show).
    pub async fn dispatched_events(&self, expected: usize) -> Vec<(OwnedMessage, OrderDispatched)> {
        // Once `expected` are there, everything on the topic: a crash may have published some
        // twice, and stopping at a count would then miss others.
        kit::read_topic(&self.dispatched, expected, Duration::from_secs(30)).await;
        kit::read_topic(&self.dispatched, usize::MAX, Duration::from_secs(3))
            .await
            .into_iter()
            .map(|m| {
                let event = OrderDispatched::decode(m.payload().expect("a payload"))
                    .expect("OrderDispatched decodes");
                (m, event)
            })
            .collect()
    }

    /// Waits until the group committed `offset` on partition 0 (all of a one-partition topic).
    pub async fn wait_committed(&self, offset: i64) -> bool {
        kit::eventually(Duration::from_secs(40), || async {
            kit::committed_offset(&self.group, &self.topic, 0).await == Some(offset)
        })
        .await
    }
}

/// A consistent order whose lines are (line_id, supplier_id, quantity).
pub fn order(order_id: &str, lines: &[(&str, &str, i32)]) -> OrderPlaced {
    let mut o = kit::sample_order_placed(order_id);
    let template = o.lines[0].clone();
    o.lines = lines
        .iter()
        .map(|&(line_id, supplier_id, quantity)| {
            let mut l = template.clone();
            l.line_id = line_id.into();
            l.sku = format!("SKU-{line_id}");
            l.supplier_id = supplier_id.into();
            l.quantity = quantity;
            l.product.design_id = format!("dsg-{line_id}");
            l.tax_minor = tax_of(l.unit_price_minor * i64::from(quantity), l.tax_rate_bp);
            l
        })
        .collect();
    o.settle_totals();
    o.check_consistency().expect("test orders are consistent");
    o
}

/// What the supplier should have received for an order: (key, [(line_id, sku, quantity)]).
pub fn expected_jobs(orders: &[OrderPlaced]) -> BTreeMap<String, Vec<(String, String, i32)>> {
    let mut jobs: BTreeMap<String, Vec<(String, String, i32)>> = BTreeMap::new();
    for o in orders {
        for l in &o.lines {
            jobs.entry(format!("{}:{}", o.order_id, l.supplier_id))
                .or_default()
                .push((l.line_id.clone(), l.sku.clone(), l.quantity));
        }
    }
    jobs
}
