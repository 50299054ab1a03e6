//! `virtctl`: parse the command line, validate it into a [`Plan`], run it, and map the
//! outcome to a documented exit code (see `virtctl --help` or `crates/cli/README.md`).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use oxivirt_cli::error::{chain, EXIT_OK, EXIT_USAGE};
use oxivirt_cli::{Cli, Plan};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and errors to stderr.
            let code = if err.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    init_logging(cli.global.verbosity.unwrap_or(0));

    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    // Unlocked handles (each write locks briefly): streaming commands write from runtime
    // threads too (relayed output, log lines), which a lock held here would block forever.
    let result = Plan::from_cli(cli).and_then(|plan| plan.run(&mut &stdout, &mut &stderr));
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(err) => {
            let _ = writeln!(stderr.lock(), "Error: {}", chain(&err));
            ExitCode::from(err.exit_code())
        }
    }
}

/// Diagnostics go to stderr; `-v` picks how many, like upstream's klog levels:
/// 0–1 warnings, 2–3 info, 4–5 debug (request details), 6 and above trace.
fn init_logging(verbosity: u8) {
    let level = match verbosity {
        0..=1 => "warn",
        2..=3 => "info",
        4..=5 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIRTCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
