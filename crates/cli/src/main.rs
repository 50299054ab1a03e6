//! `virtctl`: the KubeVirt command-line client. For now it reports its version; the
//! subcommands arrive with the issues that give them something to drive.

use clap::Parser;

/// Command-line flags of `virtctl`.
#[derive(Parser)]
#[command(name = "virtctl", version, about = "virtctl controls KubeVirt virtual machines on oxivirt")]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!("virtctl {}", env!("CARGO_PKG_VERSION"));
}
