use orderflow_core::config::Env;
use orderflow_core::db::{self, DatabaseConfig};
use orderflow_core::service::{self, ServiceCommand};

#[global_allocator]
static ALLOCATOR: orderflow_core::Allocator = orderflow_core::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = service::command(
        "notifications",
        "Renders each order's e-mails and queues them on RabbitMQ for the mailer.",
    );
    let _telemetry = orderflow_core::telemetry::init("notifications")?;
    match command {
        ServiceCommand::Run => {
            let settings = notifications::Settings::from_source(&Env)?;
            notifications::run(settings, orderflow_core::shutdown::signal()).await?
        }
        ServiceCommand::Migrate => {
            db::migrate(
                &DatabaseConfig::from_source(&Env, notifications::GROUP)?,
                &notifications::MIGRATOR,
            )
            .await?
        }
    }
    Ok(())
}
