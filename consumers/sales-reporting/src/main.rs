use clap::{Parser, Subcommand};
use orderflow_core::config::Env;
use orderflow_core::db::{self, DatabaseConfig};
use sales_reporting::report::{Currency, Format, Month};

#[global_allocator]
static ALLOCATOR: orderflow_core::Allocator = orderflow_core::Allocator;

/// The monthly sales report of orderflow, kept current from orders.placed.
#[derive(Parser)]
#[command(name = "sales-reporting", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume orders and serve the report and metrics over HTTP (the default).
    Run,
    /// Create the database schema and run the migrations, then exit; needs only
    /// ORDERFLOW_DATABASE_URL (and ORDERFLOW_DATABASE_SCHEMA to override the schema).
    Migrate,
    /// Print one month's report to stdout.
    Report {
        /// The month, YYYY-MM, in the business time zone.
        #[arg(long)]
        month: Month,
        /// json or csv.
        #[arg(long, default_value = "json")]
        format: Format,
        /// Only this currency (ISO 4217).
        #[arg(long)]
        currency: Option<Currency>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = orderflow_core::telemetry::init("sales-reporting")?;
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => sales_reporting::run(sales_reporting::Settings::from_source(&Env)?).await?,
        Command::Migrate => {
            let database = DatabaseConfig::from_source(&Env, sales_reporting::DEFAULT_SCHEMA)?;
            db::migrate(&database, &sales_reporting::store::MIGRATOR).await?
        }
        Command::Report {
            month,
            format,
            currency,
        } => {
            let database = DatabaseConfig::from_source(&Env, sales_reporting::DEFAULT_SCHEMA)?;
            let report = sales_reporting::load_report(&database, month, currency.as_ref()).await?;
            print!("{}", report.render(format));
        }
    }
    Ok(())
}
