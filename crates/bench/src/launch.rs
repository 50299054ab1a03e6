//! `--start BIN`: run a private `oxivirt server` for the measurement, killed at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use http::Method;

use crate::client::Conn;
use crate::kubeconfig::Target;

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A server started by the benchmark.
pub struct Launched {
    child: Child,
    /// The admin kubeconfig it wrote.
    pub kubeconfig: PathBuf,
    /// Its log file.
    pub log: PathBuf,
}

impl Launched {
    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }

    /// Starts `bin server --data-dir data_dir --listen 127.0.0.1:0` and waits until its
    /// kubeconfig exists and `/readyz` answers 200.
    ///
    /// # Errors
    /// When the process cannot start, exits, or is not ready within a minute.
    pub async fn start(bin: &Path, data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let kubeconfig = data_dir.join("admin.kubeconfig");
        let _ = std::fs::remove_file(&kubeconfig);
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log).context("cannot create the server log")?;
        let child = Command::new(bin)
            .arg("server")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut launched = Self {
            child,
            kubeconfig,
            log,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = launched.child.try_wait()? {
                bail!(
                    "server exited with {status}; log: {}",
                    launched.log.display()
                );
            }
            if launched.kubeconfig.exists() && launched.ready().await {
                return Ok(launched);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "server not ready within {READY_TIMEOUT:?}; log: {}",
            launched.log.display()
        )
    }

    async fn ready(&self) -> bool {
        let Ok(target) = Target::from_kubeconfig(&self.kubeconfig) else {
            return false;
        };
        let Ok(mut conn) = Conn::connect(&Arc::new(target)).await else {
            return false;
        };
        matches!(conn.send(Method::GET, "/readyz", None).await, Ok((status, _)) if status.is_success())
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
