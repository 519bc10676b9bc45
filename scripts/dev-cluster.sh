#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this Linux machine: no Docker, no kind, no registry.
#   scripts/dev-cluster.sh up       builds (once, cached) and starts it; prints KUBECONFIG
#   scripts/dev-cluster.sh status   what runs, the node, the pods
#   scripts/dev-cluster.sh down     stops what `up` started (by PID) and restores the host settings
#   scripts/dev-cluster.sh up --owner PID   the same, for a test run: when process PID ends without
#                                   `down` (killed, crashed), a watchdog brings the node down; a later
#                                   `up` also replaces a node whose owner is gone
#   scripts/dev-cluster.sh kubelet-stop|kubelet-start   stops/starts only the kubelet (fault tests)
#   scripts/dev-cluster.sh clean-stale|wait-free   brings down a stale node / also waits out another run's
# Parts: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy built
# from Go modules at one version (tests/k8s, scripts/ensure-deps.d/k8s.sh); containerd + runc + CNI
# plugins from Debian; dnsmasq answering <service>.<namespace>.svc[.cluster.local] from the
# Services (instead of CoreDNS, which is not built here); a static pause image. The node advertises
# nvidia.com/gpu (LLEM_NODE_GPUS, default 8) as an extended resource patched on its status: pods
# schedule against it, but there is no GPU. Needs root, cgroups v1 or v2 and overlayfs.
# Why each setting is what it is: docs/adr/0010-real-node-test-bed.md. Facts: docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=/dev/null
source tests/k8s/versions.env
CACHE="${LLEM_CACHE:-$HOME/.cache/llem}"
BIN="${LLEM_K8S_BIN:-$CACHE/k8s}/$K8S_VERSION"
TOP="${LLEM_CLUSTER_DIR:-$CACHE/dev-cluster}"
RUN="$TOP/run"                 # this cluster's state: recreated by every `up`
CTRD_ROOT="$TOP/containerd"    # containerd's content store: kept, so imported images stay warm
NODE_NAME="${LLEM_NODE_NAME:-llem-node}"
GPUS="${LLEM_NODE_GPUS:-8}"
API_PORT="${LLEM_API_PORT:-6443}"
ETCD_PORT=12379
POD_CIDR=10.244.0.0/24
POD_GW=10.244.0.1
SVC_CIDR=10.96.0.0/16
BRIDGE=llem0
PAUSE_IMAGE=localhost/llem-pause:1
SOCK="$RUN/containerd.sock"
HOST_DIRS=(/var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/containers)
SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops net/ipv4/ip_forward
  net/ipv4/conf/all/route_localnet net/bridge/bridge-nf-call-iptables net/bridge/bridge-nf-call-ip6tables
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes net/netfilter/nf_conntrack_max)

log() { echo "dev-cluster: $*" >&2; }
die() { log "$*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

node_ip() { ip -4 route get 1.1.1.1 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }'; }

# A component started by `up`: its PID is recorded, and `down` signals only that PID (after checking
# that it still runs the same program, so a reused PID is never hit).
start() {
  local name=$1; shift
  # fd 9 is the lock (see locked): a component that kept it open would hold it for as long as it runs.
  setsid "$@" >"$RUN/logs/$name.log" 2>&1 < /dev/null 9>&- &
  echo $! > "$RUN/pids/$name"
  echo "$1" > "$RUN/pids/$name.exe"
}
running() {
  local name=$1 pid
  [ -f "$RUN/pids/$name" ] || return 1
  pid=$(cat "$RUN/pids/$name")
  [ -d "/proc/$pid" ] && [ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$(cat "$RUN/pids/$name.exe")")" ]
}
stop() {
  local name=$1 pid i
  running "$name" || { rm -f "$RUN/pids/$name"; return 0; }
  pid=$(cat "$RUN/pids/$name")
  [ "$pid" = "$$" ] && { rm -f "$RUN/pids/$name"; return 0; } # the watchdog, bringing the node down itself
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.2; done
  [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN/pids/$name"
}
wait_for() {
  local what=$1 secs=$2; shift 2
  local t0; t0=$(now)
  until "$@" >/dev/null 2>&1; do
    awk -v a="$t0" -v b="$(now)" -v s="$secs" 'BEGIN { exit !(b - a > s) }' && die "$what not ready after ${secs}s (logs: $RUN/logs)"
    sleep 0.2
  done
}
kctl() { "$BIN/kubectl" --kubeconfig "$RUN/admin.kubeconfig" "$@"; }

pki() {
  local d="$RUN/pki" ip=$1
  mkdir -p "$d"
  # EC P-256 keys: a tenth of RSA's key-generation time on a busy 2-core machine.
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
  openssl req -x509 "${ec[@]}" -nodes -days 30 -subj "/CN=llem-dev-ca" -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  cert() { # name CN O [SANs]
    openssl req "${ec[@]}" -nodes -subj "/CN=$2${3:+/O=$3}" -keyout "$d/$1.key" -out "$d/$1.csr" 2>/dev/null
    local ext="$d/$1.ext"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' > "$ext"
    [ -n "${4:-}" ] && echo "subjectAltName=$4" >> "$ext"
    openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 30 -extfile "$ext" \
      -out "$d/$1.crt" 2>/dev/null
  }
  cert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$ip,IP:10.96.0.1"
  cert admin llem-admin system:masters
  cert kubelet "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,IP:$ip,IP:127.0.0.1"
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert proxy system:kube-proxy system:node-proxier
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/sa.key" 2>/dev/null
  openssl ec -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  for who in admin kubelet controller-manager scheduler proxy; do
    cat > "$RUN/$who.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: llem-dev
  cluster: { server: "https://$ip:$API_PORT", certificate-authority: "$d/ca.crt" }
users:
- name: $who
  user: { client-certificate: "$d/$who.crt", client-key: "$d/$who.key" }
contexts:
- name: $who@llem-dev
  context: { cluster: llem-dev, user: $who, namespace: default }
current-context: $who@llem-dev
EOF
  done
}

pause_image() {
  grep -qx "$PAUSE_IMAGE" <<<"$(ctr -a "$SOCK" -n k8s.io images ls -q 2>/dev/null)" && return 0 # no pipe: pipefail + grep -q
  local d="$RUN/pause"
  mkdir -p "$d"
  cat > "$d/pause.c" <<'EOF'
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
static void bye(int s) { (void)s; exit(0); }
int main(void) { signal(SIGTERM, bye); signal(SIGINT, bye); for (;;) pause(); }
EOF
  gcc -static -O2 -o "$d/pause" "$d/pause.c"
  (cd "$d" && rm -rf oci && umoci init --layout oci && umoci new --image oci:1 \
    && umoci insert --image oci:1 pause /pause \
    && umoci config --image oci:1 --config.entrypoint /pause --config.user 65535:65535 \
    && tar -C oci -cf ../pause.tar .) >/dev/null
  ctr -a "$SOCK" -n k8s.io images import --base-name localhost/llem-pause "$RUN/pause.tar" >/dev/null
}

containerd_config() {
  mkdir -p "$RUN/cni" "$CTRD_ROOT"
  cat > "$RUN/containerd.toml" <<EOF
version = 2
root = "$CTRD_ROOT"
state = "$RUN/containerd-state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # The sandbox lacks CAP_SYS_RESOURCE: a negative oom_score_adj makes runc fail every sandbox.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RUN/cni"
EOF
  cat > "$RUN/cni/10-llem.conflist" <<EOF
{ "cniVersion": "1.0.0", "name": "llem", "plugins": [
  { "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
    "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$POD_GW" }]],
              "routes": [{ "dst": "0.0.0.0/0" }], "dataDir": "$RUN/cni-ipam" } },
  { "type": "portmap", "capabilities": { "portMappings": true } } ] }
EOF
}

kubelet_config() {
  local ip=$1
  # The host's resolv.conf for the node's own lookups; pods get dnsmasq on the bridge (clusterDNS).
  grep -v '^search' /etc/resolv.conf > "$RUN/resolv.conf" || true
  cat > "$RUN/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$SOCK
address: $ip
port: 10250
readOnlyPort: 0
healthzPort: 10248
authentication: { anonymous: { enabled: false }, webhook: { enabled: false }, x509: { clientCAFile: "$RUN/pki/ca.crt" } }
authorization: { mode: AlwaysAllow }
tlsCertFile: "$RUN/pki/kubelet.crt"
tlsPrivateKeyFile: "$RUN/pki/kubelet.key"
clusterDomain: cluster.local
clusterDNS: ["$POD_GW"]
resolvConf: "$RUN/resolv.conf"
# A shared test machine: evict only when nearly out, and never garbage-collect the imported images.
evictionHard: { memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%" }
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
syncFrequency: 5s
# Pod logs under this node's own directory (the default, /var/log/pods, outlives the node); the kubelet
# still links them from /var/log/containers, which dev-cluster.sh down cleans.
podLogsDir: "$RUN/pod-logs"
EOF
}

save_host() {
  [ -f "$TOP/host-settings" ] && return 0   # saved by an earlier `up` that was never brought down
  local s
  : > "$TOP/host-settings.tmp"
  for s in "${SYSCTLS[@]}"; do
    [ -r "/proc/sys/$s" ] && echo "$s $(cat "/proc/sys/$s")" >> "$TOP/host-settings.tmp"
  done
  ls /run/netns 2>/dev/null | sed 's/^/netns /' >> "$TOP/host-settings.tmp" || true
  # Paths the kubelet uses whatever its --root-dir says (the device-plugin socket directory).
  local d
  for d in "${HOST_DIRS[@]}"; do [ -e "$d" ] || echo "absent $d" >> "$TOP/host-settings.tmp"; done
  mv "$TOP/host-settings.tmp" "$TOP/host-settings"
}

restore_host() {
  [ -f "$TOP/host-settings" ] || return 0
  local k v t n
  while read -r k v; do
    [ "$k" = netns ] || [ "$k" = absent ] && continue
    [ -w "/proc/sys/$k" ] && [ "$(cat "/proc/sys/$k")" != "$v" ] && { echo "$v" > "/proc/sys/$k" 2>/dev/null || log "could not restore $k=$v"; }
  done < "$TOP/host-settings"
  # iptables: drop the KUBE-* and CNI-* chains (kubelet, kube-proxy, the bridge plugin) and every
  # rule that jumps to them; everything else in each table is restored as it is now.
  for ipt in iptables ip6tables; do
    command -v "$ipt-save" >/dev/null || continue
    for t in filter nat mangle raw; do
      "$ipt-save" -t "$t" >/dev/null 2>&1 || continue
      "$ipt-save" -t "$t" | grep -Ev '^:(KUBE|CNI)-|^-A (KUBE|CNI)-|-j (KUBE|CNI)-|--comment "?(kube|CNI|name: "llem")' \
        | "$ipt-restore" -T "$t" 2>/dev/null || log "could not clean $ipt table $t"
    done
  done
  # Network namespaces the CNI made for pods that were killed rather than deleted.
  for n in $(ls /run/netns 2>/dev/null); do
    case "$n" in cni-*) grep -qx "netns $n" "$TOP/host-settings" || ip netns delete "$n" 2>/dev/null || true ;; esac
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE" 2>/dev/null || true
  # The kubelet's links to our pod logs, and the directories it made that were not there before.
  find /var/log/containers -maxdepth 1 -type l -lname "$RUN/*" -delete 2>/dev/null || true
  while read -r k v; do [ "$k" = absent ] && rm -rf -- "$v"; done < "$TOP/host-settings"
  rm -f "$TOP/host-settings"
}

remove_cgroups() {
  # The kubelet's pod cgroups (cgroupfs driver): deepest first. Only ours: /kubepods. A container whose
  # shim died with a crashed containerd still runs in one: every process left in them is killed first.
  local root pid i
  for i in 1 2 3; do
    for pid in $(cat /sys/fs/cgroup/*/kubepods/cgroup.procs /sys/fs/cgroup/*/kubepods/*/cgroup.procs \
      /sys/fs/cgroup/*/kubepods/*/*/cgroup.procs /sys/fs/cgroup/*/kubepods/*/*/*/cgroup.procs 2>/dev/null | sort -u); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    sleep 0.2
  done
  for root in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$root" ] || continue
    find "$root" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
}

unmount_under() {
  local dir
  for dir in "$@"; do
    awk -v p="$dir" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
}

# The Debian packages the node and scripts/build-images.sh need (libc6-dev: gcc -static for the pause image).
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack socat umoci dnsmasq-base gcc libc6-dev
  openssl buildah debootstrap util-linux iproute2)
cmd_packages() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]}, and no apt-get to install them (Debian/Ubuntu only)"
  log "installing ${missing[*]}"
  local install=(apt-get install -y -qq --no-install-recommends "${missing[@]}")
  DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${install[@]}" >/dev/null; }
}

# One `up`/`down`/kubelet change at a time (a watchdog's `down` and the next run's `up` may overlap).
locked() {
  mkdir -p "$TOP"
  exec 9>"$TOP/lock"
  flock -w 600 9 || die "another dev-cluster.sh holds $TOP/lock"
  "$@"
}

# The process that owns a node started with --owner, or nothing (a user's node).
owner_alive() {
  local pid start
  [ -f "$RUN/owner" ] || return 1
  read -r pid start < "$RUN/owner"
  [ -r "/proc/$pid/stat" ] && [ "$(awk '{ print $22 }' "/proc/$pid/stat" 2>/dev/null)" = "$start" ]
}

COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy dnsmasq dns-sync)
all_running() {
  local n
  for n in "${COMPONENTS[@]}"; do running "$n" || return 1; done
}

# Leftovers of a node that crashed or whose test run was killed: brought down by their PID files.
# A node whose test run still runs is left alone whatever state it is in (its kubelet may be stopped
# on purpose), and so is a whole node that a user started.
cmd_clean_stale() {
  [ -d "$RUN" ] || return 0
  if [ -f "$RUN/owner" ]; then owner_alive && return 0; else all_running && return 0; fi
  log "cleaning up a previous node that is not whole or whose test run is gone"
  cmd_down >&2
}

cmd_up() {
  local t0 ip step owner=""
  t0=$(now)
  [ "${1:-}" = --owner ] && owner=${2:?--owner needs a PID}
  [ "$(id -u)" = 0 ] || die "needs root (containerd, cgroups, iptables)"
  cmd_clean_stale
  if [ -d "$RUN" ]; then
    # A user's node is shared; a test run's node is its own until it ends (75: try again later).
    [ -f "$RUN/owner" ] && return 75
    log "already up"; echo "export KUBECONFIG=$RUN/admin.kubeconfig"; return 0
  fi
  step=$(now)
  cmd_packages
  log "setup step: packages $(since "$step")s"
  step=$(now)
  LLEM_REAL_NODE=1 bash scripts/ensure-deps.d/k8s.sh
  log "setup step: kubernetes binaries $(since "$step")s"
  ip=$(node_ip)
  [ -n "$ip" ] || die "no IPv4 address with a default route: the node needs one"
  # The fixed ports this node listens on (any address): taken means another node or program holds them.
  for port in "$API_PORT" 10250 10248 10249 10256 10257 10259 "$ETCD_PORT" "$((ETCD_PORT + 1))"; do
    [ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] || die "port $port is taken by a process this script did not start"
  done
  mkdir -p "$RUN/pids" "$RUN/logs"
  echo "$ip" > "$RUN/node-ip"
  if [ -n "$owner" ]; then
    [ -r "/proc/$owner/stat" ] || die "--owner $owner: no such process"
    echo "$owner $(awk '{ print $22 }' "/proc/$owner/stat")" > "$RUN/owner"
    start watchdog "$(command -v bash)" "$REPO/scripts/dev-cluster.sh" _watch $(cat "$RUN/owner")
  fi
  save_host
  step=$(now)
  pki "$ip"
  log "setup step: certificates $(since "$step")s"

  step=$(now)
  containerd_config
  : > "$RUN/runtime-started" # kept until `down` ends: it cleans the pod cgroups and task mounts then
  start containerd "$(command -v containerd)" --config "$RUN/containerd.toml"
  wait_for containerd 30 ctr -a "$SOCK" version
  pause_image
  log "setup step: containerd + pause image $(since "$step")s"

  step=$(now)
  start etcd "$BIN/etcd" --data-dir "$RUN/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync --log-level warn
  local p="$RUN/pki"
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 0.0.0.0 --advertise-address "$ip" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SVC_CIDR" --client-ca-file "$p/ca.crt" \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --kubelet-client-certificate "$p/admin.crt" --kubelet-client-key "$p/admin.key" \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --authorization-mode Node,RBAC --allow-privileged=true --enable-priority-and-fairness=false \
    --endpoint-reconciler-type lease --kubelet-preferred-address-types InternalIP,Hostname
  wait_for kube-apiserver 120 kctl get --raw /readyz
  log "setup step: etcd + kube-apiserver $(since "$step")s"

  step=$(now)
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$RUN/controller-manager.kubeconfig" --authorization-kubeconfig "$RUN/controller-manager.kubeconfig" \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" --use-service-account-credentials=true \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10257 --controllers '*,-nodeipam' \
    --node-monitor-period 2s --node-monitor-grace-period 20s
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig "$RUN/scheduler.kubeconfig" --authorization-kubeconfig "$RUN/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259
  # The pod bridge exists before any pod, so dnsmasq can listen on its gateway address.
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
  ip addr replace "$POD_GW/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  echo 1 > /proc/sys/net/ipv4/ip_forward
  [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ] && echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
  kubelet_config "$ip"
  start_kubelet
  cat > "$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: { kubeconfig: "$RUN/proxy.kubeconfig" }
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
# Pods on one bridge reach each other's Service IPs only when the reply comes back through the host.
iptables: { masqueradeAll: true }
conntrack: { maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  start kube-proxy "$BIN/kube-proxy" --config "$RUN/kube-proxy.yaml"
  mkdir -p "$RUN/dns"
  : > "$RUN/dns/services"
  start dnsmasq "$(command -v dnsmasq)" --keep-in-foreground --no-resolv --no-hosts --listen-address "$POD_GW" \
    --bind-interfaces --hostsdir "$RUN/dns" --local=/cluster.local/ --local=/svc/ --server "$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf)" \
    --pid-file="$RUN/dnsmasq.pid" --user=root
  start dns-sync "$(command -v bash)" "$REPO/scripts/dev-cluster.sh" _dns-sync
  wait_for "node $NODE_NAME" 120 kctl get node "$NODE_NAME"
  kctl patch node "$NODE_NAME" --subresource=status --type=merge \
    -p "{\"status\":{\"capacity\":{\"nvidia.com/gpu\":\"$GPUS\"}}}" >/dev/null
  # One node is every node: when its kubelet stops, the node lifecycle controller sees all nodes lost,
  # enters "master disruption mode" (it blames its own network) and stops NoExecute tainting, so pods
  # are never evicted, or are, if its tainter won a race (ADR 0026). Excluded from the disruption checks,
  # the node is handled as one lost node of many: tainted, and its pods evicted after their tolerations.
  kctl label node "$NODE_NAME" node.kubernetes.io/exclude-disruption= --overwrite >/dev/null
  wait_for "node $NODE_NAME Ready" 120 kctl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  wait_for "service account default/default" 60 kctl -n default get serviceaccount default
  log "setup step: controllers, kubelet, kube-proxy, DNS, node Ready $(since "$step")s"
  log "up in $(since "$t0")s: node $NODE_NAME ($ip) advertises nvidia.com/gpu=$GPUS (simulated: there is no GPU)"
  echo "export KUBECONFIG=$RUN/admin.kubeconfig"
}

# Keeps dnsmasq's hosts file equal to the cluster's Services (ClusterIP): <svc>.<ns>.svc[.cluster.local].
cmd_dns_sync() {
  local last="" cur
  while :; do
    cur=$(kctl get svc -A -o jsonpath='{range .items[*]}{.spec.clusterIP} {.metadata.name}.{.metadata.namespace}.svc {.metadata.name}.{.metadata.namespace}.svc.cluster.local{"\n"}{end}' 2>/dev/null | grep -v '^None ' || true)
    if [ -n "$cur" ] && [ "$cur" != "$last" ]; then
      printf '%s\n' "$cur" > "$RUN/dns/services.tmp" && mv "$RUN/dns/services.tmp" "$RUN/dns/services"
      last=$cur
    fi
    sleep 1
  done
}

start_kubelet() {
  start kubelet "$BIN/kubelet" --config "$RUN/kubelet.yaml" --kubeconfig "$RUN/kubelet.kubeconfig" \
    --root-dir "$RUN/kubelet" --cert-dir "$RUN/kubelet-pki" --hostname-override "$NODE_NAME" --node-ip "$(cat "$RUN/node-ip")"
}

# Fault tests: the kubelet alone stops (its containers keep running under containerd, as on a real node
# whose kubelet crashed) and starts again with the same configuration.
cmd_kubelet_stop() {
  running kubelet || die "the kubelet is not running"
  stop kubelet
  log "kubelet stopped"
}
cmd_kubelet_start() {
  [ -f "$RUN/kubelet.yaml" ] || die "not up"
  running kubelet && { log "kubelet already running"; return 0; }
  start_kubelet
  log "kubelet started"
}

# Started by `up --owner PID`: brings the node down when that process ends without `down`.
cmd_watch() {
  local pid=$1 start=$2
  while [ "$(awk '{ print $22 }' "/proc/$pid/stat" 2>/dev/null)" = "$start" ]; do sleep 1; done
  log "owner $pid is gone: bringing the node down"
  locked cmd_down
}

cmd_down() {
  local t0 c runtime=0
  t0=$(now)
  [ -d "$RUN" ] || { restore_host; log "not up"; return 0; }
  # Pod cgroups and containerd's task mounts are machine-wide: cleaned only by a node whose containerd
  # was started (a half-made node's leftovers, or a test's stand-in, must not touch another node's pods).
  [ -f "$RUN/runtime-started" ] && runtime=1
  stop dns-sync; stop dnsmasq; stop kube-proxy
  # Kill every container through our own containerd socket, then stop the kubelet and containerd.
  stop kubelet
  if running containerd; then
    for c in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$SOCK" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true; done
    sleep 0.5
    for c in $(ctr -a "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do ctr -a "$SOCK" -n k8s.io tasks rm -f "$c" >/dev/null 2>&1 || true; done
    for c in $(ctr -a "$SOCK" -n k8s.io containers ls -q 2>/dev/null); do ctr -a "$SOCK" -n k8s.io containers rm "$c" >/dev/null 2>&1 || true; done
  fi
  stop kube-scheduler; stop kube-controller-manager; stop kube-apiserver; stop etcd; stop containerd
  # containerd-shim processes of our containerd (their command line names our socket), by PID.
  for pid in $(grep -l -- "$SOCK" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$pid" != "$$" ] && kill -KILL "$pid" 2>/dev/null || true
  done
  unmount_under "$RUN"
  if [ "$runtime" = 1 ]; then
    unmount_under "$CTRD_ROOT" "/run/containerd/io.containerd.runtime.v2.task/k8s.io"
    remove_cgroups
  fi
  restore_host
  # Last: a `down` killed half way (its test run killed during teardown) leaves the watchdog, which
  # then finishes the job when it sees the owner gone.
  stop watchdog
  rm -rf "$RUN"
  log "down in $(since "$t0")s (images kept in $CTRD_ROOT; remove it to start cold)"
}

cmd_status() {
  local n
  for n in containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy dnsmasq dns-sync; do
    if running "$n"; then echo "$n: running (pid $(cat "$RUN/pids/$n"))"; else echo "$n: not running"; fi
  done
  if running kube-apiserver; then
    echo "KUBECONFIG=$RUN/admin.kubeconfig"
    kctl get nodes -o wide 2>/dev/null || true
    kctl get pods -A -o wide 2>/dev/null || true
  fi
}

# One node per machine: `wait-free` (and an `up` that finds the node in use by another test run) waits
# for that run to end (LLEM_NODE_WAIT_S, default 1800 s; looking every LLEM_NODE_POLL_S, default 10 s),
# outside the lock so that run can bring its node down. wait-free also cleans up a stale node; it returns
# when there is no node or a user's.
cmd_wait_free() {
  local deadline=$(( $(date +%s) + ${LLEM_NODE_WAIT_S:-1800} )) said=0
  while :; do
    bash "$REPO/scripts/dev-cluster.sh" clean-stale
    { [ ! -d "$RUN" ] || [ ! -f "$RUN/owner" ]; } && return 0
    [ "$(date +%s)" -lt "$deadline" ] || die "the node stayed in use by another test run for ${LLEM_NODE_WAIT_S:-1800}s"
    [ $said = 1 ] || log "in use by the test run with PID $(cut -d' ' -f1 "$RUN/owner" 2>/dev/null): waiting for it to end"
    said=1
    sleep "${LLEM_NODE_POLL_S:-10}"
  done
}

wait_and_up() {
  local deadline=$(( $(date +%s) + ${LLEM_NODE_WAIT_S:-1800} )) rc said=0
  while :; do
    set +e
    bash "$REPO/scripts/dev-cluster.sh" _up "$@"
    rc=$?
    set -e
    [ "$rc" = 75 ] || return "$rc"
    [ "$(date +%s)" -lt "$deadline" ] || die "the node stayed in use by another test run for ${LLEM_NODE_WAIT_S:-1800}s"
    [ $said = 1 ] || log "in use by the test run with PID $(cut -d' ' -f1 "$RUN/owner" 2>/dev/null): waiting for it to end"
    said=1
    sleep "${LLEM_NODE_POLL_S:-10}"
  done
}

case "${1:-}" in
  up) shift; wait_and_up "$@" ;;
  _up) shift; locked cmd_up "$@" ;;
  down) locked cmd_down ;;
  status) cmd_status ;;
  packages) cmd_packages ;;
  clean-stale) locked cmd_clean_stale ;;
  wait-free) cmd_wait_free ;;
  kubelet-stop) locked cmd_kubelet_stop ;;
  kubelet-start) locked cmd_kubelet_start ;;
  kubeconfig) echo "$RUN/admin.kubeconfig" ;;
  _dns-sync) cmd_dns_sync ;;
  _watch) cmd_watch "$2" "$3" ;;
  *) echo "usage: scripts/dev-cluster.sh up [--owner PID]|down|status|packages|clean-stale|wait-free|kubelet-stop|kubelet-start|kubeconfig" >&2; exit 2 ;;
esac
