//! The supplier-dispatch service: configuration from the environment, then the library's `run`.

use orderflow_core::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = orderflow_core::telemetry::init(supplier_dispatch::GROUP)?;
    let settings = supplier_dispatch::Settings::from_source(&Env)?;
    supplier_dispatch::run(settings).await?;
    Ok(())
}
