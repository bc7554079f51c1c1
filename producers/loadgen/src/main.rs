//! `loadgen`: places realistic orders through checkout at a fixed rate or as fast as possible.

use std::time::Duration;

use clap::Parser;
use loadgen::driver::{self, LoadPlan};

/// Places realistic orders through checkout's POST /v1/orders and reports throughput and latency.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Checkout's base URL.
    #[arg(
        long,
        env = "ORDERFLOW_CHECKOUT_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    checkout_url: String,
    /// The payment provider simulator's base URL, where each order's payment is scripted first.
    #[arg(
        long,
        env = "ORDERFLOW_PAYMENT_API_URL",
        default_value = "http://127.0.0.1:8091"
    )]
    payments_url: String,
    /// HTTP/1.1 connections kept open, each placing one order at a time.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Orders per second, spread over the connections.
    #[arg(long, conflicts_with = "max")]
    rate: Option<f64>,
    /// As fast as the connections go instead of a fixed rate.
    #[arg(long)]
    max: bool,
    /// How long to place orders, in seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Orders prepared for a run as fast as possible (order ids must not repeat within a run).
    #[arg(long, default_value_t = 200_000)]
    max_orders: u64,
    /// Names the run: order ids are `lg-<run>-<n>`; by default a fresh one.
    #[arg(long)]
    run: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.max || cli.rate.is_some(), "give --rate N or --max");
    loadgen::raise_fd_limit()?;
    let run = cli
        .run
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    let count = match cli.rate {
        Some(rate) => (rate * cli.seconds as f64).ceil() as u64 + 1,
        None => cli.max_orders,
    };
    let orders: Vec<_> = (0..count)
        .map(|n| loadgen::catalogue::order(&run, n))
        .collect();
    loadgen::register_payments(&cli.payments_url, &orders).await?;
    let report = driver::run(
        LoadPlan {
            url: cli.checkout_url,
            connections: cli.connections,
            rate: cli.rate,
            duration: Duration::from_secs(cli.seconds),
            request_timeout: Duration::from_secs(30),
        },
        orders,
    )
    .await?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
        for sample in &report.refusal_samples {
            println!("refused: {sample}");
        }
    }
    Ok(())
}
