//! The whole pipeline in one process, for end-to-end and fault tests: the payment, supplier and
//! SMTP simulators, checkout, and all five consumers (with the mailer), wired to topics, consumer
//! groups, schemas, a RabbitMQ queue and an archive folder of their own, so runs never share state.
//! Every component is started through its library exactly as its binary starts it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use orderflow_core::config::{ConfigError, Source};
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use orderflow_simulators::payment::PaymentSim;
use orderflow_simulators::smtp::SmtpSink;
use orderflow_simulators::supplier::SupplierSim;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The consumer groups of orders.placed with a side effect, by service name.
pub const GROUPS: [&str; 5] = [
    supplier_dispatch::GROUP,
    notifications::GROUP,
    accounting::GROUP,
    sales_reporting::GROUP,
    product_analytics::GROUP,
];

/// Configuration as the services read it, from a list instead of the process environment.
#[derive(Debug, Clone, Default)]
pub struct Vars(Vec<(String, String)>);

impl Vars {
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_string(), value.into()));
        self
    }
}

impl Source for Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// A running pipeline; dropping it leaves background tasks running until the test ends, so
/// call [`Pipeline::stop`].
pub struct Pipeline {
    pub run: String,
    pub orders_topic: String,
    pub dispatched_topic: String,
    /// Consumer group (and database schema) of each service, in the order of [`GROUPS`].
    pub groups: Vec<String>,
    pub payments: PaymentSim,
    pub supplier: SupplierSim,
    pub smtp: SmtpSink,
    pub checkout_url: String,
    pub reporting_url: String,
    pub archive_dir: PathBuf,
    pub database_url: String,
    http: reqwest::Client,
    checkout: Option<checkout::Checkout>,
    stop: watch::Sender<bool>,
    tasks: Vec<(String, JoinHandle<Result<(), String>>)>,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn config<T>(service: &str, r: Result<T, ConfigError>) -> T {
    r.unwrap_or_else(|e| panic!("{service} configuration: {e}"))
}

impl Pipeline {
    /// Creates the run's topics and starts everything; returns once every service is started.
    pub async fn start() -> Self {
        orderflow_testkit::init_telemetry();
        let run = orderflow_testkit::unique("e2e").replace('-', "_");
        let partitions = 4;
        let orders_topic = orderflow_testkit::topic("e2e.orders", partitions).await;
        let dispatched_topic = orderflow_testkit::topic("e2e.dispatched", partitions).await;
        let groups: Vec<String> = GROUPS
            .iter()
            .map(|g| format!("{}_{run}", g.replace('-', "_")))
            .collect();
        for group in &groups {
            orderflow_testkit::create_topic(&dead_letter_topic(&orders_topic, group), partitions)
                .await;
            orderflow_testkit::create_topic(&retry_topic(&orders_topic, group), partitions).await;
        }
        let payments = PaymentSim::spawn(loopback())
            .await
            .expect("payment simulator");
        let supplier = SupplierSim::spawn(loopback())
            .await
            .expect("supplier simulator");
        let smtp = SmtpSink::spawn(loopback()).await.expect("smtp sink");
        let archive_dir = std::env::temp_dir().join(&run);
        let database_url = orderflow_testkit::database_url();
        let base = Vars::default()
            .with(
                "ORDERFLOW_KAFKA_BROKERS",
                orderflow_testkit::kafka().brokers,
            )
            .with("ORDERFLOW_DATABASE_URL", database_url.clone())
            .with("ORDERFLOW_AMQP_URL", amqp_url())
            .with("ORDERFLOW_CONSUMER_TOPIC", orders_topic.clone())
            .with("ORDERFLOW_CONSUMER_RETRY_MIN_DELAY_MS", "50")
            .with("ORDERFLOW_CONSUMER_RETRY_MAX_DELAY_MS", "1000")
            .with("ORDERFLOW_PAYMENT_API_URL", payments.url())
            .with("ORDERFLOW_SUPPLIER_API_URL", supplier.url())
            .with("ORDERFLOW_SMTP_URL", smtp.url())
            .with("ORDERFLOW_EMAIL_QUEUE", format!("orderflow.emails.{run}"))
            .with("ORDERFLOW_DISPATCHED_TOPIC", dispatched_topic.clone())
            .with("ORDERFLOW_ORDERS_TOPIC", orders_topic.clone())
            .with("ORDERFLOW_CHECKOUT_LISTEN", "127.0.0.1:0")
            .with("ORDERFLOW_REPORTING_LISTEN", "127.0.0.1:0")
            .with("ORDERFLOW_METRICS_LISTEN", "127.0.0.1:0")
            .with(
                "ORDERFLOW_ANALYTICS_ARCHIVE_URL",
                archive_dir.to_string_lossy().into_owned(),
            )
            .with("ORDERFLOW_ANALYTICS_FLUSH_INTERVAL_MS", "500");
        let vars = |service: usize| {
            base.clone()
                .with("ORDERFLOW_CONSUMER_GROUP", groups[service].clone())
                .with("ORDERFLOW_DATABASE_SCHEMA", groups[service].clone())
        };
        let (stop, rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut spawn = |name: &str, task: JoinHandle<Result<(), String>>| {
            tasks.push((name.to_string(), task));
        };

        let s = config(
            "supplier-dispatch",
            supplier_dispatch::Settings::from_source(&vars(0)),
        );
        let pool = s
            .database
            .connect()
            .await
            .expect("supplier-dispatch database");
        let dispatcher = supplier_dispatch::start(s, pool)
            .await
            .expect("supplier-dispatch");
        spawn(
            "supplier-dispatch",
            until(rx.clone(), |r| dispatcher.run_until(r)),
        );

        let s = config(
            "notifications",
            notifications::Settings::from_source(&vars(1)),
        );
        spawn(
            "notifications",
            until(rx.clone(), |r| notifications::run(s, r)),
        );
        let s = config(
            "mailer",
            notifications::mailer::MailerSettings::from_source(&vars(1)),
        );
        spawn(
            "mailer",
            until(rx.clone(), |r| notifications::mailer::run(s, r)),
        );

        let s = config("accounting", accounting::Settings::from_source(&vars(2)));
        let pool = s
            .ledger
            .database
            .connect()
            .await
            .expect("accounting database");
        let ledger = accounting::start(s, pool).await.expect("accounting");
        spawn(
            "accounting",
            until(rx.clone(), |r| async move {
                r.await;
                ledger.stop().await
            }),
        );

        let s = config(
            "sales-reporting",
            sales_reporting::Settings::from_source(&vars(3)),
        );
        let pool = s
            .database
            .connect()
            .await
            .expect("sales-reporting database");
        let reporting = sales_reporting::start(s, pool)
            .await
            .expect("sales-reporting");
        let reporting_url = format!("http://{}", reporting.addr);
        spawn(
            "sales-reporting",
            until(rx.clone(), |r| async move {
                r.await;
                reporting.stop().await
            }),
        );

        let s = config(
            "product-analytics",
            product_analytics::Settings::from_source(&vars(4)),
        );
        let pool = s
            .database
            .connect()
            .await
            .expect("product-analytics database");
        let analytics = product_analytics::start(s, pool)
            .await
            .expect("product-analytics");
        spawn(
            "product-analytics",
            until(rx.clone(), |r| analytics.run_until(r)),
        );

        let checkout_vars = base
            .clone()
            .with("ORDERFLOW_DATABASE_SCHEMA", format!("checkout_{run}"));
        let s = config("checkout", checkout::Settings::from_source(&checkout_vars));
        let pool = s.database.connect().await.expect("checkout database");
        let checkout = checkout::start(s, pool).await.expect("checkout");

        Self {
            checkout_url: format!("http://{}", checkout.addr),
            checkout: Some(checkout),
            run,
            orders_topic,
            dispatched_topic,
            groups,
            payments,
            supplier,
            smtp,
            reporting_url,
            archive_dir,
            database_url,
            http: reqwest::Client::new(),
            stop,
            tasks,
        }
    }

    /// Takes the payment at the simulator and places the order through `POST /v1/orders`;
    /// returns the HTTP status and body.
    pub async fn place(&self, order: &Value, total_minor: i64) -> (u16, Value) {
        self.payments.set_payment(
            order["payment"]["reference"]
                .as_str()
                .expect("payment reference"),
            "succeeded",
            total_minor,
            order["currency"].as_str().expect("currency"),
        );
        let response = self
            .http
            .post(format!("{}/v1/orders", self.checkout_url))
            .json(order)
            .send()
            .await
            .expect("checkout answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET` a JSON document from the sales-reporting HTTP API.
    pub async fn report(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.reporting_url))
            .send()
            .await
            .expect("sales-reporting answers")
            .json()
            .await
            .expect("report JSON")
    }

    /// A pool on one service's schema, by service name (one of [`GROUPS`]) or `checkout`.
    pub async fn database_of(&self, service: &str) -> sqlx::PgPool {
        let schema = match GROUPS.iter().position(|g| *g == service) {
            Some(i) => self.groups[i].clone(),
            None => format!("{service}_{}", self.run),
        };
        orderflow_core::db::DatabaseConfig {
            url: self.database_url.clone(),
            schema,
            max_connections: 2,
        }
        .connect()
        .await
        .expect("service database")
    }

    /// Stops checkout and every consumer, and reports any that ended with an error.
    pub async fn stop(mut self) {
        if let Some(checkout) = self.checkout.take() {
            checkout.stop().await;
        }
        let _ = self.stop.send(true);
        let mut failures = Vec::new();
        for (name, task) in self.tasks.drain(..) {
            match tokio::time::timeout(Duration::from_secs(60), task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => failures.push(format!("{name}: {e}")),
                Ok(Err(e)) => failures.push(format!("{name}: {e}")),
                Err(_) => failures.push(format!("{name}: did not stop within 60 s")),
            }
        }
        let _ = std::fs::remove_dir_all(&self.archive_dir);
        assert!(failures.is_empty(), "services failed: {failures:?}");
    }
}

/// Runs a service until the pipeline stops, as a task whose error is a message.
fn until<F, Fut, E>(rx: watch::Receiver<bool>, service: F) -> JoinHandle<Result<(), String>>
where
    F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let fut = service(Box::pin(stopped(rx)));
    tokio::spawn(async move { fut.await.map_err(|e| e.to_string()) })
}

/// The local stack's RabbitMQ, or `ORDERFLOW_AMQP_URL`.
pub fn amqp_url() -> String {
    std::env::var("ORDERFLOW_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}
