//! The whole pipeline as real processes on the suite's servers: checkout and every consumer
//! service (with the mailer) run as their own binaries, each on topics, a consumer group, a
//! database schema, a queue and an archive folder of this run, so a scenario can `kill -9` any of
//! them and start it again. The third parties (payment, supplier, SMTP) are the simulators,
//! in this process, so a scenario can make them misbehave and read what they received.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use orderflow_core::config::KafkaConfig;
use orderflow_core::kafka::{ensure_topics, TopicSpec};
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use orderflow_simulators::payment::PaymentSim;
use orderflow_simulators::smtp::SmtpSink;
use orderflow_simulators::supplier::SupplierSim;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;

use crate::load::Storefront;
use crate::process::{wait_for_port, Launch, Process};
use orderflow_testkit::free_port;

/// The consumer services of orders.placed, which are also their consumer groups' base names.
pub const CONSUMERS: [&str; 5] = [
    "supplier-dispatch",
    "notifications",
    "accounting",
    "sales-reporting",
    "product-analytics",
];

/// Every service binary of the pipeline; the mailer belongs to notifications.
pub const SERVICES: [&str; 7] = [
    "checkout",
    "supplier-dispatch",
    "notifications",
    "mailer",
    "accounting",
    "sales-reporting",
    "product-analytics",
];

const PARTITIONS: i32 = 6;

/// The servers a pipeline runs on, and the folder for its logs and archive: the suite's own
/// (`Infra::servers`) or the shared local stack ([`Servers::stack`]).
pub struct Servers {
    pub brokers: String,
    pub database_url: String,
    pub amqp_url: String,
    pub dir: PathBuf,
}

impl Servers {
    /// The local stack (`scripts/stack.sh up`), as the other integration tests reach it.
    pub fn stack(dir: PathBuf) -> Self {
        Self {
            brokers: orderflow_testkit::kafka().brokers,
            database_url: orderflow_testkit::database_url(),
            amqp_url: std::env::var(orderflow_core::config::AMQP_URL)
                .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()),
            dir,
        }
    }

    fn kafka_config(&self) -> KafkaConfig {
        KafkaConfig {
            brokers: self.brokers.clone(),
            security: Default::default(),
        }
    }
}

/// A running pipeline of one scenario.
pub struct Pipeline {
    pub run: String,
    pub orders_topic: String,
    pub payments: PaymentSim,
    pub supplier: SupplierSim,
    pub smtp: SmtpSink,
    pub checkout_url: String,
    pub reporting_url: String,
    pub archive_dir: PathBuf,
    pub kafka: KafkaConfig,
    pub database_url: String,
    amqp_url: String,
    email_queue: String,
    /// Every topic the run created.
    topics: Vec<String>,
    log_dir: PathBuf,
    /// Orders checkout accepted so far, counted by every storefront of this pipeline.
    accepted: Arc<AtomicUsize>,
    /// The environment every service starts from.
    base: Vec<(String, String)>,
    services: BTreeMap<&'static str, Process>,
    extras: Vec<Process>,
    /// Where each service's first instance serves `/metrics`.
    metrics_ports: BTreeMap<&'static str, u16>,
}

impl Pipeline {
    /// Creates the run's topics and starts the simulators and every service, with `extra_env`
    /// added to each one's environment; returns once checkout and the report API answer.
    pub async fn start(servers: &Servers, scenario: &str, extra_env: &[(&str, String)]) -> Self {
        let mut pipeline = Self::prepare(servers, scenario, extra_env).await;
        for service in SERVICES {
            pipeline.start_service(service);
        }
        pipeline.await_apis().await;
        pipeline
    }

    /// Creates the run's topics and starts the simulators, but no service: the caller starts
    /// the ones it needs with [`Pipeline::start_service`].
    pub async fn prepare(servers: &Servers, scenario: &str, extra_env: &[(&str, String)]) -> Self {
        let run = format!(
            "{}_{}",
            scenario.replace('-', "_"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let kafka = servers.kafka_config();
        let orders_topic = format!("faults.{run}.orders");
        let dispatched_topic = format!("faults.{run}.dispatched");
        let mut topics = vec![
            spec(&orders_topic, PARTITIONS),
            spec(&dispatched_topic, PARTITIONS),
        ];
        for service in CONSUMERS {
            let group = group_of(service, &run);
            topics.push(spec(&dead_letter_topic(&orders_topic, &group), PARTITIONS));
            topics.push(spec(&retry_topic(&orders_topic, &group), PARTITIONS));
        }
        ensure_topics(&kafka, &topics)
            .await
            .expect("creating the run's topics");

        let payments = PaymentSim::spawn(loopback()).await.expect("payment sim");
        let supplier = SupplierSim::spawn(loopback()).await.expect("supplier sim");
        let smtp = SmtpSink::spawn(loopback()).await.expect("smtp sink");
        let smtp_http = smtp.serve_http(loopback()).await.expect("smtp sink API");
        let email_queue = format!("orderflow.emails.{run}");
        let log_dir = servers.dir.join(&run);
        let archive_dir = log_dir.join("archive");
        let (checkout_port, reporting_port) = (free_port(), free_port());
        let base: Vec<(String, String)> = [
            ("ORDERFLOW_KAFKA_BROKERS", servers.brokers.clone()),
            ("ORDERFLOW_DATABASE_URL", servers.database_url.clone()),
            ("ORDERFLOW_AMQP_URL", servers.amqp_url.clone()),
            ("ORDERFLOW_CONSUMER_TOPIC", orders_topic.clone()),
            ("ORDERFLOW_ORDERS_TOPIC", orders_topic.clone()),
            ("ORDERFLOW_DISPATCHED_TOPIC", dispatched_topic),
            // Quick in-process retries, then the retry topic: an outage of a minute or more
            // is outlasted without a dead letter.
            ("ORDERFLOW_CONSUMER_RETRY_MIN_DELAY_MS", "100".into()),
            ("ORDERFLOW_CONSUMER_RETRY_MAX_DELAY_MS", "2000".into()),
            ("ORDERFLOW_CONSUMER_RETRY_ROUNDS", "5".into()),
            ("ORDERFLOW_CONSUMER_RETRY_TOPIC_DELAY_MS", "5000".into()),
            ("ORDERFLOW_PAYMENT_API_URL", payments.url()),
            ("ORDERFLOW_SUPPLIER_API_URL", supplier.url()),
            ("ORDERFLOW_SUPPLIER_TIMEOUT_MS", "1000".into()),
            ("ORDERFLOW_SMTP_URL", smtp.url()),
            (
                "ORDERFLOW_MAIL_LOOKUP_URL",
                format!("http://{smtp_http}/messages"),
            ),
            ("ORDERFLOW_EMAIL_QUEUE", email_queue.clone()),
            (
                "ORDERFLOW_CHECKOUT_LISTEN",
                format!("127.0.0.1:{checkout_port}"),
            ),
            (
                "ORDERFLOW_REPORTING_LISTEN",
                format!("127.0.0.1:{reporting_port}"),
            ),
            (
                "ORDERFLOW_ANALYTICS_ARCHIVE_URL",
                archive_dir.to_string_lossy().into_owned(),
            ),
            ("ORDERFLOW_ANALYTICS_FLUSH_INTERVAL_MS", "500".into()),
            ("ORDERFLOW_METRICS_LISTEN", "127.0.0.1:0".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .chain(extra_env.iter().cloned())
        .map(|(k, v)| (k.to_string(), v))
        .collect();

        Self {
            run,
            orders_topic,
            payments,
            supplier,
            smtp,
            checkout_url: format!("http://127.0.0.1:{checkout_port}"),
            reporting_url: format!("http://127.0.0.1:{reporting_port}"),
            archive_dir,
            kafka,
            database_url: servers.database_url.clone(),
            amqp_url: servers.amqp_url.clone(),
            email_queue,
            topics: topics.into_iter().map(|t| t.name).collect(),
            log_dir,
            base,
            accepted: Default::default(),
            services: BTreeMap::new(),
            extras: Vec::new(),
            metrics_ports: SERVICES.iter().map(|s| (*s, free_port())).collect(),
        }
    }

    /// Starts the first instance of one of [`SERVICES`].
    pub fn start_service(&mut self, service: &'static str) {
        let launch = self.launch(service, 0);
        self.services
            .insert(service, Process::spawn(service, launch));
    }

    /// Waits until checkout and the report API accept connections.
    pub async fn await_apis(&self) {
        for url in [&self.checkout_url, &self.reporting_url] {
            let port = url
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a loopback URL with a port");
            assert!(
                wait_for_port(port, Duration::from_secs(60)).await,
                "checkout or sales-reporting did not start; logs in {}",
                self.log_dir.display()
            );
        }
    }

    /// How `service` is started: its binary, and the base environment with its own group,
    /// schema and (for a second instance) its own listening port.
    fn launch(&self, service: &str, instance: usize) -> Launch {
        let mut env = self.base.clone();
        let mut set = |k: &str, v: String| {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v));
        };
        let owner = if service == "mailer" {
            "notifications"
        } else {
            service
        };
        if service == "checkout" {
            set(
                "ORDERFLOW_DATABASE_SCHEMA",
                format!("checkout_{}", self.run),
            );
        } else {
            set("ORDERFLOW_CONSUMER_GROUP", self.group(owner));
            set("ORDERFLOW_DATABASE_SCHEMA", self.schema(owner));
        }
        if instance > 0 {
            set(
                "ORDERFLOW_REPORTING_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            );
        } else if let Some(port) = self.metrics_ports.get(service) {
            set("ORDERFLOW_METRICS_LISTEN", format!("127.0.0.1:{port}"));
        }
        Launch {
            program: binary(service),
            args: Vec::new(),
            env,
            log: self.log_dir.join(format!("{service}-{instance}.log")),
        }
    }

    /// The consumer group of a consumer service in this run.
    pub fn group(&self, service: &str) -> String {
        group_of(service, &self.run)
    }

    /// The database schema of a service (a consumer service, or `checkout`) in this run.
    pub fn schema(&self, service: &str) -> String {
        if service == "checkout" {
            format!("checkout_{}", self.run)
        } else {
            self.group(service).replace('-', "_")
        }
    }

    /// A pool on one service's schema.
    pub async fn database_of(&self, service: &str) -> Result<sqlx::PgPool, sqlx::Error> {
        orderflow_core::db::DatabaseConfig {
            url: self.database_url.clone(),
            schema: self.schema(service),
            max_connections: 2,
        }
        .connect()
        .await
    }

    /// A storefront placing orders through this pipeline's checkout.
    pub fn storefront(&self) -> Storefront {
        Storefront {
            run: self.run.clone(),
            checkout_url: self.checkout_url.clone(),
            payments: self.payments.clone(),
            accepted: Arc::clone(&self.accepted),
        }
    }

    /// `kill -9` of one service.
    pub fn kill(&mut self, service: &str) {
        self.process(service).kill();
    }

    /// Stops one service gracefully (SIGTERM); returns whether it exited cleanly.
    pub fn stop_service(&mut self, service: &str) -> bool {
        self.process(service).terminate(Duration::from_secs(60))
    }

    /// Starts a killed or stopped service again.
    pub fn restart(&mut self, service: &str) {
        self.process(service).start();
    }

    /// Starts a second instance of each consumer service (a new member joins each group).
    pub fn join_second_instances(&mut self) {
        for service in CONSUMERS {
            let launch = self.launch(service, 1);
            self.extras.push(Process::spawn(service, launch));
        }
    }

    /// Stops the second instances gracefully (they leave their groups); returns those that did
    /// not exit cleanly.
    pub fn leave_second_instances(&mut self) -> Vec<String> {
        self.extras
            .drain(..)
            .filter_map(|mut p| {
                (!p.terminate(Duration::from_secs(60))).then(|| format!("{} (second)", p.name))
            })
            .collect()
    }

    /// Services that exited on their own, with their status: a crash is a finding.
    pub fn exited(&mut self) -> Vec<String> {
        self.services
            .values_mut()
            .chain(self.extras.iter_mut())
            .filter_map(|p| {
                let status = p.exited()?;
                Some(format!(
                    "{} exited ({status}), see {}",
                    p.name,
                    p.log().display()
                ))
            })
            .collect()
    }

    /// Stops every running service gracefully; returns those that did not exit cleanly.
    pub fn stop(mut self) -> Vec<String> {
        let mut unclean = self.leave_second_instances();
        for (name, p) in self.services.iter_mut().filter(|(_, p)| p.pid().is_some()) {
            if !p.terminate(Duration::from_secs(60)) {
                unclean.push(format!(
                    "{name} did not stop cleanly, see {}",
                    p.log().display()
                ));
            }
        }
        unclean
    }

    /// Creates more topics for the run (those of a consumer group the caller runs itself), to be
    /// deleted with the run's own by [`Pipeline::stop_and_discard`].
    pub async fn create_topics(&mut self, names: &[&str]) -> Result<(), KafkaError> {
        let specs: Vec<TopicSpec> = names.iter().map(|n| spec(n, PARTITIONS)).collect();
        ensure_topics(&self.kafka, &specs).await?;
        self.topics.extend(names.iter().map(|n| n.to_string()));
        Ok(())
    }

    /// Stops every service like [`Pipeline::stop`], then deletes what the run left on the
    /// shared servers: its topics, its e-mail queues and its database schemas. The benchmark
    /// drains millions of events a run; kept, they slow every later run (RabbitMQ holding
    /// millions of unsent e-mails) and fill the disk. The fault suite keeps them to inspect.
    pub async fn stop_and_discard(self) -> Vec<String> {
        // The mailer writes to notifications' schema.
        let schemas: Vec<String> = std::iter::once("checkout")
            .chain(CONSUMERS)
            .map(|s| self.schema(s))
            .collect();
        let queue = self.email_queue.clone();
        let (kafka, topics) = (self.kafka.clone(), self.topics.clone());
        let (database_url, amqp_url) = (self.database_url.clone(), self.amqp_url.clone());
        let mut problems = self.stop();
        if let Err(e) = delete_topics(&kafka, &topics).await {
            problems.push(format!("deleting the run's topics: {e}"));
        }
        if let Err(e) = delete_queues(&amqp_url, &[format!("{queue}.dlq"), queue]).await {
            problems.push(format!("deleting the run's e-mail queues: {e}"));
        }
        if let Err(e) = drop_schemas(&database_url, &schemas).await {
            problems.push(format!("dropping the run's schemas: {e}"));
        }
        problems
    }

    fn process(&mut self, service: &str) -> &mut Process {
        self.services
            .get_mut(service)
            .unwrap_or_else(|| panic!("no service {service}"))
    }

    /// The `/metrics` address of a service's first instance.
    pub fn metrics_url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}/metrics", self.metrics_ports[service])
    }

    /// The process id of a service's first instance, while it runs.
    pub fn pid(&self, service: &str) -> Option<u32> {
        self.services.get(service)?.pid()
    }

    pub fn log_dir(&self) -> &PathBuf {
        &self.log_dir
    }
}

async fn delete_topics(kafka: &KafkaConfig, topics: &[String]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        orderflow_core::kafka::client_config(kafka).create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    admin.delete_topics(&names, &AdminOptions::new()).await?;
    Ok(())
}

async fn delete_queues(amqp_url: &str, queues: &[String]) -> Result<(), lapin::Error> {
    let connection = lapin::Connection::connect(amqp_url, Default::default()).await?;
    let channel = connection.create_channel().await?;
    for queue in queues {
        channel
            .queue_delete(queue.as_str().into(), Default::default())
            .await?;
    }
    connection.close(0, "run discarded".into()).await
}

async fn drop_schemas(database_url: &str, schemas: &[String]) -> Result<(), sqlx::Error> {
    let db = sqlx::PgPool::connect(database_url).await?;
    for schema in schemas {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .execute(&db)
            .await?;
    }
    Ok(())
}

fn group_of(service: &str, run: &str) -> String {
    format!("{service}-{run}")
}

fn spec(name: &str, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: name.to_string(),
        partitions,
        retention_ms: 86_400_000,
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A service binary in the target folder the running program was built into: the suite's
/// (`target/debug/deps/faults-<hash>`) or a tool's (`target/release/orderflow-bench`).
fn binary(service: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the program's own path");
    let mut dir = exe.parent().expect("target folder");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target folder");
    }
    let path = dir.join(service);
    assert!(
        path.exists(),
        "{} is missing: build the services first (cargo build --bins) into the same profile",
        path.display()
    );
    path
}
