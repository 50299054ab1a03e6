//! Golden tests: each `fixtures/<name>.yaml` VMI (plus an optional `<name>.launch.json`
//! with the rest of `launch.json`) must give exactly the argv in `fixtures/<name>.argv`,
//! one option (flag and value) per line, followed by `# file:` and `# note:` lines for the files to
//! create and the notes. Run with `OXIVIRT_BLESS=1` to rewrite the expected files.

use std::path::{Path, PathBuf};

use oxivirt_launcher::{qemu_config, FileToCreate, LaunchSpec, QemuCommand, RunPaths};
use serde_json::{json, Value};

fn fixtures() -> PathBuf {
    Path::new(
        &*std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
    )
    .join("tests/fixtures")
}

/// The fixed run directory golden files are written against.
const RUN_DIR: &str = "/var/lib/oxivirt/pods/tests_virt-launcher-golden_uid";

/// Every fixture, by file stem.
pub(crate) const FIXTURES: [&str; 12] = [
    "buses",
    "cloud-init",
    "config-disks",
    "kernel-boot",
    "nics",
    "persistent-state",
    "tpm",
    "vmi-alpine-efi",
    "vmi-ephemeral",
    "vmi-nocloud",
    "vmi-sata",
    "vmi-secureboot",
];

/// The `launch.json` of fixture `name`: its VMI, `accel: tcg`, every containerDisk pulled
/// into a node cache path, and whatever `<name>.launch.json` adds or replaces.
pub(crate) fn fixture_launch(name: &str) -> Value {
    let dir = fixtures();
    let yaml = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).expect("fixture");
    let vmi: Value = serde_yaml::from_str(&yaml).expect("fixture is YAML");
    let mut launch = json!({"accel": "tcg", "disks": {}});
    for volume in vmi["spec"]["volumes"].as_array().into_iter().flatten() {
        if volume.get("containerDisk").is_some() {
            let name = volume["name"].as_str().expect("volume name");
            launch["disks"][name] = json!({
                "path": format!("/var/lib/oxivirt/images/{name}/disk.qcow2"),
                "format": "qcow2", "ephemeral": true,
            });
        }
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.launch.json"))) {
        let extra: Value = serde_json::from_str(&text).expect("sidecar is JSON");
        for (key, value) in extra.as_object().expect("sidecar object") {
            launch[key] = value.clone();
        }
    }
    launch["vmi"] = vmi;
    launch
}

fn launch_spec(name: &str) -> LaunchSpec {
    let launch = fixture_launch(name);
    LaunchSpec::from_json(Path::new(name), &launch.to_string()).expect("launch spec")
}

fn render(command: &QemuCommand) -> String {
    // One option per line: a flag and its value share a line, for reading.
    let mut lines = vec![command.program.clone()];
    let mut args = command.args.iter().peekable();
    while let Some(arg) = args.next() {
        match args.peek() {
            Some(value) if arg.starts_with('-') && !value.starts_with('-') => {
                lines.push(format!("{arg} {value}"));
                args.next();
            }
            _ => lines.push(arg.clone()),
        }
    }
    for file in &command.files {
        lines.push(match file {
            FileToCreate::Overlay {
                path,
                backing,
                backing_format,
            } => format!(
                "# file: overlay {} over {} ({backing_format})",
                path.display(),
                backing.display()
            ),
            FileToCreate::EmptyDisk { path, size } => {
                format!("# file: empty qcow2 {} of {size} bytes", path.display())
            }
            FileToCreate::RawIfMissing { path, size } => {
                format!("# file: raw {} of {size} bytes if missing", path.display())
            }
            FileToCreate::CopyOf { path, source } => {
                format!("# file: copy {} from {}", path.display(), source.display())
            }
            FileToCreate::CopyIfMissing { path, source } => format!(
                "# file: copy {} from {} if missing",
                path.display(),
                source.display()
            ),
            FileToCreate::IsoOfDirectory {
                path,
                label,
                source,
            } => format!(
                "# file: iso {} label {label} of {}",
                path.display(),
                source.display()
            ),
            FileToCreate::Seed { path, image } => {
                let names: Vec<&str> = image.files.iter().map(|f| f.path.as_str()).collect();
                format!(
                    "# file: seed {} label {} with {}",
                    path.display(),
                    image.label,
                    names.join(" ")
                )
            }
        });
    }
    for note in &command.notes {
        lines.push(format!("# note: {note}"));
    }
    lines.join("\n") + "\n"
}

/// A line diff (longest common subsequence), `-` expected, `+` actual.
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

fn check(name: &str) {
    let spec = launch_spec(name);
    let command = qemu_config(&spec, &RunPaths::new(RUN_DIR)).expect("qemu_config");
    let actual = render(&command);
    let path = fixtures().join(format!("{name}.argv"));
    if std::env::var_os("OXIVIRT_BLESS").is_some() {
        std::fs::write(&path, &actual).expect("bless");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "argv for {name} differs from {} (- expected, + actual; OXIVIRT_BLESS=1 rewrites):\n{}",
        path.display(),
        diff(&expected, &actual)
    );
}

#[test]
fn upstream_vmi_ephemeral_gives_golden_argv() {
    check("vmi-ephemeral");
}

#[test]
fn upstream_vmi_alpine_efi_gives_golden_argv() {
    check("vmi-alpine-efi");
}

#[test]
fn upstream_vmi_secureboot_gives_golden_argv() {
    check("vmi-secureboot");
}

#[test]
fn upstream_vmi_sata_without_disks_gets_a_sata_disk() {
    check("vmi-sata");
}

#[test]
fn upstream_vmi_nocloud_gives_golden_argv() {
    check("vmi-nocloud");
}

#[test]
fn kernel_boot_gives_golden_argv() {
    check("kernel-boot");
}

#[test]
fn every_bus_and_volume_kind_gives_golden_argv() {
    check("buses");
}

#[test]
fn cloud_init_seeds_give_golden_argv() {
    check("cloud-init");
}

#[test]
fn config_map_secret_service_account_downward_api_and_sysprep_disks_give_golden_argv() {
    check("config-disks");
}

#[test]
fn a_tpm_gives_golden_argv() {
    check("tpm");
}

#[test]
fn persistent_tpm_and_efi_variables_live_on_the_state_claim() {
    check("persistent-state");
}

#[test]
fn every_fixture_has_a_golden_test() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".yaml").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert_eq!(names, FIXTURES);
}

fn error_for(vmi: Value, disks: Value) -> String {
    let launch = json!({"vmi": vmi, "disks": disks});
    let spec =
        LaunchSpec::from_json(Path::new("launch.json"), &launch.to_string()).expect("parses");
    qemu_config(&spec, &RunPaths::new(RUN_DIR))
        .expect_err("must fail")
        .to_string()
}

#[test]
fn a_container_disk_without_a_pulled_image_names_the_volume() {
    let vmi = json!({"metadata": {"name": "a"}, "spec": {"domain": {"memory": {"guest": "64Mi"}},
        "volumes": [{"name": "root", "containerDisk": {"image": "x"}}]}});
    let error = error_for(vmi, json!({}));
    assert!(error.contains("disks.root"), "{error}");
}

#[test]
fn a_read_only_sata_disk_is_refused() {
    let vmi = json!({"metadata": {"name": "a"}, "spec": {"domain": {"memory": {"guest": "64Mi"},
        "devices": {"disks": [{"name": "h", "disk": {"bus": "sata", "readonly": true}}]}},
        "volumes": [{"name": "h", "hostDisk": {"path": "/x.img", "type": "Disk"}}]}});
    let error = error_for(vmi, json!({}));
    assert!(error.contains("read-only"), "{error}");
}

#[test]
fn a_disk_without_a_volume_is_refused() {
    let vmi = json!({"metadata": {"name": "a"}, "spec": {"domain": {"memory": {"guest": "64Mi"},
        "devices": {"disks": [{"name": "ghost", "disk": {}}]}}}});
    let error = error_for(vmi, json!({}));
    assert!(error.contains("ghost"), "{error}");
}

#[test]
fn a_vmi_without_memory_is_refused() {
    let vmi = json!({"metadata": {"name": "a"}, "spec": {"domain": {}}});
    let error = error_for(vmi, json!({}));
    assert!(error.contains("memory"), "{error}");
}

#[test]
fn a_cdrom_on_virtio_is_refused() {
    let vmi = json!({"metadata": {"name": "a"}, "spec": {"domain": {"memory": {"guest": "64Mi"},
        "devices": {"disks": [{"name": "c", "cdrom": {"bus": "virtio"}}]}},
        "volumes": [{"name": "c", "hostDisk": {"path": "/x.iso", "type": "Disk"}}]}});
    let error = error_for(vmi, json!({}));
    assert!(error.contains("virtio"), "{error}");
}

#[test]
fn without_sandbox_drops_only_the_sandbox_option() {
    let spec = launch_spec("vmi-ephemeral");
    let command = qemu_config(&spec, &RunPaths::new(RUN_DIR)).expect("config");
    let plain = command.without_sandbox();
    assert!(command.args.iter().any(|a| a == "-sandbox"));
    assert!(!plain
        .args
        .iter()
        .any(|a| a == "-sandbox" || a.starts_with("on,obsolete")));
    assert_eq!(plain.args.len() + 2, command.args.len());
}

#[test]
fn a_run_directory_too_long_for_unix_sockets_is_refused() {
    let spec = launch_spec("vmi-ephemeral");
    let long = format!("/var/lib/oxivirt/pods/{}", "x".repeat(90));
    let error = qemu_config(&spec, &RunPaths::new(long))
        .expect_err("too long")
        .to_string();
    assert!(error.contains("too long"), "{error}");
}

#[test]
fn nics_leave_root_ports_free_for_four_hot_pluggable_interfaces() {
    check("nics");
}
