//! The CDI worker (`oxivirt importer`): imports one disk image into one volume, as CDI's
//! importer Pod does, refusing hostile images.
//!
//! **Owns**: the bytes of the target volume's `disk.img` during an import, and the worker's
//! status directory (`progress`, `termination-log`, scratch space).
//! **Must not**: talk to the API server (the node's worker runner reports for it) or be
//! linked into the API server.
//! **Talks to**: HTTP(S) servers and OCI registries; `qemu-img`, `gzip`, `xz`, `zstd`.

mod config;
mod format;
mod http;
mod multipart;
mod process;
mod progress;
mod qemu;
mod registry;
mod transfer;
mod upload;

use std::process::ExitCode;

pub use config::{Config, Source};
pub use format::{detect, Detected};

/// Why an import failed; the text is the worker's termination message, which the
/// DataVolume's `Running` condition shows (upstream's wording).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The environment describes no valid import.
    #[error("invalid importer configuration")]
    Config(#[from] config::Error),
    /// The HTTP source could not be read (connection, TLS, status).
    #[error("Unable to connect to http data source: {0}")]
    Connect(String),
    /// The CA bundle could not be loaded.
    #[error("Unable to connect to http data source: invalid CA certificates: {0}")]
    Tls(String),
    /// Moving the bytes failed.
    #[error("Unable to process data: Unable to transfer source data to scratch space: {0}")]
    Transfer(String),
    /// The data is larger than the volume can hold.
    #[error("Unable to process data: Unable to transfer source data to scratch space: the image data exceeds {limit} bytes, more than the volume can hold. A larger PVC is required")]
    TooLarge { limit: u64 },
    /// The image is refused (format, backing file, data file, corruption).
    #[error("Unable to process data: {0}")]
    Invalid(String),
    /// Conversion, resize or creation failed.
    #[error("Unable to process data: Unable to convert source data to target format: {0}")]
    Convert(String),
    /// A helper program could not run.
    #[error("Unable to process data: {0}")]
    Tool(String),
}

/// `oxivirt importer`: reads the environment, imports, writes the termination message, and
/// exits 0 on success, 1 on failure (the worker Pod is then restarted per its policy).
pub async fn main() -> ExitCode {
    watch_parent();
    let config = match Config::from_lookup(|k| std::env::var(k).ok()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match config.source {
        Source::Upload => upload::serve(&config).await,
        _ => process::import(&config).await,
    };
    let message = match &result {
        Ok(()) if config.source == Source::Upload => "Upload Complete".to_string(),
        Ok(()) => "Import Complete".to_string(),
        Err(e) => e.to_string(),
    };
    let _ = std::fs::write(config.status_dir.join("termination-log"), &message);
    match result {
        Ok(()) => {
            tracing::info!("import complete");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Exits when the process that started us (the node agent) dies, so a restarted agent
/// never finds an orphaned import still writing the volume it is about to import again.
fn watch_parent() {
    let parent = rustix::process::getppid();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        if rustix::process::getppid() != parent {
            eprintln!("error: the node agent that started this import is gone; stopping");
            std::process::exit(1);
        }
    });
}
