//! Configuration from environment variables: one documented set shared by every service.
//! A missing or malformed value is an error that names the variable, so start-up stops with a
//! message an operator can act on.

use std::str::FromStr;
use std::time::Duration;

pub const KAFKA_BROKERS: &str = "ORDERFLOW_KAFKA_BROKERS";
pub const DATABASE_URL: &str = "ORDERFLOW_DATABASE_URL";
pub const DATABASE_SCHEMA: &str = "ORDERFLOW_DATABASE_SCHEMA";
pub const AMQP_URL: &str = "ORDERFLOW_AMQP_URL";
pub const PAYMENT_API_URL: &str = "ORDERFLOW_PAYMENT_API_URL";
pub const SUPPLIER_API_URL: &str = "ORDERFLOW_SUPPLIER_API_URL";
pub const SMTP_URL: &str = "ORDERFLOW_SMTP_URL";
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const KAFKA_SECURITY_PROTOCOL: &str = "ORDERFLOW_KAFKA_SECURITY_PROTOCOL";
pub const KAFKA_SASL_MECHANISM: &str = "ORDERFLOW_KAFKA_SASL_MECHANISM";
pub const KAFKA_SASL_USERNAME: &str = "ORDERFLOW_KAFKA_SASL_USERNAME";
pub const KAFKA_SASL_PASSWORD: &str = "ORDERFLOW_KAFKA_SASL_PASSWORD";
pub const KAFKA_SSL_CA_LOCATION: &str = "ORDERFLOW_KAFKA_SSL_CA_LOCATION";
pub const KAFKA_SSL_CERTIFICATE_LOCATION: &str = "ORDERFLOW_KAFKA_SSL_CERTIFICATE_LOCATION";
pub const KAFKA_SSL_KEY_LOCATION: &str = "ORDERFLOW_KAFKA_SSL_KEY_LOCATION";

/// A configuration problem, naming the variable at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name} is malformed ({value:?}): {reason}")]
    Malformed {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// Where configuration values come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }
}

/// A required value parsed with `FromStr`.
pub fn required<T>(src: &impl Source, name: &'static str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    optional(src, name)?.ok_or(ConfigError::Missing(name))
}

/// An optional value parsed with `FromStr`; set but malformed is still an error.
pub fn optional<T>(src: &impl Source, name: &'static str) -> Result<Option<T>, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    src.get(name)
        .map(|value| {
            value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Malformed {
                    name,
                    reason: e.to_string(),
                    value,
                })
        })
        .transpose()
}

/// A required URL with an http(s), postgres, amqp or smtp scheme.
pub fn url(src: &impl Source, name: &'static str, schemes: &[&str]) -> Result<String, ConfigError> {
    let value: String = required(src, name)?;
    let scheme = value.split_once("://").map(|(s, _)| s).unwrap_or("");
    if scheme.is_empty() || !schemes.contains(&scheme) {
        return Err(ConfigError::Malformed {
            name,
            value,
            reason: format!("expected a URL starting with {}://", schemes.join("://, ")),
        });
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// A duration given in milliseconds.
pub fn millis(
    src: &impl Source,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    Ok(optional::<u64>(src, name)?
        .map(Duration::from_millis)
        .unwrap_or(default))
}

/// How to reach Kafka, including its security settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    pub brokers: String,
    pub security: KafkaSecurity,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub protocol: Option<String>,
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`, with its username and password.
    pub sasl: Option<(String, String, String)>,
    pub ssl_ca_location: Option<String>,
    pub ssl_certificate_location: Option<String>,
    pub ssl_key_location: Option<String>,
}

impl KafkaConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_source(&Env)
    }

    pub fn from_source(src: &impl Source) -> Result<Self, ConfigError> {
        let brokers: String = required(src, KAFKA_BROKERS)?;
        if brokers
            .split(',')
            .any(|b| b.trim().rsplit_once(':').is_none())
        {
            return Err(ConfigError::Malformed {
                name: KAFKA_BROKERS,
                value: brokers,
                reason: "expected a comma-separated list of host:port".into(),
            });
        }
        let protocol: Option<String> =
            optional::<String>(src, KAFKA_SECURITY_PROTOCOL)?.map(|p| p.to_ascii_lowercase());
        if let Some(p) = &protocol {
            if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&p.as_str()) {
                return Err(ConfigError::Malformed {
                    name: KAFKA_SECURITY_PROTOCOL,
                    value: p.clone(),
                    reason: "expected plaintext, ssl, sasl_plaintext or sasl_ssl".into(),
                });
            }
        }
        let sasl = if protocol.as_deref().is_some_and(|p| p.starts_with("sasl")) {
            let mechanism: String =
                optional(src, KAFKA_SASL_MECHANISM)?.unwrap_or_else(|| "SCRAM-SHA-512".to_string());
            if !["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"].contains(&mechanism.as_str()) {
                return Err(ConfigError::Malformed {
                    name: KAFKA_SASL_MECHANISM,
                    value: mechanism,
                    reason: "expected SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN".into(),
                });
            }
            Some((
                mechanism,
                required(src, KAFKA_SASL_USERNAME)?,
                required(src, KAFKA_SASL_PASSWORD)?,
            ))
        } else {
            None
        };
        Ok(Self {
            brokers: brokers.trim().to_string(),
            security: KafkaSecurity {
                protocol,
                sasl,
                ssl_ca_location: optional(src, KAFKA_SSL_CA_LOCATION)?,
                ssl_certificate_location: optional(src, KAFKA_SSL_CERTIFICATE_LOCATION)?,
                ssl_key_location: optional(src, KAFKA_SSL_KEY_LOCATION)?,
            },
        })
    }

    /// A config for plain brokers, as the tests and the local stack use.
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            security: KafkaSecurity::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_brokers_names_the_variable() {
        let err = KafkaConfig::from_source(&[("X", "y")]).unwrap_err();
        assert_eq!(err, ConfigError::Missing(KAFKA_BROKERS));
        assert!(err.to_string().contains("ORDERFLOW_KAFKA_BROKERS"));
    }

    #[test]
    fn malformed_brokers_are_refused() {
        let err = KafkaConfig::from_source(&[(KAFKA_BROKERS, "localhost")]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Malformed {
                name: KAFKA_BROKERS,
                ..
            }
        ));
    }

    #[test]
    fn sasl_needs_credentials() {
        let src = [
            (KAFKA_BROKERS, "b:9092"),
            (KAFKA_SECURITY_PROTOCOL, "SASL_SSL"),
        ];
        assert_eq!(
            KafkaConfig::from_source(&src).unwrap_err(),
            ConfigError::Missing(KAFKA_SASL_USERNAME)
        );
        let src = [
            (KAFKA_BROKERS, "b:9092"),
            (KAFKA_SECURITY_PROTOCOL, "sasl_ssl"),
            (KAFKA_SASL_MECHANISM, "SCRAM-SHA-256"),
            (KAFKA_SASL_USERNAME, "u"),
            (KAFKA_SASL_PASSWORD, "p"),
        ];
        let cfg = KafkaConfig::from_source(&src).unwrap();
        assert_eq!(
            cfg.security.sasl,
            Some(("SCRAM-SHA-256".into(), "u".into(), "p".into()))
        );
    }

    #[test]
    fn unknown_security_protocol_is_refused() {
        let src = [(KAFKA_BROKERS, "b:9092"), (KAFKA_SECURITY_PROTOCOL, "tls")];
        assert!(matches!(
            KafkaConfig::from_source(&src).unwrap_err(),
            ConfigError::Malformed {
                name: KAFKA_SECURITY_PROTOCOL,
                ..
            }
        ));
    }

    #[test]
    fn urls_need_a_known_scheme() {
        let src = [(PAYMENT_API_URL, "localhost:8080")];
        assert!(matches!(
            url(&src, PAYMENT_API_URL, &["http", "https"]).unwrap_err(),
            ConfigError::Malformed {
                name: PAYMENT_API_URL,
                ..
            }
        ));
        let src = [(PAYMENT_API_URL, "http://127.0.0.1:8080/")];
        assert_eq!(
            url(&src, PAYMENT_API_URL, &["http", "https"]).unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            url(&[("A", "b")], PAYMENT_API_URL, &["http"]).unwrap_err(),
            ConfigError::Missing(PAYMENT_API_URL)
        );
    }

    #[test]
    fn malformed_numbers_name_the_variable() {
        let err = millis(
            &[("ORDERFLOW_X_MS", "soon")],
            "ORDERFLOW_X_MS",
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("ORDERFLOW_X_MS is malformed"));
    }
}
