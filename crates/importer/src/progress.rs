//! Progress as the worker reports it: `<status dir>/progress` holds `NN.NN` (percent), which
//! the node writes to the claim's `cdi.kubevirt.io/storage.populator.progress`. 100 is held
//! back until the import is complete (conversion may still run), as CDI does.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writes less often than this only when the value changes by a whole percent.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Progress {
    path: Option<PathBuf>,
    last: Arc<Mutex<(Option<Instant>, f64)>>,
}

impl Progress {
    /// Progress written to `path`.
    pub fn to_file(path: PathBuf) -> Progress {
        Progress {
            path: Some(path),
            last: Arc::new(Mutex::new((None, -1.0))),
        }
    }

    /// Progress that goes nowhere.
    pub fn disabled() -> Progress {
        Progress {
            path: None,
            last: Arc::new(Mutex::new((None, -1.0))),
        }
    }

    /// `done` of `total` bytes (nothing when the total is unknown).
    pub fn bytes(&self, done: u64, total: Option<u64>) {
        if let Some(total) = total.filter(|t| *t > 0) {
            // Precision loss is irrelevant for a percentage.
            self.percent((done as f64 / total as f64 * 100.0).min(99.99));
        }
    }

    /// A percentage (clamped below 100 until [`Progress::complete`]).
    pub fn percent(&self, value: f64) {
        let value = value.clamp(0.0, 99.99);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let due = last.0.is_none_or(|t| t.elapsed() >= MIN_INTERVAL) || value - last.1 >= 1.0;
        if due && (value - last.1).abs() >= 0.01 {
            *last = (Some(Instant::now()), value);
            drop(last);
            self.write(&format!("{value:.2}"));
        }
    }

    /// The import finished.
    pub fn complete(&self) {
        self.write("100.00");
    }

    fn write(&self, text: &str) {
        let Some(path) = &self.path else { return };
        let tmp = path.with_extension("tmp");
        // Best effort: progress is informational; a failed write only delays the next one.
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}
