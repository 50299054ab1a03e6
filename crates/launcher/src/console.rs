//! The serial console: the launcher is the only client of QEMU's serial socket. It appends
//! everything the guest prints to `console.log` (bounded: past 1 MiB the file is cut to
//! its last 512 KiB, in place) and relays the stream to clients of `console.sock`, whose
//! keystrokes go back to the guest.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// `console.log` is cut when it grows past this...
pub const LOG_LIMIT: u64 = 1 << 20;
/// ...to its last this many bytes.
pub const LOG_KEEP: u64 = 512 << 10;

/// An append-only log file bounded to [`LOG_LIMIT`].
#[derive(Debug)]
pub struct ConsoleLog {
    file: File,
    len: u64,
    limit: u64,
    keep: u64,
}

impl ConsoleLog {
    /// Opens (or creates) `path` for appending.
    ///
    /// # Errors
    /// [`Error::WriteFile`] if it cannot be opened.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_bounded(path, LOG_LIMIT, LOG_KEEP)
    }

    fn open_bounded(path: &Path, limit: u64, keep: u64) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::write(path, e))?;
        let len = file.metadata().map_err(|e| Error::write(path, e))?.len();
        Ok(ConsoleLog {
            file,
            len,
            limit,
            keep,
        })
    }

    /// Appends `bytes`, cutting the file to its tail when it passes the limit.
    ///
    /// # Errors
    /// The I/O error of the write or the cut.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        if self.len > self.limit {
            let mut tail = Vec::new();
            self.file.seek(SeekFrom::Start(self.len - self.keep))?;
            (&self.file).take(self.keep).read_to_end(&mut tail)?;
            // With O_APPEND every write lands at the end, so truncate first, then rewrite.
            self.file.set_len(0)?;
            self.file.write_all(&tail)?;
            self.len = tail.len() as u64;
        }
        Ok(())
    }
}

/// The running console relay; it ends when QEMU closes the serial socket.
#[derive(Debug)]
pub struct Console {
    task: JoinHandle<()>,
    listener: JoinHandle<()>,
    sock: PathBuf,
}

impl Console {
    /// Connects to QEMU's serial socket, then starts logging and serving `console.sock`.
    ///
    /// # Errors
    /// [`Error::Socket`] if either socket cannot be opened, [`Error::WriteFile`] if the log
    /// cannot be opened.
    pub async fn start(serial: &Path, log: &Path, sock: &Path) -> Result<Console> {
        let stream = connect_retrying(serial).await?;
        let log = ConsoleLog::open(log)?;
        let _ = std::fs::remove_file(sock);
        let listener = UnixListener::bind(sock).map_err(|source| Error::Socket {
            path: sock.to_owned(),
            source,
        })?;
        let (output, _) = broadcast::channel::<Vec<u8>>(256);
        let (input_tx, input_rx) = mpsc::channel::<Vec<u8>>(64);
        let task = tokio::spawn(pump(stream, log, output.clone(), input_rx));
        let listener = tokio::spawn(serve(listener, output, input_tx));
        Ok(Console {
            task,
            listener,
            sock: sock.to_owned(),
        })
    }

    /// Waits up to `timeout` for the guest's last output to reach the log (QEMU closes the
    /// socket when it exits), then stops serving clients.
    pub async fn finish(self, timeout: Duration) {
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::warn!("serial console did not close in time");
        }
        self.listener.abort();
        let _ = std::fs::remove_file(&self.sock);
    }
}

async fn connect_retrying(path: &Path) -> Result<UnixStream> {
    let mut attempts = 0;
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(_) if attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => {
                return Err(Error::Socket {
                    path: path.to_owned(),
                    source,
                })
            }
        }
    }
}

/// Serial → log + clients; clients → serial.
async fn pump(
    stream: UnixStream,
    mut log: ConsoleLog,
    output: broadcast::Sender<Vec<u8>>,
    mut input: mpsc::Receiver<Vec<u8>>,
) {
    let (mut read, mut write) = stream.into_split();
    let mut buffer = vec![0u8; 16 << 10];
    loop {
        tokio::select! {
            read = read.read(&mut buffer) => match read {
                Ok(0) => break,
                Ok(n) => {
                    if let Err(error) = log.append(&buffer[..n]) {
                        tracing::warn!(%error, "cannot write console.log");
                    }
                    // No clients is fine.
                    let _ = output.send(buffer[..n].to_vec());
                }
                Err(error) => {
                    tracing::warn!(%error, "serial console read failed");
                    break;
                }
            },
            Some(keys) = input.recv() => {
                if let Err(error) = write.write_all(&keys).await {
                    tracing::warn!(%error, "serial console write failed");
                }
            }
        }
    }
}

async fn serve(
    listener: UnixListener,
    output: broadcast::Sender<Vec<u8>>,
    input: mpsc::Sender<Vec<u8>>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                tracing::warn!(%error, "console.sock accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut from_guest = output.subscribe();
        let to_guest = input.clone();
        tokio::spawn(async move {
            let (mut read, mut write) = client.into_split();
            let mut buffer = vec![0u8; 4096];
            loop {
                tokio::select! {
                    chunk = from_guest.recv() => match chunk {
                        Ok(chunk) => if write.write_all(&chunk).await.is_err() { break },
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    keys = read.read(&mut buffer) => match keys {
                        Ok(0) | Err(_) => break,
                        Ok(n) => if to_guest.send(buffer[..n].to_vec()).await.is_err() { break },
                    },
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_is_cut_to_its_tail_past_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        let mut log = ConsoleLog::open_bounded(&path, 100, 40).expect("open");
        for line in 0..30 {
            log.append(format!("line{line:02}\n").as_bytes())
                .expect("append");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.len() <= 100, "{} bytes", text.len());
        assert!(text.ends_with("line29\n"), "{text:?}");
        assert!(!text.contains("line00"));
    }

    #[test]
    fn reopened_log_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("console.log");
        ConsoleLog::open(&path)
            .expect("open")
            .append(b"a")
            .expect("a");
        ConsoleLog::open(&path)
            .expect("open")
            .append(b"b")
            .expect("b");
        assert_eq!(std::fs::read(&path).expect("read"), b"ab");
    }
}
