//! `qemu-img`: inspect, check, convert, resize and create images. Formats are always given
//! with `-f` (never probed: a raw image holding a qcow2 header must stay raw), and `info`
//! never opens backing files.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::progress::Progress;
use crate::Error;

const QEMU_IMG: &str = "qemu-img";
/// `info` and `check` read metadata only; longer means a hostile or broken image.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(120);

/// What `qemu-img info` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub format: String,
    pub virtual_size: u64,
    pub backing_file: Option<String>,
    pub data_file: Option<String>,
}

async fn run(
    args: &[&std::ffi::OsStr],
    what: &str,
    timeout: Option<Duration>,
) -> Result<(i32, String, String), Error> {
    let mut command = tokio::process::Command::new(QEMU_IMG);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|e| Error::Tool(format!("starting {QEMU_IMG} to {what}: {e}")))?;
    let output = match timeout {
        Some(t) => tokio::time::timeout(t, child.wait_with_output())
            .await
            .map_err(|_| {
                Error::Tool(format!(
                    "{QEMU_IMG} {what} took longer than {}s",
                    t.as_secs()
                ))
            })?,
        None => child.wait_with_output().await,
    }
    .map_err(|e| Error::Tool(format!("{QEMU_IMG} {what}: {e}")))?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).trim().to_string(),
    ))
}

/// `qemu-img info` of `path` read as `format`.
///
/// # Errors
/// [`Error::Invalid`] when qemu-img cannot read it.
pub async fn info(path: &Path, format: &str) -> Result<Info, Error> {
    let args = ["info", "--output=json", "-f", format].map(std::ffi::OsStr::new);
    let mut all: Vec<&std::ffi::OsStr> = args.to_vec();
    all.push(path.as_os_str());
    let (code, out, err) = run(&all, "inspect the image", Some(INSPECT_TIMEOUT)).await?;
    if code != 0 {
        return Err(Error::Invalid(format!("qemu-img: {err}")));
    }
    let json: Value = serde_json::from_str(&out)
        .map_err(|e| Error::Invalid(format!("qemu-img info output: {e}")))?;
    parse_info(&json)
        .ok_or_else(|| Error::Invalid("qemu-img info gave no format or virtual size".into()))
}

/// Reads the fields that matter from `qemu-img info --output=json`.
pub fn parse_info(json: &Value) -> Option<Info> {
    Some(Info {
        format: json["format"].as_str()?.to_string(),
        virtual_size: json["virtual-size"].as_u64()?,
        backing_file: json["backing-filename"]
            .as_str()
            .or_else(|| json["full-backing-filename"].as_str())
            .map(str::to_string),
        data_file: json
            .pointer("/format-specific/data/data-file")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// `qemu-img check` (qcow2 and other formats with metadata): corruption is refused, leaks
/// are harmless.
///
/// # Errors
/// [`Error::Invalid`] with qemu-img's words.
pub async fn check(path: &Path, format: &str) -> Result<(), Error> {
    if !matches!(format, "qcow2" | "vdi" | "vhdx" | "qed") {
        return Ok(());
    }
    let mut args: Vec<&std::ffi::OsStr> =
        ["check", "-f", format].map(std::ffi::OsStr::new).to_vec();
    args.push(path.as_os_str());
    let (code, out, err) = run(&args, "check the image", Some(INSPECT_TIMEOUT)).await?;
    match code {
        0 | 3 => Ok(()),
        _ => {
            let detail = if err.is_empty() {
                out.trim().to_string()
            } else {
                err
            };
            Err(Error::Invalid(format!(
                "image is corrupt or truncated: qemu-img: {}",
                first_line(&detail)
            )))
        }
    }
}

/// Converts `src` (as `format`) to a raw `dest`, reporting qemu-img's `-p` progress when
/// `progress` is given.
///
/// # Errors
/// [`Error::Convert`] with qemu-img's words.
/// Whether `path` is a block device (a Block-mode volume's loop device).
pub fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

pub async fn convert(
    src: &Path,
    format: &str,
    dest: &Path,
    preallocation: bool,
    progress: Option<&Progress>,
) -> Result<(), Error> {
    let mut command = tokio::process::Command::new(QEMU_IMG);
    command.args([
        "convert",
        "-t",
        "writeback",
        "-p",
        "-f",
        format,
        "-O",
        "raw",
    ]);
    if is_block_device(dest) {
        // A Block volume's device exists and is not created (nor preallocated) by qemu-img.
        command.arg("-n");
    } else if preallocation {
        command.args(["-o", "preallocation=falloc"]);
    }
    command
        .arg(src)
        .arg(dest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| Error::Convert(format!("starting {QEMU_IMG}: {e}")))?;
    let mut stderr = child.stderr.take();
    if let Some(mut stdout) = child.stdout.take() {
        let mut buf = [0u8; 4096];
        let mut line = String::new();
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
            line.push_str(&String::from_utf8_lossy(&buf[..n]));
            // `-p` prints "    (45.34/100%)\r": report the last complete figure.
            while let Some(end) = line.find('\r').or_else(|| line.find('\n')) {
                let piece: String = line.drain(..=end).collect();
                if let (Some(p), Some(progress)) = (parse_progress(&piece), progress) {
                    progress.percent(p);
                }
            }
        }
    }
    let status = child
        .wait()
        .await
        .map_err(|e| Error::Convert(format!("waiting for {QEMU_IMG}: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    if let Some(stderr) = stderr.as_mut() {
        let _ = stderr.read_to_string(&mut text).await;
    }
    Err(Error::Convert(format!("qemu-img: {}", text.trim())))
}

/// The first line of a long tool report, with how many lines follow (a corrupt image can
/// make `qemu-img check` print thousands; a condition message needs the gist).
pub fn first_line(text: &str) -> String {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().unwrap_or_default().trim().to_string();
    match lines.count() {
        0 => first,
        more => format!("{first} (and {more} more lines)"),
    }
}

/// The percentage in one `qemu-img -p` line (`(45.34/100%)`).
pub fn parse_progress(line: &str) -> Option<f64> {
    let start = line.find('(')? + 1;
    let end = line[start..].find("/100%")? + start;
    line[start..end].trim().parse().ok()
}

/// Grows a raw image to `size` bytes.
///
/// # Errors
/// [`Error::Convert`] with qemu-img's words.
pub async fn resize(path: &Path, size: u64, preallocation: bool) -> Result<(), Error> {
    let size = size.to_string();
    let mut args: Vec<&std::ffi::OsStr> =
        ["resize", "-f", "raw"].map(std::ffi::OsStr::new).to_vec();
    if preallocation {
        args.push(std::ffi::OsStr::new("--preallocation=falloc"));
    }
    args.push(path.as_os_str());
    args.push(std::ffi::OsStr::new(&size));
    let (code, _, err) = run(&args, "resize the image", None).await?;
    if code != 0 {
        return Err(Error::Convert(format!("qemu-img resize: {err}")));
    }
    Ok(())
}

/// Creates a raw image of `size` bytes.
///
/// # Errors
/// [`Error::Convert`] with qemu-img's words.
pub async fn create(path: &Path, size: u64, preallocation: bool) -> Result<(), Error> {
    let size = size.to_string();
    let mut args: Vec<&std::ffi::OsStr> =
        ["create", "-f", "raw"].map(std::ffi::OsStr::new).to_vec();
    if preallocation {
        args.extend(["-o", "preallocation=falloc"].map(std::ffi::OsStr::new));
    }
    args.push(path.as_os_str());
    args.push(std::ffi::OsStr::new(&size));
    let (code, _, err) = run(&args, "create the image", None).await?;
    if code != 0 {
        return Err(Error::Convert(format!("qemu-img create: {err}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_reports_shrink_to_their_first_line() {
        assert_eq!(
            first_line("ERROR: a\nERROR: b\nERROR: c"),
            "ERROR: a (and 2 more lines)"
        );
        assert_eq!(first_line("one"), "one");
    }

    #[test]
    fn progress_lines_parse() {
        assert_eq!(parse_progress("    (45.34/100%)\r"), Some(45.34));
        assert_eq!(parse_progress("(100.00/100%)"), Some(100.0));
        assert_eq!(parse_progress("nothing"), None);
    }

    #[test]
    fn info_reports_backing_and_data_files() {
        let info = parse_info(
            &json!({"format": "qcow2", "virtual-size": 1024, "backing-filename": "/etc/passwd",
            "format-specific": {"type": "qcow2", "data": {"data-file": "/dev/sda"}}}),
        )
        .unwrap();
        assert_eq!(info.backing_file.as_deref(), Some("/etc/passwd"));
        assert_eq!(info.data_file.as_deref(), Some("/dev/sda"));
    }
}
