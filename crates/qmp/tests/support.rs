//! Shared helpers: temporary socket paths and skipping with a printed reason.

use std::path::{Path, PathBuf};

/// A temporary directory with short socket paths (Unix socket paths are limited to 108 bytes).
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("oxivirt-qmp-")
            .tempdir_in("/tmp")
            .expect("create temp dir");
        Sandbox { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The path of `program` in `PATH`, or `None` after printing why the test is skipped.
pub fn find_program(program: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        eprintln!("SKIPPED {test}: {program} is not installed");
    }
    found
}
