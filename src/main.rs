//! The `postwarden` command: parses arguments and calls into the library.

mod cli;
mod cli_admin;
mod cli_api;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    postwarden::log::init(args.log_format);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("postwarden: {e:#}");
            ExitCode::from(1)
        }
    }
}
