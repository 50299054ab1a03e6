//! Relaying a VM command to the launcher's `control.sock` (design 0004): one JSON line in,
//! one JSON line out.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// How long a launcher may take to answer; pause and reset answer in milliseconds, but a
/// soft reboot may wait for the guest agent.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` to the `control.sock` at `socket` and returns the launcher's reply.
///
/// # Errors
/// A message naming the socket when it cannot be reached or answers nonsense.
pub(crate) async fn send(socket: &Path, request: &Value) -> Result<Value, String> {
    let exchange = async {
        let stream = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("cannot reach the launcher at {}: {e}", socket.display()))?;
        let (read, mut write) = stream.into_split();
        let mut line = request.to_string();
        line.push('\n');
        write
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("cannot write to {}: {e}", socket.display()))?;
        let mut reply = String::new();
        BufReader::new(read)
            .read_line(&mut reply)
            .await
            .map_err(|e| format!("cannot read from {}: {e}", socket.display()))?;
        serde_json::from_str::<Value>(&reply)
            .map_err(|e| format!("the launcher answered {reply:?}: {e}"))
    };
    tokio::time::timeout(REPLY_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!(
                "the launcher at {} did not answer within {REPLY_TIMEOUT:?}",
                socket.display()
            )
        })?
}
