#!/bin/sh
# A tiny cloud-init: reads a NoCloud seed (filesystem label cidata/CIDATA, ISO 9660 or vfat) or a
# ConfigDrive (label config-2) and applies what tests need. Usage: nocloud.sh init|final
#
#   init:  hostname (meta-data local-hostname, user-data hostname/fqdn), users (name, passwd,
#          hashed_passwd, plain_text_passwd, lock_passwd, ssh_authorized_keys, groups, shell,
#          homedir, gecos, uid), top-level ssh_authorized_keys and password (default user),
#          chpasswd (list / users), write_files, bootcmd, network config v1/v2 (or ConfigDrive
#          network_data.json; without any: DHCP on the first NIC)
#   final: runcmd, a user-data shell script (#!...), power_state
#
# Everything is logged to the serial console with a "nocloud:" prefix and to
# /var/log/cloud-init.log; command output goes to the console and /var/log/cloud-init-output.log.

DEFAULT_USER=oxivirt
SEED=/run/oxivirt/seed
STATE=/run/oxivirt
LIB=/usr/lib/oxivirt
mkdir -p "$STATE" /var/lib/cloud/instance/scripts /var/log

log() { echo "nocloud: $*"; echo "$(cut -d' ' -f1 /proc/uptime) $*" >>/var/log/cloud-init.log; }

# ---- flat config access ("path<TAB>escaped value" files made by yaml2flat/json2flat) ------------
UD=$STATE/user-data.flat MD=$STATE/meta-data.flat NC=$STATE/network-config.flat
touch "$UD" "$MD" "$NC"

# get FILE KEY: the decoded value of KEY (empty if absent); exit status 1 if absent
get() {
  awk -F'\t' -v k="$2" '
    function unesc(s,  r, i, c, n) { r = ""; n = length(s)
      for (i = 1; i <= n; i++) { c = substr(s, i, 1)
        if (c == "\\") { i++; c = substr(s, i, 1); if (c == "n") c = "\n"; else if (c == "t") c = "\t" }
        r = r c }
      return r }
    $1 == k { v = substr($0, length($1) + 2); printf "%s", unesc(v); f = 1; exit }
    END { exit f ? 0 : 1 }' "$1"
}
has() { awk -F'\t' -v k="$2" 'index($1, k) == 1 && (length($1) == length(k) || substr($1, length(k) + 1, 1) == ".") { f = 1; exit } END { exit f ? 0 : 1 }' "$1"; }
# kids FILE PREFIX: the distinct next path components under PREFIX ("" for the top), in order
kids() {
  awk -F'\t' -v p="$2" '
    { k = $1
      if (p != "") { if (index(k, p ".") != 1) next; k = substr(k, length(p) + 2) }
      sub(/\..*/, "", k); if (!(k in seen)) { seen[k] = 1; print k } }' "$1"
}
# list FILE KEY: the items of a list (one per line), or of a comma-separated string
list() {
  if [ -n "$(kids "$1" "$2")" ] && ! get "$1" "$2" >/dev/null; then
    for i in $(kids "$1" "$2"); do get "$1" "$2.$i"; echo; done
  else
    get "$1" "$2" | tr ',' '\n' | sed 's/^ *//; s/ *$//' | grep -v '^$'
  fi
}
truthy() { case "$1" in [Tt]rue|[Yy]es|[Oo]n|1) return 0 ;; *) return 1 ;; esac; }
falsy() { case "$1" in [Ff]alse|[Nn]o|[Oo]ff|0) return 0 ;; *) return 1 ;; esac; }
shquote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

to_flat() { # to_flat SRC DST: YAML or JSON to flat
  if [ ! -s "$1" ]; then : >"$2"; return; fi
  if sed -n '/[^ \t]/{p;q;}' "$1" | grep -q '^[ \t]*[{[]'; then
    awk -f $LIB/json2flat.awk "$1" >"$2"
  else
    awk -f $LIB/yaml2flat.awk "$1" >"$2"
  fi
}

# ---- seed discovery --------------------------------------------------------------------------
find_seed() {
  for lbl in cidata CIDATA config-2 CONFIG-2; do
    dev=$(findfs "LABEL=$lbl" 2>/dev/null) || continue
    mkdir -p $SEED
    for t in iso9660 vfat; do
      if mount -t $t -o ro "$dev" $SEED 2>/dev/null; then
        echo "$lbl $dev $t" >$STATE/seed.info
        return 0
      fi
    done
  done
  return 1
}

load_seed() {
  read -r lbl dev fstype <$STATE/seed.info
  case "$lbl" in
    config-2|CONFIG-2)
      KIND=configdrive
      d=$SEED/openstack/latest
      to_flat $d/meta_data.json $MD
      [ -f $d/user_data ] && cp $d/user_data $STATE/user-data
      to_flat $d/network_data.json $STATE/network_data.flat
      ;;
    *)
      KIND=nocloud
      to_flat $SEED/meta-data $MD
      [ -f $SEED/user-data ] && cp $SEED/user-data $STATE/user-data
      if [ -s $SEED/network-config ]; then
        to_flat $SEED/network-config $NC
        # accept both a bare config and one wrapped in "network:"
        if has $NC network; then sed -i 's/^network\.//' $NC; fi
      fi
      ;;
  esac
  log "found $KIND seed on $dev ($fstype, label $lbl)"
  USERDATA_KIND=none
  if [ -s $STATE/user-data ]; then
    case "$(head -c 64 $STATE/user-data)" in
      "#cloud-config"*) USERDATA_KIND=cloud-config; to_flat $STATE/user-data $UD ;;
      "#!"*) USERDATA_KIND=script ;;
      *) USERDATA_KIND=unsupported ;;
    esac
    log "user-data: $USERDATA_KIND"
  fi
}

# ---- users -----------------------------------------------------------------------------------
today() { echo $(($(date +%s) / 86400)); }

set_shadow() { # set_shadow USER FIELD2
  awk -F: -v OFS=: -v u="$1" -v p="$2" -v d="$(today)" '$1 == u { $2 = p; $3 = d } { print }' /etc/shadow >/etc/shadow.new &&
    cat /etc/shadow.new >/etc/shadow && rm -f /etc/shadow.new
}
shadow_of() { awk -F: -v u="$1" '$1 == u { print $2 }' /etc/shadow; }

add_to_group() { # add_to_group USER GROUP
  grep -q "^$2:" /etc/group || echo "$2:x:$(next_id /etc/group 1000):" >>/etc/group
  awk -F: -v OFS=: -v u="$1" -v g="$2" '$1 == g { n = split($4, m, ","); f = 0
      for (i = 1; i <= n; i++) if (m[i] == u) f = 1
      if (!f) $4 = ($4 == "" ? u : $4 "," u) } { print }' /etc/group >/etc/group.new &&
    cat /etc/group.new >/etc/group && rm -f /etc/group.new
}
next_id() { awk -F: -v min="$2" '$3 >= min && $3 < 60000 && $3 >= m { m = $3 + 1 } END { print (m > min ? m : min) }' "$1"; }

ensure_user() { # ensure_user NAME [UID] [HOME] [SHELL] [GECOS] [PRIMARY_GROUP]
  name=$1
  if ! grep -q "^$name:" /etc/passwd; then
    uid=${2:-$(next_id /etc/passwd 1000)}
    home=${3:-/home/$name}
    shell=${4:-/bin/sh}
    pg=${6:-$name}
    grep -q "^$pg:" /etc/group || echo "$pg:x:$uid:" >>/etc/group
    gid=$(awk -F: -v g="$pg" '$1 == g { print $3 }' /etc/group)
    echo "$name:x:$uid:$gid:${5:-$name}:$home:$shell" >>/etc/passwd
    echo "$name:*:$(today):0:99999:7:::" >>/etc/shadow
    mkdir -p "$home" && chown "$uid:$gid" "$home" && chmod 755 "$home"
    log "created user $name (uid $uid)"
  fi
}

home_of() { awk -F: -v u="$1" '$1 == u { print $6 }' /etc/passwd; }

add_keys() { # add_keys USER < keys
  h=$(home_of "$1"); [ -n "$h" ] || return 0
  mkdir -p "$h/.ssh"
  n=0
  while IFS= read -r k; do
    [ -n "$k" ] || continue
    grep -qxF "$k" "$h/.ssh/authorized_keys" 2>/dev/null || echo "$k" >>"$h/.ssh/authorized_keys"
    n=$((n + 1))
  done
  ug=$(awk -F: -v u="$1" '$1 == u { print $3 ":" $4 }' /etc/passwd)
  chown -R "$ug" "$h/.ssh"; chmod 700 "$h/.ssh"; chmod 600 "$h/.ssh/authorized_keys" 2>/dev/null
  [ $n -gt 0 ] && log "$n ssh key(s) authorized for $1"
  return 0
}

set_password() { # set_password USER PLAIN
  set_shadow "$1" "$(printf '%s\n' "$2" | mkpasswd -m sha512 -P 0)"
  log "password set for $1"
}

apply_user() { # apply_user INDEX
  p=users.$1
  name=$(get $UD $p.name) || return 0
  case "$name" in default) apply_default_user; return ;; esac
  ensure_user "$name" "$(get $UD $p.uid)" "$(get $UD $p.homedir)" "$(get $UD $p.shell)" \
    "$(get $UD $p.gecos)" "$(get $UD $p.primary_group)"
  list $UD $p.groups | while IFS= read -r g; do [ -n "$g" ] && add_to_group "$name" "$g"; done
  if hp=$(get $UD $p.hashed_passwd) || hp=$(get $UD $p.passwd); then
    set_shadow "$name" "$hp"; log "password hash set for $name"
  fi
  if pp=$(get $UD $p.plain_text_passwd); then set_password "$name" "$pp"; fi
  if ! falsy "$(get $UD $p.lock_passwd)"; then
    # cloud-init locks the password by default; "*" (not "!") so SSH keys still work in dropbear
    set_shadow "$name" "*"; log "password login locked for $name (lock_passwd)"
  fi
  list $UD $p.ssh_authorized_keys | add_keys "$name"
}

apply_default_user() {
  ensure_user $DEFAULT_USER 1000 /home/$DEFAULT_USER /bin/sh "oxivirt test user"
  add_to_group $DEFAULT_USER wheel
}

apply_users() {
  if has $UD users; then
    for i in $(kids $UD users); do
      if v=$(get $UD users.$i); then
        [ "$v" = default ] && apply_default_user
        # "- name" (a bare user name) is allowed by cloud-init too
        [ "$v" != default ] && [ -n "$v" ] && ensure_user "$v"
      else
        apply_user "$i"
      fi
    done
  else
    apply_default_user
  fi
  # top-level keys: the default user and (this guest has disable_root: false) root
  if has $UD ssh_authorized_keys || has $MD public_keys; then
    keys=$STATE/keys
    { list $UD ssh_authorized_keys; for k in $(kids $MD public_keys); do get $MD public_keys.$k; echo; done; } >$keys
    grep -q "^$DEFAULT_USER:" /etc/passwd && add_keys $DEFAULT_USER <$keys
    truthy "$(get $UD disable_root)" || add_keys root <$keys
  fi
  if pw=$(get $UD password); then
    grep -q "^$DEFAULT_USER:" /etc/passwd && set_password $DEFAULT_USER "$pw"
  fi
  # chpasswd: {list: "user:pass\n..."} or {users: [{name, password, type: text|hash|RANDOM}]}
  if l=$(get $UD chpasswd.list); then
    printf '%s\n' "$l" | while IFS= read -r line; do
      [ -n "$line" ] || continue
      u=${line%%:*} pw=${line#*:}
      case "$pw" in \$*) set_shadow "$u" "$pw"; log "password hash set for $u" ;; *) set_password "$u" "$pw" ;; esac
    done
  fi
  for i in $(kids $UD chpasswd.users); do
    u=$(get $UD chpasswd.users.$i.name) || continue
    pw=$(get $UD chpasswd.users.$i.password) || continue
    case "$(get $UD chpasswd.users.$i.type)" in hash) set_shadow "$u" "$pw" ;; *) set_password "$u" "$pw" ;; esac
  done
}

# ---- write_files ----------------------------------------------------------------------------
apply_write_files() {
  for i in $(kids $UD write_files); do
    p=write_files.$i
    path=$(get $UD $p.path) || continue
    case "$(get $UD $p.defer)" in [Tt]rue) [ "$STAGE" = final ] || continue ;; *) [ "$STAGE" = init ] || continue ;; esac
    mkdir -p "$(dirname "$path")"
    enc=$(get $UD $p.encoding)
    tmp=$STATE/wf.tmp
    case "$enc" in
      b64|base64) get $UD $p.content | base64 -d >$tmp ;;
      gz+b64|gzip+base64|gz+base64) get $UD $p.content | base64 -d | gunzip >$tmp ;;
      *) get $UD $p.content >$tmp ;;
    esac
    if truthy "$(get $UD $p.append)"; then cat $tmp >>"$path"; else cat $tmp >"$path"; fi
    rm -f $tmp
    chmod "$(get $UD $p.permissions || echo 0644)" "$path"
    o=$(get $UD $p.owner) && chown "$o" "$path" 2>/dev/null
    log "wrote $path"
  done
}

# ---- commands (bootcmd, runcmd) --------------------------------------------------------------
write_cmds() { # write_cmds KEY SCRIPT
  echo "#!/bin/sh" >"$2"
  for i in $(kids $UD "$1"); do
    if c=$(get $UD "$1.$i"); then
      printf '%s\n' "$c" >>"$2"
    else
      line=""
      for j in $(kids $UD "$1.$i"); do line="$line $(shquote "$(get $UD "$1.$i.$j")")"; done
      printf '%s\n' "${line# }" >>"$2"
    fi
  done
  chmod 700 "$2"
}
run_logged() { # run_logged NAME SCRIPT
  log "running $1"
  ( cd /root && HOME=/root "$2" ) 2>&1 | tee -a /var/log/cloud-init-output.log
  log "$1 finished"
}

# ---- network ---------------------------------------------------------------------------------
iface_by_mac() {
  want=$(echo "$1" | tr A-F a-f)
  for d in /sys/class/net/*; do
    [ "$(cat $d/address 2>/dev/null)" = "$want" ] && { basename $d; return 0; }
  done
  return 1
}
first_nic() {
  for d in /sys/class/net/*; do
    n=$(basename $d)
    [ "$n" = lo ] && continue
    [ -e $d/device ] || continue
    echo $n; return 0
  done
  return 1
}
mask2prefix() { # dotted netmask or prefix -> prefix
  case "$1" in
    *.*) ipcalc -p 0.0.0.0 "$1" | sed 's/PREFIX=//' ;;
    *:*) echo 64 ;;
    *) echo "$1" ;;
  esac
}
DNS_SERVERS="" DNS_SEARCH=""
add_dns() { for a in "$@"; do case " $DNS_SERVERS " in *" $a "*) ;; *) DNS_SERVERS="$DNS_SERVERS $a" ;; esac; done; }
add_search() { for a in "$@"; do case " $DNS_SEARCH " in *" $a "*) ;; *) DNS_SEARCH="$DNS_SEARCH $a" ;; esac; done; }
write_resolv() {
  [ -n "$DNS_SERVERS$DNS_SEARCH" ] || return 0
  { [ -n "$DNS_SEARCH" ] && echo "search$DNS_SEARCH"; for a in $DNS_SERVERS; do echo "nameserver $a"; done; } >/etc/resolv.conf
  log "dns:$DNS_SERVERS${DNS_SEARCH:+ search$DNS_SEARCH}"
}
link_up() { # link_up IFACE [NEWNAME] [MTU]
  ifc=$1
  if [ -n "$2" ] && [ "$2" != "$1" ]; then ip link set "$1" down; ip link set "$1" name "$2" && ifc=$2; fi
  [ -n "$3" ] && ip link set "$ifc" mtu "$3"
  ip link set "$ifc" up
  echo "$ifc"
}
dhcp4() {
  log "dhcp on $1"
  udhcpc -i "$1" -b -t 2 -T 1 -A 3 -S -s /usr/share/udhcpc/default.script -p /run/udhcpc.$1.pid \
    -x hostname:"$(hostname)" >>/var/log/udhcpc.log 2>&1
}
static_addr() { # static_addr IFACE CIDR
  ip addr add "$2" dev "$1" && log "address $2 on $1"
}
route() { # route IFACE DEST VIA [METRIC]
  case "$2" in 0.0.0.0/0|default|0.0.0.0|::/0) dest=default ;; *) dest=$2 ;; esac
  fam=-4; case "$3$2" in *:*) fam=-6 ;; esac
  ip $fam route replace $dest via "$3" dev "$1" ${4:+metric $4} && log "route $dest via $3 dev $1"
}

net_v1() {
  for i in $(kids $NC config); do
    p=config.$i
    type=$(get $NC $p.type)
    case "$type" in
      physical)
        name=$(get $NC $p.name)
        mac=$(get $NC $p.mac_address)
        cur=""
        [ -n "$mac" ] && cur=$(iface_by_mac "$mac")
        [ -z "$cur" ] && [ -e /sys/class/net/$name ] && cur=$name
        [ -n "$cur" ] || { log "v1: no interface for $name${mac:+ ($mac)}"; continue; }
        ifc=$(link_up "$cur" "$name" "$(get $NC $p.mtu)")
        for j in $(kids $NC $p.subnets); do
          s=$p.subnets.$j
          case "$(get $NC $s.type)" in
            dhcp|dhcp4) dhcp4 "$ifc" ;;
            dhcp6|ipv6_dhcpv6-stateful|ipv6_dhcpv6-stateless|ipv6_slaac) log "v1: $(get $NC $s.type) on $ifc: left to the kernel (SLAAC only)" ;;
            static|static6)
              a=$(get $NC $s.address)
              case "$a" in */*) ;; *) m=$(get $NC $s.netmask || get $NC $s.prefix || echo 24); a="$a/$(mask2prefix "$m")" ;; esac
              static_addr "$ifc" "$a"
              g=$(get $NC $s.gateway) && route "$ifc" default "$g"
              for r in $(kids $NC $s.routes); do
                n=$(get $NC $s.routes.$r.network || get $NC $s.routes.$r.destination)
                m=$(get $NC $s.routes.$r.prefix || get $NC $s.routes.$r.netmask)
                case "$n" in */*) ;; *) n="$n/$(mask2prefix "${m:-32}")" ;; esac
                route "$ifc" "$n" "$(get $NC $s.routes.$r.gateway)" "$(get $NC $s.routes.$r.metric)"
              done
              add_dns $(list $NC $s.dns_nameservers)
              add_search $(list $NC $s.dns_search)
              ;;
          esac
        done
        ;;
      nameserver)
        add_dns $(list $NC $p.address)
        add_search $(list $NC $p.search)
        ;;
      *) [ -n "$type" ] && log "v1: type $type not supported" ;;
    esac
  done
}

net_v2() {
  for id in $(kids $NC ethernets); do
    p=ethernets.$id
    cur=""
    if mac=$(get $NC $p.match.macaddress); then cur=$(iface_by_mac "$mac")
    elif n=$(get $NC $p.match.name); then
      for d in /sys/class/net/$n; do [ -e "$d" ] && { cur=$(basename $d); break; }; done
    elif [ -e /sys/class/net/$id ]; then cur=$id
    fi
    [ -n "$cur" ] || { log "v2: no interface for $id"; continue; }
    ifc=$(link_up "$cur" "$(get $NC $p.set-name)" "$(get $NC $p.mtu)")
    truthy "$(get $NC $p.dhcp4)" && dhcp4 "$ifc"
    truthy "$(get $NC $p.dhcp6)" && log "v2: dhcp6 on $ifc: left to the kernel (SLAAC only)"
    list $NC $p.addresses | while IFS= read -r a; do static_addr "$ifc" "$a"; done
    g=$(get $NC $p.gateway4) && route "$ifc" default "$g"
    g=$(get $NC $p.gateway6) && route "$ifc" ::/0 "$g"
    for r in $(kids $NC $p.routes); do
      route "$ifc" "$(get $NC $p.routes.$r.to)" "$(get $NC $p.routes.$r.via)" "$(get $NC $p.routes.$r.metric)"
    done
    add_dns $(list $NC $p.nameservers.addresses)
    add_search $(list $NC $p.nameservers.search)
  done
}

net_configdrive() { # OpenStack network_data.json (what KubeVirt's ConfigDrive carries)
  F=$STATE/network_data.flat
  for i in $(kids $F networks); do
    p=networks.$i
    link=$(get $F $p.link)
    mac=""
    for l in $(kids $F links); do
      [ "$(get $F links.$l.id)" = "$link" ] && mac=$(get $F links.$l.ethernet_mac_address)
    done
    cur=""; [ -n "$mac" ] && cur=$(iface_by_mac "$mac")
    [ -n "$cur" ] || cur=$(first_nic) || continue
    ifc=$(link_up "$cur")
    case "$(get $F $p.type)" in
      ipv4_dhcp|dhcp4) dhcp4 "$ifc" ;;
      ipv4|ipv6)
        a=$(get $F $p.ip_address)
        case "$a" in */*) ;; *) a="$a/$(mask2prefix "$(get $F $p.netmask || echo 24)")" ;; esac
        static_addr "$ifc" "$a"
        for r in $(kids $F $p.routes); do
          n=$(get $F $p.routes.$r.network); m=$(get $F $p.routes.$r.netmask)
          route "$ifc" "$n/$(mask2prefix "$m")" "$(get $F $p.routes.$r.gateway)"
        done
        ;;
    esac
  done
  for s in $(kids $F services); do
    [ "$(get $F services.$s.type)" = dns ] && add_dns "$(get $F services.$s.address)"
  done
}

apply_network() {
  ip link set lo up
  if [ -s $NC ] && [ "$(get $NC version)" = 1 ]; then
    log "network-config v1"; net_v1
  elif [ -s $NC ] && [ "$(get $NC version)" = 2 ]; then
    log "network-config v2"; net_v2
  elif [ -s $STATE/network_data.flat ] && has $STATE/network_data.flat networks; then
    log "network_data.json"; net_configdrive
  elif [ -s $NC ]; then
    log "network-config: unsupported version '$(get $NC version)'"
  else
    ifc=$(first_nic) && { link_up "$ifc" >/dev/null; log "no network config: fallback dhcp on $ifc"; dhcp4 "$ifc"; }
  fi
  write_resolv
}

set_hostname() {
  h=$(get $UD fqdn) || h=$(get $UD hostname) || h=$(get $MD local-hostname) || h=$(get $MD hostname) || h=$(get $MD name) || return 0
  short=${h%%.*}
  truthy "$(get $UD prefer_fqdn_over_hostname)" && short=$h
  hostname "$short"
  echo "$short" >/etc/hostname
  sed -i '/^127\.0\.1\.1/d' /etc/hosts
  if [ "$short" != "$h" ]; then printf '127.0.1.1\t%s %s\n' "$h" "$short" >>/etc/hosts
  else printf '127.0.1.1\t%s\n' "$short" >>/etc/hosts; fi
  log "hostname $short"
}

# ---- stages ----------------------------------------------------------------------------------
STAGE=${1:-init}
case "$STAGE" in
  init)
    if find_seed; then
      load_seed
      echo "$KIND $USERDATA_KIND" >$STATE/kind
      iid=$(get $MD instance-id || get $MD uuid) && { log "instance-id $iid"; echo "$iid" >$STATE/instance-id; }
      if [ -n "$(kids $UD bootcmd)" ]; then write_cmds bootcmd /var/lib/cloud/instance/scripts/bootcmd; run_logged bootcmd /var/lib/cloud/instance/scripts/bootcmd; fi
      set_hostname
      apply_users
      apply_write_files
      truthy "$(get $UD ssh_pwauth)" && echo yes >$STATE/ssh_pwauth
      falsy "$(get $UD ssh_pwauth)" && echo no >$STATE/ssh_pwauth
    else
      log "no NoCloud/ConfigDrive seed found"
      echo "none none" >$STATE/kind
      apply_default_user
    fi
    apply_network
    ;;
  final)
    read -r KIND USERDATA_KIND <$STATE/kind 2>/dev/null
    [ "$KIND" = none ] && exit 0
    apply_write_files
    if [ -n "$(kids $UD runcmd)" ]; then
      write_cmds runcmd /var/lib/cloud/instance/scripts/runcmd
      run_logged runcmd /var/lib/cloud/instance/scripts/runcmd
    fi
    if [ "$USERDATA_KIND" = script ]; then
      cp $STATE/user-data /var/lib/cloud/instance/scripts/part-001
      chmod 700 /var/lib/cloud/instance/scripts/part-001
      run_logged "user-data script" /var/lib/cloud/instance/scripts/part-001
    fi
    echo "{\"v1\": {\"datasource\": \"$KIND\", \"errors\": []}}" >$STATE/result.json
    if mode=$(get $UD power_state.mode); then
      delay=$(get $UD power_state.delay); case "$delay" in now|"") delay=0 ;; +*) delay=$((${delay#+} * 60)) ;; esac
      msg=$(get $UD power_state.message) && log "$msg"
      case "$mode" in poweroff|reboot|halt)
        log "power_state: $mode in ${delay}s"
        ( sleep "$delay"; /bin/busybox "$mode" ) &
      esac
    fi
    ;;
esac
exit 0
