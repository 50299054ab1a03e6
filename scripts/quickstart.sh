#!/usr/bin/env bash
# Builds oxivirt, starts `oxivirt server` in the background, and applies the cirros
# VirtualMachine example with the stock kubectl.
#
# Environment: OXIVIRT_DATA_DIR (default ~/.local/share/oxivirt), OXIVIRT_LISTEN (default
# 127.0.0.1:6443), CARGO_TARGET_DIR (default <repo>/target).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${OXIVIRT_DATA_DIR:-$HOME/.local/share/oxivirt}"
listen="${OXIVIRT_LISTEN:-127.0.0.1:6443}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
kubeconfig="$data_dir/admin.kubeconfig"
pid_file="$data_dir/server.pid"

command -v kubectl >/dev/null || { echo "error: kubectl not found (install kubectl 1.32)" >&2; exit 1; }

echo "==> building oxivirt (release)"
cargo build --release --bin oxivirt --manifest-path "$repo/Cargo.toml"
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

cat <<EOT

oxivirt is running (pid $(cat "$pid_file"), log $data_dir/server.log).
  export KUBECONFIG=$kubeconfig
  kubectl get vm,namespaces
Stop it with: kill $(cat "$pid_file")
EOT
