//! `checkout migrate`, what a deployment's migration Job runs before a rollout: it needs only the
//! database settings, creates the schema and its tables, exits, and can run again.

use std::process::Command;

use orderflow_testkit as kit;

fn checkout(args: &[&str], schema: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_checkout"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORDERFLOW_DATABASE_URL", kit::database_url())
        .env("ORDERFLOW_DATABASE_SCHEMA", schema)
        .output()
        .expect("checkout runs")
}

#[tokio::test]
async fn migrate_creates_the_schema_and_its_tables_then_exits_and_can_run_again() {
    let schema = kit::unique("migrate").replace('-', "_");
    for _ in 0..2 {
        let out = checkout(&["migrate"], &schema);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pool = sqlx::PgPool::connect(&kit::database_url()).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1
         ORDER BY table_name",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in ["_sqlx_migrations", "orders", "outbox"] {
        assert!(tables.iter().any(|t| t == table), "{table} in {tables:?}");
    }
}

#[test]
fn an_unknown_command_is_refused_with_the_commands_there_are() {
    let out = checkout(&["migrat"], "unused");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("migrat") && said.contains("migrate"),
        "{said}"
    );
}
