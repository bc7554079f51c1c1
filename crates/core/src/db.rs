//! PostgreSQL connections. Every service keeps its tables (and its sqlx migration history) in a
//! schema of its own, so services sharing one database never see each other's migrations.

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};
use tracing::Instrument;

use crate::config::{self, ConfigError, Source};

/// Taken, until the transaction ends, by whoever creates a service's schema or a table the
/// runtime shares: replicas starting together would otherwise race on the catalog, where
/// `IF NOT EXISTS` does not stop a unique-key violation.
pub const LOCK_DDL: &str = "SELECT pg_advisory_xact_lock(hashtext('orderflow: create schema'))";

/// Where a service's tables live.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub schema: String,
    pub max_connections: u32,
}

impl DatabaseConfig {
    /// `ORDERFLOW_DATABASE_URL`, `ORDERFLOW_DATABASE_SCHEMA` (default: the service's own name)
    /// and `ORDERFLOW_DATABASE_MAX_CONNECTIONS` (default 16).
    pub fn from_source(src: &impl Source, default_schema: &str) -> Result<Self, ConfigError> {
        let schema = config::optional::<String>(src, config::DATABASE_SCHEMA)?
            .unwrap_or_else(|| default_schema.to_string());
        if !is_identifier(&schema) {
            return Err(ConfigError::Malformed {
                name: config::DATABASE_SCHEMA,
                value: schema,
                reason: "use lowercase letters, digits and underscores, starting with a letter"
                    .into(),
            });
        }
        Ok(Self {
            url: config::url(src, config::DATABASE_URL, &["postgres", "postgresql"])?,
            schema,
            max_connections: config::optional(src, "ORDERFLOW_DATABASE_MAX_CONNECTIONS")?
                .unwrap_or(16),
        })
    }

    /// Creates the schema if it is missing and returns a pool whose connections use it.
    pub async fn connect(&self) -> Result<PgPool, sqlx::Error> {
        let options: PgConnectOptions = self.url.parse()?;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        // Two services sharing a schema (notifications and its mailer) start together, and
        // concurrent `CREATE SCHEMA IF NOT EXISTS` can fail on the catalog's unique index; a
        // transaction-scoped advisory lock makes the second wait and then find the schema.
        let mut tx = admin.begin().await?;
        sqlx::query(LOCK_DDL).execute(&mut *tx).await?;
        // The name is checked by `is_identifier`, so it is safe to splice in.
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {}", self.schema))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        admin.close().await;
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .connect_with(options.options([("search_path", self.schema.as_str())]))
            .await
    }
}

/// What `<service> migrate` does: creates the service's schema, runs its migrations and creates
/// the consumer runtime's idempotency table, then returns. A deployment runs it once before a new
/// version starts (a Kubernetes Job), so replicas never migrate side by side; services still
/// migrate at start-up, which is then a no-op.
pub async fn migrate(config: &DatabaseConfig, migrator: &Migrator) -> Result<(), MigrateError> {
    let pool = config.connect().await?;
    migrator.run(&pool).await?;
    crate::idempotency::create_table(&pool).await?;
    pool.close().await;
    Ok(())
}

/// A client span for work on PostgreSQL, named `{operation} {table}` after OpenTelemetry's
/// database conventions, so a trace shows which statements an event cost. sqlx logs statements
/// but opens no spans of its own.
pub fn span(operation: &'static str, table: &'static str) -> tracing::Span {
    tracing::info_span!(
        "sql",
        otel.name = %format!("{operation} {table}").trim_end(),
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = operation,
        db.collection.name = table,
    )
}

/// Commits `tx` under a `COMMIT` span.
pub async fn commit(tx: Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    tx.commit().instrument(span("COMMIT", "")).await
}

fn is_identifier(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_defaults_to_the_service_and_must_be_an_identifier() {
        let url = ("ORDERFLOW_DATABASE_URL", "postgres://u:p@localhost/db");
        let c = DatabaseConfig::from_source(&[url], "accounting").unwrap();
        assert_eq!(c.schema, "accounting");
        let c = DatabaseConfig::from_source(&[url, ("ORDERFLOW_DATABASE_SCHEMA", "acct_2")], "x")
            .unwrap();
        assert_eq!(c.schema, "acct_2");
        let err = DatabaseConfig::from_source(
            &[url, ("ORDERFLOW_DATABASE_SCHEMA", "x; DROP TABLE y")],
            "x",
        )
        .unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Malformed {
                name: "ORDERFLOW_DATABASE_SCHEMA",
                ..
            }
        ));
    }
}
