use orderflow_core::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = orderflow_core::telemetry::init("notifications")?;
    let settings = notifications::Settings::from_source(&Env)?;
    notifications::run(settings, orderflow_core::shutdown::signal()).await?;
    Ok(())
}
