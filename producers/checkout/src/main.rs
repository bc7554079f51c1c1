use orderflow_core::config::Env;
use orderflow_core::db::{self, DatabaseConfig};
use orderflow_core::service::{self, ServiceCommand};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = service::command(
        "checkout",
        "The order API: validates and accepts orders, and relays them to Kafka through its outbox.",
    );
    let _telemetry = orderflow_core::telemetry::init("checkout")?;
    match command {
        ServiceCommand::Run => checkout::run(checkout::Settings::from_source(&Env)?).await?,
        ServiceCommand::Migrate => {
            db::migrate(
                &DatabaseConfig::from_source(&Env, checkout::DEFAULT_SCHEMA)?,
                &checkout::store::MIGRATOR,
            )
            .await?
        }
    }
    Ok(())
}
