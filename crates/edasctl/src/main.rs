//! `edasctl`: the edasd command-line tool. One module per command group under `cmd`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod edas_error;

/// The edasd command-line tool.
#[derive(Debug, Parser)]
#[command(name = "edasctl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Render(cmd::render::RenderArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => cmd::render::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("edasctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
