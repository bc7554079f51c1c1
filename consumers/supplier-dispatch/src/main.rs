//! The supplier-dispatch service: configuration from the environment, then the library's `run`.

use orderflow_core::config::Env;
use orderflow_core::db::{self, DatabaseConfig};
use orderflow_core::service::{self, ServiceCommand};

#[global_allocator]
static ALLOCATOR: orderflow_core::Allocator = orderflow_core::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = service::command(
        "supplier-dispatch",
        "Sends each order's print jobs to the print-on-demand suppliers and announces them.",
    );
    let _telemetry = orderflow_core::telemetry::init(supplier_dispatch::GROUP)?;
    match command {
        ServiceCommand::Run => {
            supplier_dispatch::run(supplier_dispatch::Settings::from_source(&Env)?).await?
        }
        ServiceCommand::Migrate => {
            db::migrate(
                &DatabaseConfig::from_source(&Env, supplier_dispatch::DEFAULT_SCHEMA)?,
                &supplier_dispatch::store::MIGRATOR,
            )
            .await?
        }
    }
    Ok(())
}
