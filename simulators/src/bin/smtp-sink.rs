//! The SMTP sink as a process, for the demo: SMTP on `ORDERFLOW_SMTP_SINK_LISTEN` (default
//! 127.0.0.1:2525), the listing and scripting API on `ORDERFLOW_SMTP_SINK_HTTP` (default
//! 127.0.0.1:8025: `GET /messages[?message_id=ID]`, `GET /messages/{id}`, `PUT /_sim/behaviour`), and, when
//! `ORDERFLOW_SMTP_SINK_DIR` is set, every accepted message written there as `<id>.eml`.

use std::net::SocketAddr;

use anyhow::Context;
use orderflow_simulators::smtp::SmtpSink;

fn address(name: &str, default: &str) -> anyhow::Result<SocketAddr> {
    let value = std::env::var(name).unwrap_or_else(|_| default.into());
    value
        .parse()
        .with_context(|| format!("{name} is malformed ({value:?}): expected host:port"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let smtp = address("ORDERFLOW_SMTP_SINK_LISTEN", "127.0.0.1:2525")?;
    let http = address("ORDERFLOW_SMTP_SINK_HTTP", "127.0.0.1:8025")?;
    let sink = match std::env::var_os("ORDERFLOW_SMTP_SINK_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => SmtpSink::spawn_saving_to(smtp, dir.clone().into())
            .await
            .with_context(|| format!("starting on {smtp}, saving to {}", dir.to_string_lossy()))?,
        None => SmtpSink::spawn(smtp)
            .await
            .with_context(|| format!("binding {smtp}"))?,
    };
    let http = sink
        .serve_http(http)
        .await
        .with_context(|| format!("binding {http}"))?;
    tracing::info!(smtp = %sink.url(), http = %format!("http://{http}"), "smtp sink listening");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
