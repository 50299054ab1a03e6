//! Tests of `create vm`: one per flag or flag combination, checking the manifest shape.

use clap::Parser;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::*;
use crate::cli::{Cli, Command};
use crate::commands::create::CreateCommand;
use crate::output::render;

/// Parses `virtctl create vm ARGS` through clap (so defaults apply) and builds the VM.
fn build(args: &[&str]) -> Result<Manifest> {
    let mut argv = vec!["virtctl", "create", "vm"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("command line parses");
    let namespace = cli.global.namespace.clone();
    let Some(Command::Create(CreateCommand::Vm(vm))) = cli.command else {
        panic!("expected create vm");
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    plan(&vm, namespace, &mut rng)
}

fn vm(args: &[&str]) -> Value {
    build(args).expect("manifest builds").object
}

fn error(args: &[&str]) -> String {
    build(args).expect_err("must fail").to_string()
}

fn template_spec(object: &Value) -> &Value {
    &object["spec"]["template"]["spec"]
}

#[test]
fn bare_vm_renders_exactly_like_upstream() {
    let yaml = render(&vm(&["--name", "my-vm"]), OutputFormat::Yaml).expect("renders");
    assert_eq!(
        yaml,
        "apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: my-vm
spec:
  runStrategy: Always
  template:
    metadata: {}
    spec:
      domain:
        devices: {}
        memory:
          guest: 512Mi
        resources: {}
      terminationGracePeriodSeconds: 180
status: {}
"
    );
}

#[test]
fn random_name_is_vm_and_five_characters() {
    let object = vm(&[]);
    let name = object["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("vm-") && name.len() == 8, "{name}");
}

#[test]
fn output_parses_back_as_a_kubevirt_virtual_machine() {
    let yaml = render(
        &vm(&["--volume-containerdisk", "src:quay.io/img:tag"]),
        OutputFormat::Yaml,
    )
    .expect("renders");
    let parsed: Value = serde_yaml::from_str(&yaml).expect("valid YAML");
    assert_eq!(parsed["apiVersion"], "kubevirt.io/v1");
    assert_eq!(parsed["kind"], "VirtualMachine");
    let json = render(&parsed, OutputFormat::Json).expect("renders as JSON");
    let parsed: Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(parsed["spec"]["runStrategy"], "Always");
}

#[test]
fn run_strategy_grace_period_memory_and_namespace_are_set() {
    let object = vm(&[
        "-n",
        "team",
        "--run-strategy",
        "Halted",
        "--termination-grace-period",
        "30",
        "--memory",
        "1024Mi",
    ]);
    assert_eq!(object["metadata"]["namespace"], "team");
    assert_eq!(object["spec"]["runStrategy"], "Halted");
    assert_eq!(template_spec(&object)["terminationGracePeriodSeconds"], 30);
    assert_eq!(template_spec(&object)["domain"]["memory"]["guest"], "1Gi");
}

#[test]
fn invalid_run_strategy_and_memory_name_their_flag() {
    assert_eq!(
        error(&["--run-strategy", "Sometimes"]),
        "failed to parse \"--run-strategy\" flag: invalid RunStrategy \"Sometimes\", supported values are: Always, Manual, Halted, Once, RerunOnFailure"
    );
    assert!(error(&["--memory", "much"])
        .starts_with("failed to parse \"--memory\" flag: quantities must match"));
}

#[test]
fn instancetype_and_preference_matchers_drop_default_memory() {
    let object = vm(&[
        "--instancetype",
        "u1.medium",
        "--preference",
        "virtualmachinepreference/fedora",
    ]);
    assert_eq!(object["spec"]["instancetype"], json!({"name": "u1.medium"}));
    assert_eq!(
        object["spec"]["preference"],
        json!({"kind": "virtualmachinepreference", "name": "fedora"})
    );
    assert!(template_spec(&object)["domain"].get("memory").is_none());
    let object = vm(&["--instancetype", "virtualmachineinstancetype/small"]);
    assert_eq!(
        object["spec"]["instancetype"],
        json!({"kind": "virtualmachineinstancetype", "name": "small"})
    );
}

#[test]
fn invalid_matcher_kinds_are_rejected() {
    assert_eq!(
        error(&["--instancetype", "pod/x"]),
        "failed to parse \"--instancetype\" flag: invalid instancetype kind \"pod\", supported values are: virtualmachineinstancetype, virtualmachineclusterinstancetype"
    );
    assert!(
        error(&["--preference", "a/b/c"]).ends_with("invalid count 2 of slashes in prefix/name")
    );
}

#[test]
fn containerdisk_volume_with_default_name_and_boot_order() {
    let object = vm(&[
        "--name",
        "v",
        "--volume-containerdisk",
        "src:quay.io/img:tag,bootorder:1",
    ]);
    let spec = template_spec(&object);
    assert_eq!(
        spec["volumes"],
        json!([{"name": "v-containerdisk-0", "containerDisk": {"image": "quay.io/img:tag"}}])
    );
    assert_eq!(
        spec["domain"]["devices"]["disks"],
        json!([{"name": "v-containerdisk-0", "bootOrder": 1}])
    );
    // A containerdisk cannot carry inference labels: implicit inference is skipped quietly.
    assert!(object["spec"].get("instancetype").is_none());
    assert_eq!(spec["domain"]["memory"]["guest"], "512Mi");
}

#[test]
fn containerdisk_errors_follow_upstream_wording() {
    assert_eq!(
        error(&["--volume-containerdisk", "name:x"]),
        "failed to parse \"--volume-containerdisk\" flag: src must be specified"
    );
    assert_eq!(
        error(&["--volume-containerdisk", "src:a,foo:bar"]),
        "failed to parse \"--volume-containerdisk\" flag: unknown param(s): foo:bar"
    );
    assert_eq!(
        error(&[
            "--volume-containerdisk",
            "src:a,name:d",
            "--volume-containerdisk",
            "src:b,name:d"
        ]),
        "failed to parse \"--volume-containerdisk\" flag: there is already a volume with name 'd'"
    );
}

#[test]
fn pvc_volume_uses_claim_name_and_rejects_namespaces() {
    let object = vm(&["--volume-pvc", "src:my-pvc"]);
    let spec = template_spec(&object);
    assert_eq!(
        spec["volumes"],
        json!([{"name": "my-pvc", "persistentVolumeClaim": {"claimName": "my-pvc"}}])
    );
    // A PVC can carry inference labels: implicit inference with the Ignore policy.
    assert_eq!(
        object["spec"]["instancetype"],
        json!({"inferFromVolume": "my-pvc", "inferFromVolumeFailurePolicy": "Ignore"})
    );
    assert_eq!(
        object["spec"]["preference"],
        json!({"inferFromVolume": "my-pvc", "inferFromVolumeFailurePolicy": "Ignore"})
    );
    assert_eq!(spec["domain"]["memory"]["guest"], "512Mi");
    assert_eq!(
        error(&["--volume-pvc", "src:ns/my-pvc"]),
        "failed to parse \"--volume-pvc\" flag: not allowed to specify namespace of pvc 'my-pvc'"
    );
}

#[test]
fn datasource_volume_becomes_a_data_volume_template() {
    let object = vm(&[
        "--volume-datasource",
        "src:os-images/fedora,name:root,size:30Gi",
    ]);
    assert_eq!(
        object["spec"]["dataVolumeTemplates"],
        json!([{
            "metadata": {"name": "root"},
            "spec": {
                "sourceRef": {"kind": "DataSource", "name": "fedora", "namespace": "os-images"},
                "storage": {"resources": {"requests": {"storage": "30Gi"}}},
            },
        }])
    );
    assert_eq!(
        template_spec(&object)["volumes"],
        json!([{"name": "root", "dataVolume": {"name": "root"}}])
    );
    let manifest = build(&["--volume-datasource", "src:fedora"]).expect("builds");
    assert_eq!(
        manifest.warnings,
        vec!["Flag --volume-datasource has been deprecated, use flag --volume-import instead"]
    );
    let template = &manifest.object["spec"]["dataVolumeTemplates"][0];
    assert_eq!(template["spec"]["storage"], json!({"resources": {}}));
    assert!(template["metadata"]["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("imported-volume-")));
}

#[test]
fn clone_pvc_volume_requires_a_namespace() {
    let object = vm(&["--volume-clone-pvc", "src:src-ns/disk,name:root"]);
    assert_eq!(
        object["spec"]["dataVolumeTemplates"][0]["spec"],
        json!({"source": {"pvc": {"name": "disk", "namespace": "src-ns"}}, "storage": {"resources": {}}})
    );
    assert_eq!(
        error(&["--volume-clone-pvc", "src:disk"]),
        "failed to parse \"--volume-import\" flag: namespace of pvc 'disk' must be specified"
    );
}

#[test]
fn blank_volume_requires_a_size() {
    let object = vm(&["--volume-blank", "name:scratch,size:10Gi"]);
    assert_eq!(
        object["spec"]["dataVolumeTemplates"][0]["spec"],
        json!({"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "10Gi"}}}})
    );
    assert_eq!(
        error(&["--volume-blank", "name:scratch"]),
        "failed to parse \"--volume-import\" flag: size must be specified"
    );
}

#[test]
fn volume_import_covers_every_source_type() {
    let object = vm(&[
        "--volume-import", "type:http,name:a,size:1Gi,url:https://x/img.qcow2,certconfigmap:tls,extraheaders:A: 1;B: 2",
        "--volume-import", "type:registry,name:b,size:2Gi,url:docker://quay.io/img,pullmethod:node",
        "--volume-import", "type:snapshot,name:c,src:ns/snap",
        "--volume-import", "type:s3,name:d,size:1Gi,url:https://s3/b",
        "--volume-import", "type:gcs,name:e,size:1Gi,url:gs://b/o",
        "--volume-import", "type:imageio,name:f,size:1Gi,url:https://engine,diskid:123",
        "--volume-import", "type:vddk,name:g,size:1Gi,url:https://vc,uuid:u,thumbprint:t,secretref:s,backingfile:f.vmdk",
    ]);
    let templates = &object["spec"]["dataVolumeTemplates"];
    assert_eq!(
        templates[0]["spec"]["source"],
        json!({"http": {"url": "https://x/img.qcow2", "certConfigMap": "tls", "extraHeaders": ["A: 1", "B: 2"]}})
    );
    assert_eq!(
        templates[1]["spec"]["source"],
        json!({"registry": {"url": "docker://quay.io/img", "pullMethod": "node"}})
    );
    assert_eq!(
        templates[2]["spec"]["source"],
        json!({"snapshot": {"name": "snap", "namespace": "ns"}})
    );
    assert_eq!(
        templates[3]["spec"]["source"],
        json!({"s3": {"url": "https://s3/b"}})
    );
    assert_eq!(
        templates[4]["spec"]["source"],
        json!({"gcs": {"url": "gs://b/o"}})
    );
    assert_eq!(
        templates[5]["spec"]["source"],
        json!({"imageio": {"url": "https://engine", "diskId": "123"}})
    );
    assert_eq!(
        templates[6]["spec"]["source"]["vddk"]["backingFile"],
        "f.vmdk"
    );
    assert_eq!(
        template_spec(&object)["volumes"].as_array().map(Vec::len),
        Some(7)
    );
}

#[test]
fn volume_import_errors_follow_upstream_wording() {
    assert_eq!(
        error(&["--volume-import", "size:1Gi"]),
        "failed to parse \"--volume-import\" flag: type must be specified"
    );
    assert_eq!(
        error(&["--volume-import", "type:ftp,size:1Gi"]),
        "failed to parse \"--volume-import\" flag: unknown source type used - ftp"
    );
    assert_eq!(
        error(&["--volume-import", "type:http,size:1Gi"]),
        "failed to parse \"--volume-import\" flag: URL is required with http volume source"
    );
    assert_eq!(
        error(&["--volume-import", "type:registry,size:1Gi,url:a,imagestream:b"]),
        "failed to parse \"--volume-import\" flag: exactly one of url or imagestream must be defined"
    );
    assert_eq!(
        error(&[
            "--volume-import",
            "type:registry,size:1Gi,url:a,pullmethod:ftp"
        ]),
        "failed to parse \"--volume-import\" flag: pullmethod must be set to pod or node"
    );
    assert_eq!(
        error(&["--volume-import", "type:vddk,size:1Gi,url:a"]),
        "failed to parse \"--volume-import\" flag: UUID is required with VDDK volume source"
    );
}

#[test]
fn default_boot_order_follows_flag_groups_for_inference() {
    let object = vm(&[
        "--volume-import",
        "type:ds,src:fedora,name:ds-disk",
        "--volume-pvc",
        "src:data",
        "--volume-containerdisk",
        "src:img,name:cd",
    ]);
    let names: Vec<&str> = template_spec(&object)["volumes"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["cd", "data", "ds-disk"]);
    // The first volume is a containerdisk, so implicit inference finds nothing to use.
    assert!(object["spec"].get("instancetype").is_none());

    let object = vm(&[
        "--volume-containerdisk",
        "src:img,name:cd",
        "--volume-import",
        "type:ds,src:fedora,name:root,bootorder:1",
    ]);
    assert_eq!(object["spec"]["instancetype"]["inferFromVolume"], "root");
}

#[test]
fn explicit_inference_clears_memory_and_fails_loudly() {
    let object = vm(&[
        "--volume-import",
        "type:ds,src:fedora,name:root",
        "--infer-instancetype",
        "--infer-preference",
    ]);
    assert_eq!(
        object["spec"]["instancetype"],
        json!({"inferFromVolume": "root"})
    );
    assert_eq!(
        object["spec"]["preference"],
        json!({"inferFromVolume": "root"})
    );
    assert!(template_spec(&object)["domain"].get("memory").is_none());

    assert_eq!(
        error(&["--volume-containerdisk", "src:img", "--infer-instancetype"]),
        "inference of instancetype or preference works only with DataSources, DataVolumes or PersistentVolumeClaims"
    );
    assert_eq!(
        error(&["--infer-preference"]),
        "at least one volume is needed to infer an instance type or preference"
    );
    assert_eq!(
        error(&["--volume-pvc", "src:a", "--infer-instancetype-from", "b"]),
        "there is no volume with name 'b'"
    );
    assert!(error(&[
        "--volume-import",
        "type:blank,size:1Gi,name:b",
        "--infer-preference-from",
        "b"
    ])
    .starts_with("this DataVolume is not valid to infer"));
}

#[test]
fn infer_from_named_volume_and_disabled_inference() {
    let object = vm(&[
        "--volume-pvc",
        "src:a",
        "--volume-pvc",
        "src:b",
        "--infer-instancetype-from",
        "b",
        "--infer-preference=false",
    ]);
    assert_eq!(
        object["spec"]["instancetype"],
        json!({"inferFromVolume": "b"})
    );
    assert!(object["spec"].get("preference").is_none());
}

#[test]
fn sysprep_volume_defaults_to_a_config_map() {
    let object = vm(&["--volume-sysprep", "src:unattend"]);
    assert_eq!(
        template_spec(&object)["volumes"],
        json!([{"name": "sysprepdisk", "sysprep": {"configMap": {"name": "unattend"}}}])
    );
    let object = vm(&["--volume-sysprep", "src:unattend,type:secret"]);
    assert_eq!(
        template_spec(&object)["volumes"][0]["sysprep"],
        json!({"secret": {"name": "unattend"}})
    );
    assert_eq!(
        error(&["--volume-sysprep", "src:u,type:disk"]),
        "failed to parse \"--volume-sysprep\" flag: invalid source type \"disk\", supported values are: configMap, secret"
    );
}

#[test]
fn cloud_init_user_data_is_passed_through_base64() {
    let object = vm(&[
        "--cloud-init-user-data",
        "I2Nsb3VkLWNvbmZpZwo=",
        "--cloud-init-network-data",
        "bmV0d29yazoK",
    ]);
    assert_eq!(
        template_spec(&object)["volumes"],
        json!([{"name": "cloudinitdisk", "cloudInitNoCloud": {"userDataBase64": "I2Nsb3VkLWNvbmZpZwo=", "networkDataBase64": "bmV0d29yazoK"}}])
    );
    assert!(error(&["--cloud-init-user-data", "not base64!"])
        .starts_with("failed to parse \"--cloud-init-user-data\" flag:"));
}

#[test]
fn generated_cloud_init_has_user_password_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("pw");
    std::fs::write(&password, "s3cret\n").expect("write password");
    let password = password.to_string_lossy().into_owned();
    let manifest = build(&[
        "--user",
        "fedora",
        "--password-file",
        &password,
        "--ssh-key",
        "ssh-ed25519 AAAA a@b",
        "--cloud-init",
        "configdrive",
    ])
    .expect("builds");
    assert_eq!(
        template_spec(&manifest.object)["volumes"][0]["cloudInitConfigDrive"]["userData"],
        "#cloud-config\nuser: fedora\npassword: s3cret\nchpasswd: { expire: False }\nssh_authorized_keys:\n  - ssh-ed25519 AAAA a@b"
    );
    assert_eq!(
        manifest.warnings,
        vec!["WARNING: --password-file: The password is stored in cleartext in the VM definition!"]
    );
    let yaml = render(&manifest.object, OutputFormat::Yaml).expect("renders");
    let parsed: Value = serde_yaml::from_str(&yaml).expect("parses back");
    assert_eq!(parsed, manifest.object);
}

#[test]
fn cloud_init_none_adds_nothing_and_bad_type_is_rejected() {
    let manifest = build(&["--cloud-init", "none", "--ssh-key", "k"]).expect("builds");
    assert!(template_spec(&manifest.object).get("volumes").is_none());
    assert_eq!(manifest.warnings.len(), 1);
    assert_eq!(
        error(&["--cloud-init", "cdrom"]),
        "failed to parse \"--cloud-init\" flag: invalid cloud-init data source type \"cdrom\", supported values are: nocloud, configdrive, none"
    );
}

#[test]
fn access_credentials_for_ssh_and_password() {
    let object = vm(&[
        "--user",
        "fedora",
        "--access-cred",
        "type:ssh,src:my-keys",
        "--access-cred",
        "type:password,src:my-pws",
    ]);
    let spec = template_spec(&object);
    assert_eq!(
        spec["accessCredentials"],
        json!([
            {"sshPublicKey": {"propagationMethod": {"qemuGuestAgent": {"users": ["fedora"]}}, "source": {"secret": {"secretName": "my-keys"}}}},
            {"userPassword": {"propagationMethod": {"qemuGuestAgent": {}}, "source": {"secret": {"secretName": "my-pws"}}}},
        ])
    );
    // The ga method turns on --ga-manage-ssh, so cloud-init carries the SELinux boolean.
    let user_data = spec["volumes"][0]["cloudInitNoCloud"]["userData"]
        .as_str()
        .expect("user data");
    assert!(user_data.contains("virt_qemu_ga_manage_ssh"), "{user_data}");

    let object = vm(&["--access-cred", "src:keys,method:configdrive"]);
    let spec = template_spec(&object);
    assert_eq!(
        spec["accessCredentials"][0]["sshPublicKey"]["propagationMethod"],
        json!({"configDrive": {}})
    );
    assert_eq!(
        spec["volumes"],
        json!([{"name": "cloudinitdisk", "cloudInitConfigDrive": {"userData": "#cloud-config"}}])
    );
}

#[test]
fn access_credential_errors_follow_upstream_wording() {
    assert_eq!(
        error(&["--access-cred", "src:keys"]),
        "failed to parse \"--access-cred\" flag: user must be specified with access credential ssh method ga (\"--user\" flag or param \"user\")"
    );
    assert_eq!(
        error(&["--access-cred", "src:keys,method:nocloud", "--cloud-init", "configdrive"]),
        "failed to parse \"--access-cred\" flag: method param and value passed to --cloud-init have to match: nocloud vs configdrive"
    );
    assert_eq!(
        error(&["--access-cred", "type:password,src:p,user:x"]),
        "failed to parse \"--access-cred\" flag: user cannot be specified with selected access credential type and method"
    );
    assert_eq!(
        error(&["--access-cred", "type:token,src:p"]),
        "failed to parse \"--access-cred\" flag: invalid access credential type \"token\", supported values are: ssh, password"
    );
}

#[test]
fn conflicting_flags_are_rejected_by_the_parser() {
    for args in [
        vec!["--memory", "1Gi", "--instancetype", "u1.small"],
        vec!["--instancetype", "u1.small", "--infer-instancetype"],
        vec!["--preference", "p", "--infer-preference-from", "v"],
        vec!["--cloud-init-user-data", "YQ==", "--user", "u"],
    ] {
        let mut argv = vec!["virtctl", "create", "vm"];
        argv.extend(args.iter().copied());
        assert!(
            Cli::try_parse_from(&argv).is_err(),
            "{args:?} should conflict"
        );
    }
}
