//! The command line the service binaries share: `run` (the default: serve until SIGTERM) or
//! `migrate` (create the schema and run the migrations, then exit). Services take their settings
//! from the environment only; the command says what to do with them.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
struct ServiceCli {
    #[command(subcommand)]
    command: Option<ServiceCommand>,
}

/// What a service binary was asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ServiceCommand {
    /// Run the service until SIGTERM (the default).
    Run,
    /// Create the database schema and run the migrations, then exit; needs only
    /// ORDERFLOW_DATABASE_URL (and ORDERFLOW_DATABASE_SCHEMA to override the schema).
    Migrate,
}

/// Parses the process's arguments for the service `name`, described by `about` in `--help`;
/// exits with clap's message on a wrong argument, as every command line does.
pub fn command(name: &'static str, about: &'static str) -> ServiceCommand {
    parse(name, about, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

fn parse(
    name: &'static str,
    about: &'static str,
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<ServiceCommand, clap::Error> {
    let matches = ServiceCli::command()
        .name(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .try_get_matches_from(args)?;
    let cli = ServiceCli::from_arg_matches(&matches)?;
    Ok(cli.command.unwrap_or(ServiceCommand::Run))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_is_the_default_and_migrate_is_a_command() {
        let parse = |args: &[&str]| parse("svc", "a service", args.iter().copied());
        assert_eq!(parse(&["svc"]).unwrap(), ServiceCommand::Run);
        assert_eq!(parse(&["svc", "run"]).unwrap(), ServiceCommand::Run);
        assert_eq!(parse(&["svc", "migrate"]).unwrap(), ServiceCommand::Migrate);
        let wrong = parse(&["svc", "migrat"]).unwrap_err().to_string();
        assert!(wrong.contains("migrat"), "{wrong}");
        let help = parse(&["svc", "--help"]).unwrap_err().to_string();
        assert!(
            help.contains("a service") && help.contains("migrate"),
            "{help}"
        );
    }
}
