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
    // Log lines go to stderr from a writer thread, never from a worker (src/logging.rs).
    let log = uringcast::logging::init(config.runtime.log_queue_lines);
    // SIGHUP reads the same file with the same flags again.
    let result = uringcast::server::run(config, || Config::load(&cli));
    // Write out the queued lines first, so the error below is the last line.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uringcast: {e}");
            ExitCode::from(1)
        }
    }
}
