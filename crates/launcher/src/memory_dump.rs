//! Guest memory dumps (`virtctl memory-dump`, manual 3.2.2.7): QMP `dump-guest-memory`
//! into a file on the dump claim, run detached so the VM actor keeps serving commands; the
//! node agent follows it with `dumpstatus` (`query-dump`).

use oxivirt_qmp::QmpClient;
use serde_json::{json, Value};

/// Starts dumping the guest's memory (ELF, as `virsh dump --memory-only` writes it) to
/// `path`, which QEMU creates or truncates.
///
/// # Errors
/// QEMU's refusal, e.g. when a dump is already running or the file cannot be opened.
pub(crate) async fn start(qmp: &QmpClient, path: &str) -> Result<(), String> {
    check_path(path)?;
    qmp.execute(
        "dump-guest-memory",
        json!({"paging": false, "protocol": format!("file:{path}"), "detach": true}),
    )
    .await
    .map(drop)
    .map_err(|e| format!("dump-guest-memory to {path}: {e}"))
}

/// QEMU takes the path after `file:` as it is: it must be absolute and one line.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.contains(['\n', '\0']) {
        return Err(format!("memory dump path {path:?} is not an absolute path"));
    }
    Ok(())
}

/// `query-dump`: `{"status": "none|active|completed|failed", "completed", "total"}`.
///
/// # Errors
/// The QMP failure.
pub(crate) async fn status(qmp: &QmpClient) -> Result<Value, String> {
    qmp.execute("query-dump", None)
        .await
        .map_err(|e| format!("query-dump: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_absolute_single_line_paths_reach_qemu() {
        assert!(super::check_path("/pv/vm-pvc-20260101-000000.memory.dump").is_ok());
        assert!(super::check_path("dump.mem").is_err());
        assert!(super::check_path("/a\nb").is_err());
    }
}
