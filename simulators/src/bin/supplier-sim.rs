//! The print-on-demand supplier simulator as a process, for the demo:
//! `ORDERFLOW_SUPPLIER_SIM_LISTEN` (default 127.0.0.1:8092), and how it misbehaves from the start:
//! `ORDERFLOW_SUPPLIER_SIM_LATENCY_MS` (0), `ORDERFLOW_SUPPLIER_SIM_ERROR_RATE` (share of 503s,
//! 0.0–1.0, default 0), `ORDERFLOW_SUPPLIER_SIM_RATE_LIMIT_RATE` (share of 429s, default 0) and
//! `ORDERFLOW_SUPPLIER_SIM_RETRY_AFTER_SECS` (their `Retry-After`, default 1). `PUT /_sim/behaviour`
//! changes it while it runs; `GET /v1/print-jobs` and `GET /_sim/stats` show what it received.

use std::net::SocketAddr;

use anyhow::Context;
use orderflow_core::config::{self, ConfigError, Env};
use orderflow_simulators::supplier::{Behaviour, SupplierSim};

fn rate(name: &'static str) -> Result<f64, ConfigError> {
    let value = config::optional::<f64>(&Env, name)?.unwrap_or(0.0);
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Malformed {
            name,
            value: value.to_string(),
            reason: "expected a share between 0.0 and 1.0".into(),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let addr: SocketAddr = config::optional(&Env, "ORDERFLOW_SUPPLIER_SIM_LISTEN")?
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8092)));
    let behaviour = Behaviour {
        latency_ms: config::optional(&Env, "ORDERFLOW_SUPPLIER_SIM_LATENCY_MS")?.unwrap_or(0),
        error_rate: rate("ORDERFLOW_SUPPLIER_SIM_ERROR_RATE")?,
        rate_limit_rate: rate("ORDERFLOW_SUPPLIER_SIM_RATE_LIMIT_RATE")?,
        retry_after_secs: config::optional(&Env, "ORDERFLOW_SUPPLIER_SIM_RETRY_AFTER_SECS")?
            .unwrap_or(1),
        ..Behaviour::default()
    };
    let sim = SupplierSim::spawn_with(addr, behaviour.clone())
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(url = %sim.url(), ?behaviour, "supplier simulator listening");
    tokio::signal::ctrl_c().await?;
    let stats = sim.stats();
    tracing::info!(?stats, "supplier simulator stopping");
    Ok(())
}
