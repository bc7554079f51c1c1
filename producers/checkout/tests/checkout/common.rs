//! Spawns a real checkout (HTTP API and relay) on its own topic and database schema, with a
//! payment-provider simulator, against the local stack.

use std::net::SocketAddr;
use std::time::Duration;

use checkout::{Checkout, Settings};
use orderflow_core::config::KafkaConfig;
use orderflow_core::db::DatabaseConfig;
use orderflow_core::registry::SchemaRegistry;
use orderflow_simulators::payment::PaymentSim;
use serde_json::{json, Value};
use sqlx::PgPool;

pub struct TestApp {
    pub checkout: Checkout,
    pub settings: Settings,
    pub url: String,
    pub pool: PgPool,
    pub payments: PaymentSim,
    pub topic: String,
    pub http: reqwest::Client,
}

pub async fn spawn_app() -> TestApp {
    let topic = orderflow_testkit::topic("orders", 3).await;
    spawn_app_with(orderflow_testkit::kafka(), topic).await
}

pub async fn spawn_app_with(kafka: KafkaConfig, topic: String) -> TestApp {
    start_app(kafka, topic, None).await
}

/// Checkout sending Confluent-framed messages through `registry`.
pub async fn spawn_app_with_registry(registry: SchemaRegistry) -> TestApp {
    let topic = orderflow_testkit::topic("orders", 3).await;
    start_app(orderflow_testkit::kafka(), topic, Some(registry)).await
}

async fn start_app(
    kafka: KafkaConfig,
    topic: String,
    schema_registry: Option<SchemaRegistry>,
) -> TestApp {
    orderflow_testkit::init_telemetry();
    let (pool, schema) = orderflow_testkit::database_with_schema().await;
    let payments = PaymentSim::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database: DatabaseConfig {
            url: orderflow_testkit::database_url(),
            schema,
            max_connections: 8,
        },
        kafka,
        payment_api_url: payments.url(),
        payment_timeout: Duration::from_secs(2),
        topic: topic.clone(),
        delivery_timeout: Duration::from_secs(3),
        metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        schema_registry,
    };
    let checkout = checkout::start(settings.clone(), pool.clone())
        .await
        .unwrap();
    TestApp {
        url: format!("http://{}", checkout.addr),
        checkout,
        settings,
        pool,
        payments,
        topic,
        http: reqwest::Client::new(),
    }
}

impl TestApp {
    pub async fn post_order(&self, body: &Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/orders", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_order(&self, order_id: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/v1/orders/{order_id}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// Scripts a succeeded payment matching `order` and posts it.
    pub async fn place_paid(&self, order: &Value) -> reqwest::Response {
        self.payments.set_payment(
            order["payment"]["reference"].as_str().unwrap(),
            "succeeded",
            expected_total(order),
            order["currency"].as_str().unwrap(),
        );
        self.post_order(order).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn wait_published(&self, expected: i64) -> bool {
        orderflow_testkit::eventually(Duration::from_secs(30), || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            n == expected
        })
        .await
    }
}

/// A valid order request: 2 × 19.99 at 21 %, 1 × 12.99 at 10 %, shipping 4.95 at 21 %.
pub fn order_request(order_id: &str) -> Value {
    json!({
        "order_id": order_id,
        "channel": "web",
        "currency": "EUR",
        "customer": {"id": "cus-1", "email": "ana@example.com", "name": "Ana García", "locale": "es-ES"},
        "sales_agent": {"id": "agent-7", "email": "agent7@example.com", "name": "Sam Agent"},
        "shipping_address": {"name": "Ana García", "line1": "Calle Mayor 1", "city": "Madrid",
                             "postal_code": "28013", "country": "ES"},
        "lines": [
            {"line_id": "l1", "sku": "TSHIRT-M-BLK", "quantity": 2, "unit_price_minor": 1999,
             "tax_rate_bp": 2100, "supplier_id": "sup-a", "unit_cost_minor": 900,
             "product": {"name": "Organic tee", "category": "apparel", "design_id": "dsg-1",
                         "print_technique": "dtg", "size": "M", "colour": "black",
                         "material": "organic cotton", "attributes": {"fit": "regular"}}},
            {"line_id": "l2", "sku": "MUG-11OZ", "quantity": 1, "unit_price_minor": 1299,
             "tax_rate_bp": 1000, "supplier_id": "sup-b", "unit_cost_minor": 500,
             "product": {"name": "Mug", "category": "mugs", "design_id": "dsg-2",
                         "print_technique": "sublimation", "size": "11oz", "colour": "white",
                         "material": "ceramic"}}
        ],
        "shipping": {"method": "standard", "price_minor": 495, "tax_rate_bp": 2100},
        "payment": {"provider": "paysim", "reference": format!("pay-{order_id}")}
    })
}

/// The total of `order_request`, worked out by hand: 3998 + 1299 + 495 = 5792 before tax;
/// tax 839.58 → 840, 129.9 → 130, 103.95 → 104; total 6866.
pub fn expected_total(order: &Value) -> i64 {
    assert_eq!(
        order["lines"].as_array().unwrap().len(),
        2,
        "expected_total knows the sample order only"
    );
    6866
}
