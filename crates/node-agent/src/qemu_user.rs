//! Which user QEMU runs as. Upstream runs QEMU as `qemu` (107:107), never as root; so do we
//! whenever the host allows it (issue 4, design 0004 "unprivileged QEMU"). The launcher stays
//! root (it builds the Pod's files and talks to the agent) and hands QEMU only what it needs:
//! its run directory, its tap devices, its disks.
//!
//! The host allows it when uid 107 can reach `<data-dir>/pods/…` (every directory above the
//! data directory lets others through) and open `/dev/net/tun` (Debian's udev makes it
//! `0666`; a host without udev gets that mode set here). Otherwise QEMU runs as the agent's
//! user and the reason is logged; `OXIVIRT_QEMU_USER=root` asks for that explicitly and
//! `OXIVIRT_QEMU_USER=UID[:GID]` picks another user.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Upstream's `qemu` user and group.
pub(crate) const QEMU_UID: u32 = 107;
/// See [`QEMU_UID`].
pub(crate) const QEMU_GID: u32 = 107;

/// `nogroup`.
const NOGROUP: u32 = 65534;

const TUN: &str = "/dev/net/tun";

/// The uid and gid QEMU runs as, or `None` for the agent's own user, with why.
pub(crate) fn decide(data_dir: &Path) -> (Option<(u32, u32)>, String) {
    let wanted = match std::env::var("OXIVIRT_QEMU_USER").ok().as_deref() {
        Some("root") => return (None, "OXIVIRT_QEMU_USER=root".into()),
        Some(text) => match parse_user(text) {
            Some(user) => user,
            None => {
                return (
                    None,
                    format!("OXIVIRT_QEMU_USER={text:?} is neither root nor UID[:GID]"),
                )
            }
        },
        None => (
            QEMU_UID,
            default_gid(&std::fs::read_to_string("/etc/group").unwrap_or_default()),
        ),
    };
    if !rustix::process::geteuid().is_root() {
        return (
            None,
            "the agent is not root, so QEMU runs as the agent's own user".into(),
        );
    }
    if let Err(why) = reachable(data_dir).and_then(|()| tun_usable()) {
        return (None, why);
    }
    (
        Some(wanted),
        format!("QEMU runs as uid {} gid {}", wanted.0, wanted.1),
    )
}

/// Upstream's group 107, unless the host gave 107 to a group of its own (Debian's swtpm
/// makes it `tss`, which opens the host's TPM): then `nogroup`, which opens nothing.
fn default_gid(etc_group: &str) -> u32 {
    let taken = etc_group.lines().any(|line| {
        let mut fields = line.split(':');
        let name = fields.next().unwrap_or_default();
        fields.nth(1) == Some("107") && name != "qemu"
    });
    if taken {
        NOGROUP
    } else {
        QEMU_GID
    }
}

fn parse_user(text: &str) -> Option<(u32, u32)> {
    let (uid, gid) = match text.split_once(':') {
        Some((uid, gid)) => (uid.parse().ok()?, gid.parse().ok()?),
        None => {
            let uid = text.parse().ok()?;
            (uid, uid)
        }
    };
    (uid != 0).then_some((uid, gid))
}

/// Opens the data directory for traversal (`0711`: its files stay private) and checks every
/// directory above it lets others through.
fn reachable(data_dir: &Path) -> Result<(), String> {
    let data_dir = std::fs::canonicalize(data_dir)
        .map_err(|e| format!("cannot resolve {}: {e}", data_dir.display()))?;
    for dir in data_dir.ancestors().skip(1) {
        let mode = std::fs::metadata(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "QEMU runs as root: {} (mode {:o}) does not let uid {QEMU_UID} reach the \
                 data directory; make it traversable (chmod o+x) to run QEMU unprivileged",
                dir.display(),
                mode & 0o7777
            ));
        }
    }
    open_for_traversal(&data_dir)?;
    open_for_traversal(&data_dir.join("pods"))
}

fn open_for_traversal(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o001 == 0 {
        std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode((mode & 0o7777) | 0o001),
        )
        .map_err(|e| format!("cannot make {} traversable: {e}", dir.display()))?;
    }
    Ok(())
}

/// QEMU opens `/dev/net/tun` to attach to its (already created, 107-owned) taps.
fn tun_usable() -> Result<(), String> {
    let meta = match std::fs::metadata(TUN) {
        Ok(meta) => meta,
        // No tun device: no pod network either, nothing to open.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {TUN}: {e}")),
    };
    let mode = meta.permissions().mode();
    if mode & 0o006 == 0o006 {
        return Ok(());
    }
    // udev's default on Debian (50-udev-default.rules); creating or taking over a tap still
    // needs CAP_NET_ADMIN or the tap's owner, so this opens nothing else.
    std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(0o666)).map_err(|e| {
        format!("QEMU runs as root: {TUN} is mode {mode:o} and cannot be opened to others: {e}")
    })
}

/// Hands `path` to QEMU's user (disks it writes, its run directory).
///
/// # Errors
/// The `chown` error, naming the path.
pub(crate) fn hand_over(path: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("cannot give {} to uid {uid}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_107_is_used_unless_the_host_gave_it_to_another_group() {
        assert_eq!(default_gid("root:x:0:\nqemu:x:107:\n"), 107);
        assert_eq!(default_gid("root:x:0:\n"), 107);
        assert_eq!(default_gid("root:x:0:\ntss:x:107:\n"), NOGROUP);
    }

    #[test]
    fn users_parse_as_uid_and_optional_gid_but_never_root() {
        assert_eq!(parse_user("107"), Some((107, 107)));
        assert_eq!(parse_user("1000:100"), Some((1000, 100)));
        assert_eq!(parse_user("0"), None);
        assert_eq!(parse_user("qemu"), None);
        assert_eq!(parse_user("1:x"), None);
    }

    #[test]
    fn a_private_parent_directory_keeps_qemu_privileged_and_says_which() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = parent.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let why = reachable(&data).unwrap_err();
        assert!(why.contains(&parent.path().display().to_string()), "{why}");
    }

    #[test]
    fn a_reachable_data_directory_is_opened_for_traversal_only() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(parent.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let data = parent.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Ancestors of the temp dir (/tmp) are world-traversable on every Linux.
        reachable(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o701);
        assert!(data.join("pods").is_dir());
    }
}
