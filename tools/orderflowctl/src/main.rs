//! `orderflowctl`: see the library for the commands.

use std::process::ExitCode;

use clap::Parser;
use orderflowctl::Cli;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match orderflowctl::run(cli, &mut std::io::stdout()).await {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`orderflowctl lag | head`): nothing left to tell anyone.
        Err(orderflowctl::Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(e) => {
            if json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            eprintln!("orderflowctl: {e}");
            ExitCode::FAILURE
        }
    }
}
