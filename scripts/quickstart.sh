#!/usr/bin/env bash
# Builds oxivirt, starts `oxivirt server` in the background, applies the cirros
# VirtualMachine example with the stock kubectl, and (as root) boots a VM that really runs:
# the project's test guest, served as a containerDisk by a local docker-registry.
#
# Environment: OXIVIRT_DATA_DIR (default /var/lib/oxivirt as root — a directory uid 107 can
# reach, so QEMU runs unprivileged — else ~/.local/share/oxivirt), OXIVIRT_LISTEN (default
# 127.0.0.1:6443), CARGO_TARGET_DIR (default <repo>/target), OXIVIRT_QUICKSTART_REGISTRY
# (default 127.0.0.1:5055).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" = 0 ]; then default_data_dir=/var/lib/oxivirt; else default_data_dir="$HOME/.local/share/oxivirt"; fi
data_dir="${OXIVIRT_DATA_DIR:-$default_data_dir}"
listen="${OXIVIRT_LISTEN:-127.0.0.1:6443}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
kubeconfig="$data_dir/admin.kubeconfig"
pid_file="$data_dir/server.pid"

command -v kubectl >/dev/null || { echo "error: kubectl not found (install kubectl 1.32)" >&2; exit 1; }

echo "==> building oxivirt (release)"
cargo build --release -p oxivirt-server --bins -p oxivirt-cli --manifest-path "$repo/Cargo.toml"
mkdir -p "$data_dir"

if [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "==> server already running (pid $(cat "$pid_file"))"
else
    echo "==> starting oxivirt server --data-dir $data_dir --listen $listen"
    rm -f "$kubeconfig"
    nohup "$target_dir/release/oxivirt" server --data-dir "$data_dir" --listen "$listen" \
        >>"$data_dir/server.log" 2>&1 &
    echo $! >"$pid_file"
fi

echo "==> waiting for $kubeconfig and /readyz"
for _ in $(seq 300); do
    if [[ -f "$kubeconfig" ]] && kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
        break
    fi
    if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        echo "error: the server exited; last log lines:" >&2
        tail -n 30 "$data_dir/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
kubectl --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null

example="$repo/../shared/reference/kubevirt/examples/vm-cirros.yaml"
if [[ ! -f "$example" ]]; then
    # The upstream KubeVirt example, for clones without the shared reference folder beside them.
    example="$data_dir/vm-cirros.yaml"
    cat >"$example" <<'YAML'
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  labels:
    kubevirt.io/vm: vm-cirros
  name: vm-cirros
spec:
  runStrategy: Halted
  template:
    metadata:
      labels:
        kubevirt.io/vm: vm-cirros
    spec:
      domain:
        devices:
          disks:
          - disk:
              bus: virtio
            name: containerdisk
          - disk:
              bus: virtio
            name: cloudinitdisk
        memory:
          guest: 128Mi
        resources: {}
      terminationGracePeriodSeconds: 0
      volumes:
      - containerDisk:
          image: registry:5000/kubevirt/cirros-container-disk-demo:devel
        name: containerdisk
      - cloudInitNoCloud:
          userData: |
            #!/bin/sh

            echo 'printed from cloud-init userdata'
        name: cloudinitdisk
YAML
fi

echo "==> kubectl apply -f $example"
kubectl --kubeconfig "$kubeconfig" apply -f "$example"
kubectl --kubeconfig "$kubeconfig" get vm

running_vm() {
    # Host packages the running VM needs (as CI installs them).
    local need=()
    command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
    command -v qemu-img >/dev/null || need+=(qemu-utils)
    command -v docker-registry >/dev/null || need+=(docker-registry)
    command -v curl >/dev/null || need+=(curl)
    if ((${#need[@]})); then
        echo "==> installing ${need[*]}"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
    fi
    echo "==> building the test guest (cached after the first time)"
    local guest
    guest="$("$repo/scripts/test-guest/build.sh" | tail -n1)"
    local registry="${OXIVIRT_QUICKSTART_REGISTRY:-127.0.0.1:5055}"
    local reg_dir="$data_dir/registry"
    if ! curl -fsS "http://$registry/v2/" >/dev/null 2>&1; then
        echo "==> starting docker-registry on $registry"
        mkdir -p "$reg_dir"
        printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
            "$reg_dir/data" "$registry" >"$reg_dir/config.yml"
        nohup docker-registry serve "$reg_dir/config.yml" >>"$reg_dir/registry.log" 2>&1 &
        echo $! >"$reg_dir/registry.pid"
        for _ in $(seq 100); do curl -fsS "http://$registry/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
    fi
    "$repo/scripts/test-guest/push-containerdisk.sh" -d "$guest/containerdisk" "$registry/oxivirt/test-guest:latest" >/dev/null 2>&1
    echo "==> kubectl apply: VirtualMachine testguest (runStrategy Always)"
    kubectl --kubeconfig "$kubeconfig" apply -f - <<YAML
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: testguest
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        devices:
          disks:
          - name: root
            disk: {bus: virtio}
        resources:
          requests: {memory: 256Mi}
      volumes:
      - name: root
        containerDisk: {image: $registry/oxivirt/test-guest:latest}
YAML
    kubectl --kubeconfig "$kubeconfig" wait vmi/testguest --for=jsonpath='{.status.phase}'=Running --timeout=180s
    echo "==> waiting for the guest's banner on its serial console"
    local pod
    pod="$(kubectl --kubeconfig "$kubeconfig" get pods -l vm.kubevirt.io/name=testguest -o jsonpath='{.items[0].metadata.name}')"
    for _ in $(seq 120); do
        kubectl --kubeconfig "$kubeconfig" logs "$pod" -c guest-console-log 2>/dev/null | grep -q "OXIVIRT-TEST-GUEST READY" && break
        sleep 1
    done
    kubectl --kubeconfig "$kubeconfig" logs "$pod" -c guest-console-log | tail -n 4
    echo
    kubectl --kubeconfig "$kubeconfig" get vm,vmi,pods
    echo "    console: $target_dir/release/virtctl console testguest   (root, no password; Ctrl+] leaves)"
}

if [[ $EUID -eq 0 ]]; then
    running_vm
else
    echo "==> not root: skipping the running test-guest VM (building the guest image needs root)"
    # Without root there is no pod network: VMs get passt user-mode networking instead.
    command -v passt >/dev/null || echo "    note: install passt (apt-get install passt) so VMs have a network without root"
fi

cat <<EOT

oxivirt is running (pid $(cat "$pid_file"), log $data_dir/server.log).
  export KUBECONFIG=$kubeconfig
  kubectl get vm,namespaces
Stop it with: kill $(cat "$pid_file")
EOT
