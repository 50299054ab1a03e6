//! Every kind the foundation serves can be applied with kubectl and read back by short name.

use oxivirt_e2e::Server;

const MANIFEST: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: sa1}
---
apiVersion: v1
kind: Node
metadata: {name: node1}
---
apiVersion: v1
kind: Endpoints
metadata: {name: ep1}
subsets:
- addresses: [{ip: 10.0.0.1}]
  ports: [{port: 80}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pvc1}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/pv1}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: es1}
addressType: IPv4
endpoints:
- addresses: [10.0.0.1]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: sc1}
provisioner: example.com/none
---
apiVersion: apps/v1
kind: ControllerRevision
metadata: {name: rev1}
revision: 1
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lease1}
spec: {holderIdentity: e2e, leaseDurationSeconds: 15}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: ev1}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: example.com/e2e
reportingInstance: e2e-1
action: Testing
reason: Test
type: Normal
regarding: {apiVersion: v1, kind: ConfigMap, name: x, namespace: default}
note: hello
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: role1}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-clusterrole}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb1}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: role1}
subjects:
- {kind: ServiceAccount, name: sa1, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-crb}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-clusterrole}
subjects:
- {kind: ServiceAccount, name: sa1, namespace: default}
---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata: {name: vmi1}
spec:
  domain:
    devices: {}
    memory: {guest: 64Mi}
"#;

#[test]
fn every_foundation_kind_can_be_applied_and_read_back_by_short_name() {
    let server = Server::start();
    let k = server.kubectl();
    let out = k.apply(MANIFEST);
    assert_eq!(
        out.lines().filter(|l| l.ends_with(" created")).count(),
        15,
        "{out}"
    );

    let names = k.ok(&[
        "get",
        "-o",
        "name",
        "sa/sa1",
        "no/node1",
        "ep/ep1",
        "pvc/pvc1",
        "pv/pv1",
        "endpointslices/es1",
        "sc/sc1",
        "controllerrevisions/rev1",
        "leases/lease1",
        "events.events.k8s.io/ev1",
        "roles/role1",
        "clusterroles/e2e-clusterrole",
        "rolebindings/rb1",
        "clusterrolebindings/e2e-crb",
        "vmi/vmi1",
    ]);
    assert_eq!(names.lines().count(), 15, "{names}");

    // An events.k8s.io Event is also visible as a core/v1 Event, as in Kubernetes.
    let core = k.json(&["get", "events.v1.", "ev1"]);
    assert_eq!(core["reason"], "Test", "{core}");

    // A second apply of the same manifest changes nothing.
    let again = k.apply(MANIFEST);
    assert_eq!(
        again.lines().filter(|l| l.ends_with(" unchanged")).count(),
        15,
        "{again}"
    );
}
