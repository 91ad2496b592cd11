//! `hotline`: the command-line client. The commands are in `cli`; this
//! file starts the runtime, runs one and says how it ended.

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

mod cli;

fn main() -> ExitCode {
    // Output piped into `head` or a pager that closes early ends the
    // command quietly, as for any Unix tool, instead of a panic message
    // and a backtrace: Rust ignores SIGPIPE, so the next print fails, and
    // the workspace forbids the unsafe code that would restore it.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A command line not understood does nothing: for an SOS, the
            // person must hear that nobody was alerted.
            let _ = e.print();
            if e.use_stderr() && std::env::args().any(|a| a == "sos") {
                eprintln!(
                    "NOBODY HAS BEEN ALERTED: the command was not understood. Try again: hotline sos \"what is happening\""
                );
            }
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // Not an error: the command said what waits and why.
        Err(e) if e.downcast_ref::<cli::Queued>().is_some() => ExitCode::from(cli::EXIT_QUEUED),
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// line already holds (many errors quote their source).
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}
