use orderflow_core::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = orderflow_core::telemetry::init("product-analytics")?;
    let settings = product_analytics::Settings::from_source(&Env)?;
    product_analytics::run(settings).await?;
    Ok(())
}
