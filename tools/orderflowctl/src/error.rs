//! Why a command failed, worded so the operator knows what to do next.

use orderflow_core::config::ConfigError;
use rdkafka::error::KafkaError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{0} (give the brokers with --brokers or ORDERFLOW_KAFKA_BROKERS, and set the \
         ORDERFLOW_KAFKA_SECURITY_PROTOCOL/SASL/SSL variables if the cluster needs them)"
    )]
    KafkaConfig(ConfigError),
    #[error("{0}")]
    Config(ConfigError),
    #[error(
        "Kafka, {context}: {source} (check that the brokers of --brokers / \
         ORDERFLOW_KAFKA_BROKERS are reachable and the security settings are right)"
    )]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    #[error("this command needs the database: give --database-url or set ORDERFLOW_DATABASE_URL")]
    NoDatabase,
    #[error(
        "database, {context}: {source} (check --database-url / ORDERFLOW_DATABASE_URL and \
         that the schemas are the services' ones)"
    )]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "topic {0} does not exist (check the name; `orderflowctl topics apply` creates the \
         topics declared in deploy/topics.txt)"
    )]
    NoTopic(String),
    #[error("{path}:{line}: {reason}")]
    TopicsFile {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("cannot read {path}: {source} (give the topic list with --file)")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A request refused before anything was changed; the message says why and what to do.
    #[error("{0}")]
    Refused(String),
    #[error("Kafka did not answer in time while {0}; try again, or check the brokers' health")]
    Timeout(String),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Attaches what was being done to a Kafka or database error.
pub(crate) trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T, Error>;
}

impl<T> Context<T> for Result<T, KafkaError> {
    fn context(self, what: impl Into<String>) -> Result<T, Error> {
        self.map_err(|source| Error::Kafka {
            context: what.into(),
            source,
        })
    }
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, what: impl Into<String>) -> Result<T, Error> {
        self.map_err(|source| Error::Database {
            context: what.into(),
            source,
        })
    }
}
