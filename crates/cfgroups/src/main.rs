//! The `cfgroups` binary: parse arguments, set up logging, run, map the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use cfgroups::cli::{self, Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(usage) => {
            // `--help` and `--version` land here too, on stdout; a closed pipe is no error.
            let _ = usage.print();
            return ExitCode::from(cli::usage_exit_code(&usage));
        }
    };
    // The daemon narrates its cycles; one-shot commands speak through their output.
    let default_level = match cli.command {
        Command::Run(_) => "info",
        _ => "warn",
    };
    init_tracing(cli.log_format, default_level);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(cli::run(cli)));
    if let Err(error) = &result {
        eprintln!("error: {}", cli::error_text(error));
    }
    ExitCode::from(cli::exit_code(&result))
}

fn init_tracing(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colour only for a person at a terminal: not in files, pipes or journald.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
