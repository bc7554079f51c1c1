use orderflow_core::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = orderflow_core::telemetry::init("checkout")?;
    let settings = checkout::Settings::from_source(&Env)?;
    checkout::run(settings).await
}
