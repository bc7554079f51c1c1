//! The suite's own Kafka broker, PostgreSQL server and RabbitMQ node, on free loopback ports
//! beside the local stack. The suite stops and restarts them to inject outages, which it must
//! never do to the stack that other tests and developers share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pipeline::Servers;
use crate::process::{wait_for_port, Launch, Process};
use orderflow_testkit::free_port;

/// One server the suite can take down and bring back.
pub struct Server {
    pub process: Process,
    pub port: u16,
}

impl Server {
    fn spawn(name: &str, script: &str, dir: &Path, mut args: Vec<String>, port: u16) -> Self {
        let data = dir.join(name);
        args.insert(0, data.to_string_lossy().into_owned());
        let launch = Launch {
            program: scripts_dir().join(script),
            args,
            env: Vec::new(),
            log: dir.join(format!("{name}.out")),
        };
        Self {
            process: Process::spawn(name, launch),
            port,
        }
    }

    /// Kills the server (`kill -9` of its process group).
    pub fn stop(&mut self) {
        self.process.kill();
    }

    /// Starts it again and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.process.start();
        self.wait_ready().await;
    }

    async fn wait_ready(&self) {
        assert!(
            wait_for_port(self.port, Duration::from_secs(90)).await,
            "{} does not listen on 127.0.0.1:{} (see {})",
            self.process.name,
            self.port,
            self.process.log().display()
        );
    }
}

/// The suite's servers and how to reach them.
pub struct Infra {
    pub kafka: Server,
    pub postgres: Server,
    pub rabbitmq: Server,
    pub dir: PathBuf,
}

impl Infra {
    /// Starts the three servers in `dir` and waits until all of them answer.
    pub async fn start(dir: &Path) -> Self {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("suite folder");
        let (kafka_port, controller_port) = (free_port(), free_port());
        let kafka = Server::spawn(
            "kafka",
            "kafka-node.sh",
            dir,
            vec![kafka_port.to_string(), controller_port.to_string()],
            kafka_port,
        );
        let pg_port = free_port();
        let postgres = Server::spawn(
            "postgres",
            "pg-node.sh",
            dir,
            vec![pg_port.to_string()],
            pg_port,
        );
        // RabbitMQ's Erlang distribution takes the AMQP port + 20000.
        let amqp_port = loop {
            let p = free_port();
            if p <= 45535 {
                break p;
            }
        };
        let rabbitmq = Server::spawn(
            "rabbitmq",
            "rabbitmq-node.sh",
            dir,
            vec![amqp_port.to_string()],
            amqp_port,
        );
        let infra = Self {
            kafka,
            postgres,
            rabbitmq,
            dir: dir.to_path_buf(),
        };
        infra.kafka.wait_ready().await;
        infra.postgres.wait_ready().await;
        infra.rabbitmq.wait_ready().await;
        infra.wait_for_database().await;
        infra
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.kafka.port)
    }

    pub fn database_url(&self) -> String {
        format!(
            "postgres://orderflow@127.0.0.1:{}/orderflow",
            self.postgres.port
        )
    }

    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.rabbitmq.port)
    }

    pub fn kafka_config(&self) -> orderflow_core::config::KafkaConfig {
        orderflow_core::config::KafkaConfig {
            brokers: self.brokers(),
            security: Default::default(),
        }
    }

    /// Where a pipeline on these servers connects.
    pub fn servers(&self) -> Servers {
        Servers {
            brokers: self.brokers(),
            database_url: self.database_url(),
            amqp_url: self.amqp_url(),
            dir: self.dir.clone(),
        }
    }

    /// The `orderflow` database is created by pg-node.sh just after the server starts.
    async fn wait_for_database(&self) {
        let url = self.database_url();
        for _ in 0..100 {
            if sqlx::PgPool::connect(&url).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot connect to {url}");
    }
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}
