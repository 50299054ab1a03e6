//! Finding the binaries under test: the `oxivirt` server built by Cargo and `kubectl`.
//!
//! `CARGO_BIN_EXE_oxivirt` only exists for tests of the package that owns the binary, so the
//! e2e crate looks for it in the target directory instead, in this order:
//!
//! 1. `OXIVIRT_BIN` (`OXIVIRT_BENCH_BIN` for the benchmark, `VIRTCTL_BIN` for `virtctl`), if
//!    set (an explicit override always wins);
//! 2. the profile directory of the running test binary (`<target>/<profile>/deps/tests-…` →
//!    `<target>/<profile>/oxivirt`), so `cargo test --release` uses the release server and
//!    `CARGO_TARGET_DIR` is honoured without reading it;
//! 3. `$CARGO_TARGET_DIR/{release,debug}/oxivirt`, then `<repo>/target/{release,debug}/oxivirt`,
//!    the most recently built one first.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("../..")
}

/// The shared reference folder that sits next to the clone (`<repo>/../shared`), as on CI.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("OXIVIRT_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

/// The `kubectl` to run: `KUBECTL` if set, else `/usr/bin/kubectl`, else whatever is on `PATH`.
pub fn kubectl_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return path.into();
    }
    let usr_bin = Path::new("/usr/bin/kubectl");
    if usr_bin.exists() {
        usr_bin.to_path_buf()
    } else {
        PathBuf::from("kubectl")
    }
}

/// The `oxivirt` server binary to test.
///
/// # Panics
/// When no built binary is found; the message says how to build one.
pub fn oxivirt_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| locate("oxivirt", "OXIVIRT_BIN", "oxivirt-server"))
        .clone()
}

/// The `oxivirt-bench` binary (found like [`oxivirt_bin`], override `OXIVIRT_BENCH_BIN`).
///
/// # Panics
/// When no built binary is found; the message says how to build one.
pub fn bench_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| locate("oxivirt-bench", "OXIVIRT_BENCH_BIN", "oxivirt-bench"))
        .clone()
}

fn locate(name: &str, override_var: &str, package: &str) -> PathBuf {
    match find(name, override_var) {
        Some(path) => {
            eprintln!("e2e: using {}", path.display());
            path
        }
        None => panic!(
            "{name} binary not found (looked next to the test binary, in $CARGO_TARGET_DIR \
             and in <repo>/target); build it first with \
             `cargo build -p {package} --bin {name}` (add --release for release tests) \
             or point {override_var} at it"
        ),
    }
}

fn find(name: &str, override_var: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(override_var) {
        return Some(path.into());
    }
    if let Some(beside) = beside_test_binary(name).filter(|p| p.is_file()) {
        return Some(beside);
    }
    let mut target_dirs = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        // Cargo resolves a relative CARGO_TARGET_DIR against its working directory, which for
        // the documented commands is the repository root.
        target_dirs.push(if dir.is_relative() {
            repo_root().join(dir)
        } else {
            dir
        });
    }
    target_dirs.push(repo_root().join("target"));
    target_dirs
        .iter()
        .flat_map(|dir| ["release", "debug"].map(|profile| dir.join(profile).join(name)))
        .filter(|p| p.is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// The `virtctl` binary of the `oxivirt-cli` package (found like [`oxivirt_bin`], override
/// `VIRTCTL_BIN`), so `virtctl create …` output can be piped into `kubectl apply`.
///
/// # Panics
/// When no built binary is found; the message says how to build one.
pub fn virtctl_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| locate("virtctl", "VIRTCTL_BIN", "oxivirt-cli"))
        .clone()
}

/// `<target>/<profile>/<name>` for the profile the test binary itself was built with.
fn beside_test_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.join(name))
}
