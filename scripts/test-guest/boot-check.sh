#!/usr/bin/env bash
# Boot every artifact of the test guest under TCG and check it for real.
#
#   scripts/test-guest/boot-check.sh [OUT_DIR]
#
# OUT_DIR defaults to what build.sh prints (it builds if needed). Modes (BOOT_CHECK_MODES,
# default "kernel bios uefi"):
#   kernel  direct kernel boot of vmlinuz + initrd.img
#   bios    disk.raw with SeaBIOS (GRUB i386-pc from the BIOS boot partition)
#   uefi    disk.qcow2 with OVMF (shim \EFI\BOOT\BOOTX64.EFI -> signed GRUB -> kernel)
#   uefi-sb the same under Secure Boot: OVMF_CODE_4M.secboot.fd + OVMF_VARS_4M.ms.fd, SMM on,
#           S3 off (this OVMF does not support S3 with SMM, see test-guest.md)
# Each boot gets a NoCloud seed ISO (hostname, a user with an SSH key, runcmd echo) and must
# print "OXIVIRT-TEST-GUEST READY" and the runcmd output on ttyS0. The kernel mode also checks
# the console login (root, no password), qemu-guest-agent over virtio-serial (guest-ping,
# guest-get-osinfo, guest-get-host-name), SSH into dropbear with the injected key (if ssh is
# installed), and an ACPI power-button shutdown (QMP system_powerdown) that ends QEMU.
# Prints the wall time from QEMU's start to the banner for each mode; exits non-zero on failure.
#
# Environment: BOOT_CHECK_MODES, BOOT_CHECK_TIMEOUT (seconds per boot, default 120),
# BOOT_CHECK_KEEP=1 keeps the work directory (serial logs).
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODES="${BOOT_CHECK_MODES:-kernel bios uefi}"
[ "$MODES" = all ] && MODES="kernel bios uefi uefi-sb netv1 netv2 configdrive containerdisk"
TIMEOUT="${BOOT_CHECK_TIMEOUT:-120}"

log() { printf 'boot-check: %s\n' "$*" >&2; }

if [ $# -ge 1 ]; then OUT="$1"; else OUT="$("$SCRIPT_DIR/build.sh" | tail -n1)"; fi
[ -f "$OUT/vmlinuz" ] || { log "no test guest in $OUT"; exit 1; }

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || [ -f /usr/share/OVMF/OVMF_CODE.fd ] || need+=(ovmf)
command -v xorriso >/dev/null || need+=(xorriso)
command -v perl >/dev/null || need+=(perl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "${need[@]}" >&2 ||
    { apt-get -q update >&2 && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends "${need[@]}" >&2; }
fi
# OVMF from Debian's ovmf package (4M flash layout since bookworm; older layouts as fallback)
OVMF_CODE="" OVMF_VARS=""
for c in OVMF_CODE_4M.fd OVMF_CODE.fd; do
  if [ -f "/usr/share/OVMF/$c" ]; then OVMF_CODE=/usr/share/OVMF/$c; OVMF_VARS=/usr/share/OVMF/${c/CODE/VARS}; break; fi
done

W="$(mktemp -d "${TMPDIR:-/tmp}/oxivirt-boot-check.XXXXXX")"
QEMU_PID=""
cleanup() {
  if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; fi
  stop_registry
  if [ "${BOOT_CHECK_KEEP:-0}" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

HAVE_SSH=0
if command -v ssh >/dev/null && command -v ssh-keygen >/dev/null; then
  ssh-keygen -q -t ed25519 -N '' -C boot-check -f "$W/id" && HAVE_SSH=1
fi
PUBKEY="$( [ $HAVE_SSH = 1 ] && cat "$W/id.pub" || echo 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootCheckPlaceholderKeyOnly boot-check')"

# perl helpers: talk to QMP / the guest agent / the serial console over unix sockets
cat >"$W/sock.pl" <<'EOF'
use strict; use warnings; use IO::Socket::UNIX; use IO::Select;
my ($mode, $path, @args) = @ARGV;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path) or die "connect $path: $!\n";
my $sel = IO::Select->new($s);
sub readuntil { my ($re, $t) = @_; my $buf = ""; my $end = time + $t;
  while (time < $end) { if ($sel->can_read(0.2)) { my $n = sysread($s, my $c, 65536); last unless $n; $buf .= $c; return $buf if $buf =~ $re; } }
  return $buf; }
if ($mode eq "qmp") {           # qmp SOCK COMMAND-JSON
  readuntil(qr/"QMP"/, 10); print $s qq({"execute":"qmp_capabilities"}\n); readuntil(qr/"return"/, 10);
  print $s "$args[0]\n"; print readuntil(qr/"return"|"error"/, 10), "\n";
} elsif ($mode eq "ga") {        # ga SOCK COMMAND-JSON  (guest-sync-delimited first)
  my $id = int(rand(1e9));
  print $s "\xff"; print $s qq({"execute":"guest-sync-delimited","arguments":{"id":$id}}\n);
  my $b = readuntil(qr/"return":\s*$id/, 20); die "no guest-sync answer\n" unless $b =~ /$id/;
  print $s "$args[0]\n"; my $r = readuntil(qr/\}\s*\n/, 20); print $r;
} elsif ($mode eq "console") {   # console SOCK SEND EXPECT-REGEX
  print $s "\r"; readuntil(qr/login: $/, 10);
  print $s "$args[0]\r"; my $b = readuntil(qr/$args[1]/, 20); print $b; exit($b =~ /$args[1]/ ? 0 : 1);
}
EOF

now_ms() { date +%s%3N; }

# containerDisk: push the OCI layout to a throwaway docker-registry on loopback with
# push-containerdisk.sh, pull it back with curl (as a node agent would), check the layer.
REG_PID=""
stop_registry() { if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; REG_PID=""; fi; }
pull_containerdisk() {
  local d=$1 port=$((40000 + RANDOM % 20000)) i ref mdigest ldigest
  if ! command -v docker-registry >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -q install -y --no-install-recommends docker-registry >&2 || return 1
  fi
  mkdir -p "$d/registry"
  printf 'version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$d/registry/data" "$port" >"$d/registry/config.yml"
  docker-registry serve "$d/registry/config.yml" >"$d/registry/log" 2>&1 &
  REG_PID=$!
  for i in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  ref="127.0.0.1:$port/oxivirt/test-guest:boot-check"
  mdigest=$("$OUT/push-containerdisk.sh" "$ref" 2>>"$d/registry/push.log" | tail -n1) || { stop_registry; return 1; }
  curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' -o "$d/manifest.json" \
    "http://127.0.0.1:$port/v2/oxivirt/test-guest/manifests/boot-check" || { stop_registry; return 1; }
  [ "sha256:$(sha256sum <"$d/manifest.json" | cut -c1-64)" = "$mdigest" ] || { log "manifest digest mismatch"; stop_registry; return 1; }
  ldigest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$d/manifest.json" | tail -n1 | cut -d'"' -f4)
  curl -fsS -o "$d/layer.tar.gz" "http://127.0.0.1:$port/v2/oxivirt/test-guest/blobs/$ldigest" || { stop_registry; return 1; }
  stop_registry
  [ "sha256:$(sha256sum <"$d/layer.tar.gz" | cut -c1-64)" = "$ldigest" ] || { log "layer digest mismatch"; return 1; }
  tar -tzvf "$d/layer.tar.gz" | grep -q '^-r--r--r-- 107/107 .* disk/disk.qcow2$' || { log "layer lacks disk/disk.qcow2 owned by 107:107"; return 1; }
  mkdir -p "$d/pulled" && tar -xzf "$d/layer.tar.gz" -C "$d/pulled" --no-same-owner
  log "containerdisk: pushed and pulled $ref ($mdigest)"
}
FAIL=0
declare -A RESULT=()

boot() { # boot MODE
  local mode=$1 d="$W/$1" args=() start t_ready="" t_login="" log ok=1 port=$((20000 + RANDOM % 20000))
  mkdir -p "$d"
  local expect=("^RUNCMD-OK mode=$mode host=check-$mode")
  local seedopts=() nic="user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$port-:22"
  case "$mode" in
    kernel|bios|uefi|uefi-sb|containerdisk)
      cat >"$d/user-data" <<EOF
#cloud-config
hostname: check-$mode
users:
  - default
  - name: tester
    lock_passwd: false
    plain_text_passwd: tester
    ssh_authorized_keys:
      - $PUBKEY
ssh_authorized_keys:
  - $PUBKEY
runcmd:
  - echo "RUNCMD-OK mode=$mode host=\$(hostname)"
EOF
      printf 'instance-id: boot-check-%s\nlocal-hostname: meta-%s\n' "$mode" "$mode" >"$d/meta-data"
      seedopts=(-u "$d/user-data" -m "$d/meta-data")
      ;;
    netv1) # NoCloud ISO, network-config v1 static (interface matched by MAC), bootcmd, write_files
      cat >"$d/user-data" <<'EOF'
#cloud-config
fqdn: check-netv1.example.test
bootcmd:
  - echo BOOTCMD-OK
write_files:
  - path: /etc/oxivirt-check
    permissions: '0600'
    content: |
      written by cloud-init
runcmd:
  - echo "RUNCMD-OK mode=netv1 host=$(hostname)"
  - ip -4 -o addr show dev eth0 | awk '{ print "ADDR", $4 }'
  - ip -4 route show default | awk '{ print "GW", $3 }'
  - sed -n 's/^nameserver /DNS /p; s/^search /SEARCH /p' /etc/resolv.conf
  - echo "FILE $(stat -c %a /etc/oxivirt-check) $(cat /etc/oxivirt-check)"
  - echo "FQDN $(grep -c check-netv1.example.test /etc/hosts)"
EOF
      cat >"$d/network-config" <<'EOF'
version: 1
config:
  - type: physical
    name: eth0
    mac_address: "52:54:00:0a:bc:01"
    subnets:
      - type: static
        address: 10.0.2.21
        netmask: 255.255.255.0
        gateway: 10.0.2.2
        dns_nameservers: [10.0.2.3]
  - type: nameserver
    address: [10.0.2.3]
    search: [example.test]
EOF
      seedopts=(-u "$d/user-data" -n "$d/network-config")
      nic="user,model=virtio-net-pci,mac=52:54:00:0a:bc:01"
      expect+=("^BOOTCMD-OK" "^ADDR 10.0.2.21/24" "^GW 10.0.2.2" "^DNS 10.0.2.3" "^SEARCH example.test"
        "^FILE 600 written by cloud-init" "^FQDN 1")
      ;;
    netv2) # NoCloud on vfat (CIDATA), network-config v2 (match + set-name), passwords, groups
      cat >"$d/user-data" <<'EOF'
#cloud-config
hostname: check-netv2
password: oxivirt-pw
chpasswd:
  expire: false
  list: |
    root:rootpw
users:
  - default
  - name: dev
    groups: [wheel, users]
    passwd: $6$salt$WNAeh7R6B6mB1x6sJ7ykD5Rq0HVPv6Zf8v/8c.Y4VqS6y3xo7F4z2W3yYxJ1Y8xw7q2sC3vjvzqkVZbYqRnp1
    lock_passwd: false
runcmd:
  - echo "RUNCMD-OK mode=netv2 host=$(hostname)"
  - ip -o link show net0 >/dev/null && echo "RENAMED net0"
  - ip -4 -o addr show dev net0 | awk '{ print "ADDR", $4 }'
  - ip -4 route show 192.0.2.0/24 | awk '{ print "ROUTE", $1, $3 }'
  - echo "SHADOW $(awk -F":" '$1 == "oxivirt" || $1 == "root" || $1 == "dev" { printf "%s=%s ", $1, substr($2, 1, 3) }' /etc/shadow)"
  - echo "GROUPS $(id -Gn dev)"
EOF
      cat >"$d/network-config" <<'EOF'
network:
  version: 2
  ethernets:
    id0:
      match:
        macaddress: "52:54:00:0a:bc:02"
      set-name: net0
      addresses: [10.0.2.22/24]
      gateway4: 10.0.2.2
      routes:
        - to: 192.0.2.0/24
          via: 10.0.2.2
      nameservers:
        addresses: [10.0.2.3]
EOF
      seedopts=(-t vfat -u "$d/user-data" -n "$d/network-config")
      nic="user,model=virtio-net-pci,mac=52:54:00:0a:bc:02"
      expect+=("^RENAMED net0" "^ADDR 10.0.2.22/24" "^ROUTE 192.0.2.0/24 10.0.2.2"
        "^SHADOW root=.6. oxivirt=.6. dev=.6." "^GROUPS dev wheel users")
      ;;
    configdrive) # ConfigDrive (config-2): meta_data.json keys + hostname, network_data.json, script user-data
      cat >"$d/user-data" <<'EOF'
#!/bin/bash
echo "RUNCMD-OK mode=configdrive host=$(hostname)"
ip -4 -o addr show dev eth0 | awk '{ print "ADDR", $4 }'
echo "KEYS $(wc -l < /home/oxivirt/.ssh/authorized_keys)"
EOF
      printf '{"uuid": "boot-check-configdrive", "hostname": "check-configdrive", "public_keys": {"k": "%s"}}\n' "$PUBKEY" >"$d/meta_data.json"
      cat >"$d/network_data.json" <<'EOF'
{"links": [{"id": "interface_0", "type": "phy", "ethernet_mac_address": "52:54:00:0a:bc:03"}],
 "networks": [{"id": "network0", "type": "ipv4", "link": "interface_0", "ip_address": "10.0.2.23",
   "netmask": "255.255.255.0", "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}]}],
 "services": [{"type": "dns", "address": "10.0.2.3"}]}
EOF
      seedopts=(-f configdrive -u "$d/user-data" -m "$d/meta_data.json" -n "$d/network_data.json")
      nic="user,model=virtio-net-pci,mac=52:54:00:0a:bc:03"
      expect+=("^ADDR 10.0.2.23/24" "^KEYS 1")
      ;;
    *) log "unknown mode $mode"; return 1 ;;
  esac
  "$OUT/make-seed.sh" -o "$d/seed.img" "${seedopts[@]}"
  log="$d/serial.log"
  case "$mode" in
    kernel|netv1|netv2|configdrive) args=(-kernel "$OUT/vmlinuz" -initrd "$OUT/initrd.img" -append "console=ttyS0 quiet") ;;
    bios) cp --sparse=always "$OUT/disk.raw" "$d/disk.raw"
      args=(-drive "file=$d/disk.raw,format=raw,if=virtio") ;;
    containerdisk) pull_containerdisk "$d" || { log "containerdisk: push/pull through the registry failed"; FAIL=1; RESULT[$mode]=FAIL; echo "$mode: FAIL"; return 0; }
      qemu-img create -q -f qcow2 -F qcow2 -b "$d/pulled/disk/disk.qcow2" "$d/overlay.qcow2"
      args=(-drive "file=$d/overlay.qcow2,format=qcow2,if=virtio") ;;
    uefi) [ -n "$OVMF_CODE" ] || { log "uefi: no OVMF"; return 1; }
      cp "$OVMF_VARS" "$d/vars.fd"
      qemu-img create -q -f qcow2 -F qcow2 -b "$OUT/disk.qcow2" "$d/overlay.qcow2"
      args=(-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
        -drive "if=pflash,format=raw,unit=1,file=$d/vars.fd"
        -drive "file=$d/overlay.qcow2,format=qcow2,if=virtio") ;;
    uefi-sb) [ -f /usr/share/OVMF/OVMF_CODE_4M.secboot.fd ] || { log "uefi-sb: no OVMF_CODE_4M.secboot.fd"; return 1; }
      cp /usr/share/OVMF/OVMF_VARS_4M.ms.fd "$d/vars.fd"
      qemu-img create -q -f qcow2 -F qcow2 -b "$OUT/disk.qcow2" "$d/overlay.qcow2"
      expect+=("^oxivirt-test-guest: firmware=uefi secureboot=on")
      # SMM keeps the guest from writing the variable store behind the firmware's back.
      args=(-machine smm=on -global driver=cfi.pflash01,property=secure,value=on
        -global ICH9-LPC.disable_s3=1
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
        -drive "if=pflash,format=raw,unit=1,file=$d/vars.fd"
        -drive "file=$d/overlay.qcow2,format=qcow2,if=virtio") ;;
  esac
  local mem="${BOOT_CHECK_MEM:-256}"
  # GRUB 2.06 on OVMF runs out of memory loading the (larger) generic kernel in 256 MiB
  if { [ "$mode" = uefi ] || [ "$mode" = uefi-sb ]; } && grep -q '^flavour=generic' "$OUT/build-info.txt" && [ "$mem" -lt 512 ]; then mem=512; fi
  start=$(now_ms)
  qemu-system-x86_64 -machine q35,accel=tcg -m "$mem" -smp 1 -nographic -monitor none -no-reboot \
    -name "guest=boot-check_$mode" \
    -chardev "socket,id=ser0,path=$d/console.sock,server=on,wait=off,logfile=$d/serial.log" \
    -serial chardev:ser0 \
    -qmp "unix:$d/qmp.sock,server=on,wait=off" \
    "${args[@]}" \
    -drive "file=$d/seed.img,format=raw,if=virtio,readonly=on" \
    -nic "$nic" \
    -device virtio-serial-pci \
    -chardev "socket,id=ga0,path=$d/ga.sock,server=on,wait=off" \
    -device virtserialport,chardev=ga0,name=org.qemu.guest_agent.0 \
    </dev/null >"$d/qemu.out" 2>&1 &
  QEMU_PID=$!
  while :; do
    local el=$(($(now_ms) - start))
    if [ -z "$t_ready" ] && grep -qa '^OXIVIRT-TEST-GUEST READY' "$log" 2>/dev/null; then t_ready=$el; fi
    if [ -n "$t_ready" ] && grep -qa 'oxivirt-test-guest login:' "$log" 2>/dev/null; then t_login=$el; break; fi
    if ! kill -0 "$QEMU_PID" 2>/dev/null; then log "$mode: QEMU exited early"; cat "$d/qemu.out" >&2; break; fi
    [ $el -lt $((TIMEOUT * 1000)) ] || { log "$mode: timeout after ${TIMEOUT}s"; break; }
    sleep 0.05
  done
  if [ -z "$t_ready" ]; then ok=0; fi
  local e
  for e in "${expect[@]}"; do
    grep -qaE "$e" "$log" || { log "$mode: missing on the console: $e"; ok=0; }
  done
  local extra=""
  if [ $ok = 1 ] && [ "$mode" = kernel ]; then
    # console login as root without a password
    if perl "$W/sock.pl" console "$d/console.sock" 'root' 'root@check-kernel:~# ' >"$d/console.out" 2>&1; then extra+=" console-login=ok"
    else extra+=" console-login=FAIL"; ok=0; fi
    # the real qemu-guest-agent over virtio-serial
    local ga
    ga=$(perl "$W/sock.pl" ga "$d/ga.sock" '{"execute":"guest-get-osinfo"}' 2>&1 || true)
    if echo "$ga" | grep -q '"id": *"oxivirt-test-guest"'; then extra+=" agent-osinfo=ok"; else extra+=" agent-osinfo=FAIL"; ok=0; log "ga: $ga"; fi
    ga=$(perl "$W/sock.pl" ga "$d/ga.sock" '{"execute":"guest-get-host-name"}' 2>&1 || true)
    if echo "$ga" | grep -q '"host-name": *"check-kernel"'; then extra+=" agent-hostname=ok"; else extra+=" agent-hostname=FAIL"; ok=0; log "ga: $ga"; fi
    # SSH into dropbear with the key injected through cloud-init
    if [ $HAVE_SSH = 1 ]; then
      local sshout
      sshout=$(timeout 60 ssh -i "$W/id" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o ConnectTimeout=30 -o LogLevel=ERROR tester@127.0.0.1 'echo SSH-OK $(id -un)@$(hostname)' 2>&1 || true)
      if [ "$sshout" = "SSH-OK tester@check-kernel" ]; then extra+=" ssh=ok"; else extra+=" ssh=FAIL"; ok=0; log "ssh: $sshout"; fi
      sshout=$(timeout 60 ssh -i "$W/id" -p "$port" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o ConnectTimeout=30 -o LogLevel=ERROR root@127.0.0.1 'echo SSH-OK $(id -un)@$(hostname)' 2>&1 || true)
      if [ "$sshout" = "SSH-OK root@check-kernel" ]; then extra+=" ssh-root=ok"; else extra+=" ssh-root=FAIL"; ok=0; log "ssh root: $sshout"; fi
    fi
    # ACPI power button: QEMU must exit on its own
    perl "$W/sock.pl" qmp "$d/qmp.sock" '{"execute":"system_powerdown"}' >/dev/null 2>&1 || true
    local t0; t0=$(now_ms)
    while kill -0 "$QEMU_PID" 2>/dev/null && [ $(($(now_ms) - t0)) -lt 30000 ]; do sleep 0.1; done
    if kill -0 "$QEMU_PID" 2>/dev/null; then extra+=" acpi-poweroff=FAIL"; ok=0
    else extra+=" acpi-poweroff=ok($(($(now_ms) - t0))ms)"; fi
  fi
  kill "$QEMU_PID" 2>/dev/null || true
  wait "$QEMU_PID" 2>/dev/null || true
  QEMU_PID=""
  local fmt_ready fmt_login
  fmt_ready=$([ -n "$t_ready" ] && printf '%d.%02ds' $((t_ready / 1000)) $((t_ready % 1000 / 10)) || echo "-")
  fmt_login=$([ -n "$t_login" ] && printf '%d.%02ds' $((t_login / 1000)) $((t_login % 1000 / 10)) || echo "-")
  RESULT[$mode]="$( [ $ok = 1 ] && echo PASS || echo FAIL ) banner=$fmt_ready login-prompt=$fmt_login$extra"
  if [ $ok != 1 ]; then
    FAIL=1
    log "$mode: serial log follows"; sed 's/^/  | /' "$log" >&2 || true
  fi
  echo "$mode: ${RESULT[$mode]}"
}

log "guest: $OUT"
log "qemu: $(qemu-system-x86_64 --version | head -n1); OVMF: ${OVMF_CODE:-none}"
for m in $MODES; do boot "$m" || FAIL=1; done
exit $FAIL
