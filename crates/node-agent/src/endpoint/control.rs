//! Relaying a VM command to the launcher's `control.sock` (design 0004) for the endpoint:
//! the agent's own control client with a longer wait and the reply passed on as it is.

use std::time::Duration;

use serde_json::Value;

use crate::rundir::RunDir;

/// How long a launcher may take to answer; pause and reset answer in milliseconds, but a
/// soft reboot or a filesystem freeze may wait for the guest agent.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` to the launcher of `dir` and returns its reply (`{"ok": false, …}`
/// included, for the caller to map).
///
/// # Errors
/// A message naming the socket when it cannot be reached or answers nonsense.
pub(crate) async fn send(dir: &RunDir, request: &Value) -> Result<Value, String> {
    crate::launcher::exchange(dir, request, REPLY_TIMEOUT)
        .await
        .map_err(|e| {
            format!(
                "cannot reach the launcher at {}: {e}",
                dir.file("control.sock").display()
            )
        })
}
