use notifications::mailer::{self, MailerSettings};
use orderflow_core::config::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = orderflow_core::telemetry::init("mailer")?;
    let settings = MailerSettings::from_source(&Env)?;
    mailer::run(settings, orderflow_core::shutdown::signal()).await?;
    Ok(())
}
