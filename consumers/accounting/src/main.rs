use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use orderflow_core::config::Env;
use orderflow_core::db::{self, DatabaseConfig};

#[global_allocator]
static ALLOCATOR: orderflow_core::Allocator = orderflow_core::Allocator;

/// Journals placed orders in Postgres and exports a day's journal for the on-premises ledger.
/// Without a command it runs the consumer.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume orders.placed and journal each order (the default).
    Run,
    /// Create the database schema and run the migrations, then exit; needs only
    /// ORDERFLOW_DATABASE_URL (and ORDERFLOW_DATABASE_SCHEMA to override the schema).
    Migrate,
    /// Write one day's journal as CSV; the day must be over, and is closed by the export.
    Export {
        /// The journal day, YYYY-MM-DD, in the business time zone.
        #[arg(long)]
        date: NaiveDate,
        /// The file to write (replaced atomically); standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = orderflow_core::telemetry::init("accounting")?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => accounting::run(accounting::Settings::from_source(&Env)?).await?,
        Command::Migrate => {
            let database = DatabaseConfig::from_source(&Env, accounting::DEFAULT_SCHEMA)?;
            db::migrate(&database, &accounting::store::MIGRATOR).await?
        }
        Command::Export { date, out } => {
            let settings = accounting::LedgerSettings::from_source(&Env)?;
            let batch = accounting::export(&settings, date, out.as_deref()).await?;
            if out.is_none() {
                std::io::stdout()
                    .write_all(&batch.csv)
                    .context("writing to standard output")?;
            }
            tracing::info!(day = %date, entries = batch.entries, postings = batch.postings,
                out = %out.as_deref().map_or("stdout".into(), |p| p.display().to_string()), "exported");
        }
    }
    Ok(())
}
