use notifications::mailer::{self, MailerSettings};
use orderflow_core::config::Env;
use orderflow_core::db::{self, DatabaseConfig};
use orderflow_core::service::{self, ServiceCommand};

#[global_allocator]
static ALLOCATOR: orderflow_core::Allocator = orderflow_core::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = service::command(
        "mailer",
        "Sends the queued e-mails over SMTP, each exactly once.",
    );
    let _telemetry = orderflow_core::telemetry::init("mailer")?;
    match command {
        ServiceCommand::Run => {
            let settings = MailerSettings::from_source(&Env)?;
            mailer::run(settings, orderflow_core::shutdown::signal()).await?
        }
        // The mailer shares the notifications schema and its migrations.
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
