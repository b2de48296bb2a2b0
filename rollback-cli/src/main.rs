//! The `rollback` binary: parses the command line, runs the command, exits with its code
//! (see `rollback --help`).

mod args;
mod commands;
mod exit;
mod output;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => exit::OK,
                _ => exit::USAGE,
            };
            let _ = e.print();
            return std::process::ExitCode::from(code);
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rollback: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(exit::SOFTWARE);
        }
    };
    let mut printer = output::Printer::new(output::Mode::detect(cli.json));
    let agent = matches!(cli.command, args::Command::Agent { .. });
    let code = runtime.block_on(commands::dispatch(cli, &mut printer));
    if agent {
        // A read of stdin may still be pending on a blocking thread (the orchestrator left
        // without closing it): it cannot be cancelled, so do not wait for it.
        runtime.shutdown_background();
    }
    std::process::ExitCode::from(code)
}

/// The library's tracing to stderr: warnings by default, `-v` info, `-vv` debug.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        _ => tracing::Level::DEBUG,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
