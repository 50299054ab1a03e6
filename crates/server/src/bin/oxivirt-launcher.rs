//! `oxivirt-launcher --run-dir DIR`: one virtual machine, spawned by the node agent (the same
//! role as `oxivirt launcher`). A binary of its own because one runs per VM: it links only the
//! launcher, so each VM's management process maps a few MiB of code instead of the whole
//! server's (design 0004, issue 4's memory-per-VM figure).

use std::path::PathBuf;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

const USAGE: &str = "usage: oxivirt-launcher --run-dir DIR";

fn run_dir() -> Result<PathBuf, String> {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(flag), Some(dir), None) if flag == "--run-dir" => Ok(PathBuf::from(dir)),
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let run_dir = match run_dir() {
        Ok(dir) => dir,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_env("OXIVIRT_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,oxivirt_launcher=info,oxivirt_network=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    // One launcher per VM: a single-threaded runtime keeps its footprint small.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(oxivirt_launcher::run(&run_dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
