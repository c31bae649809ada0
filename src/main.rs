//! `uringcast`: parse flags and configuration, then hand over to [`uringcast::server::run`].
//!
//! Exit codes: 0 after a clean shutdown (SIGINT/SIGTERM), 1 when the server cannot start
//! (port in use, io_uring unavailable), 2 for a bad flag or configuration value.

use std::process::ExitCode;

use clap::Parser;
use uringcast::config::{Cli, Config};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line names the flag and the problem.
            let text = e.to_string();
            let line = text.lines().next().unwrap_or("bad command line");
            eprintln!("uringcast: {line}");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("uringcast: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour only for a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match uringcast::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uringcast: {e}");
            ExitCode::from(1)
        }
    }
}
