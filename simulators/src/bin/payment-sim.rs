//! The payment-provider simulator as a process, for the demo: `ORDERFLOW_PAYMENT_SIM_LISTEN`
//! (default 127.0.0.1:8091).

use anyhow::Context;
use orderflow_simulators::payment::PaymentSim;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let listen =
        std::env::var("ORDERFLOW_PAYMENT_SIM_LISTEN").unwrap_or_else(|_| "127.0.0.1:8091".into());
    let addr = listen.parse().with_context(|| {
        format!("ORDERFLOW_PAYMENT_SIM_LISTEN is malformed ({listen:?}): expected host:port")
    })?;
    let sim = PaymentSim::spawn(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(url = %sim.url(), "payment simulator listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
