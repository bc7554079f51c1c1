use orderflow_core::config::Env;
use orderflow_core::db::{self, DatabaseConfig};
use orderflow_core::service::{self, ServiceCommand};

#[global_allocator]
static ALLOCATOR: orderflow_core::Allocator = orderflow_core::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = service::command(
        "product-analytics",
        "Archives every sold line as Parquet for marketing analysis.",
    );
    let _telemetry = orderflow_core::telemetry::init("product-analytics")?;
    match command {
        ServiceCommand::Run => {
            product_analytics::run(product_analytics::Settings::from_source(&Env)?).await?
        }
        ServiceCommand::Migrate => {
            db::migrate(
                &DatabaseConfig::from_source(&Env, product_analytics::SCHEMA)?,
                &product_analytics::MIGRATOR,
            )
            .await?
        }
    }
    Ok(())
}
