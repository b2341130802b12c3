#!/usr/bin/env bash
# A real Kubernetes 1.20 cluster on this machine only, for runtime-kernel's tests and bench.
#
#   test/setup/kubernetes.sh build        fetch Debian's kubernetes source and build the binaries once
#                                         (cached outside the repo, keyed by version; idempotent)
#   test/setup/kubernetes.sh start-api    etcd + kube-apiserver (the "API tier"); prints the env
#   test/setup/kubernetes.sh start-node   + kube-scheduler + kubelet on the Docker engine of
#                                         test/setup/docker-engine.sh (the "node tier"); prints the env
#   test/setup/kubernetes.sh stop         stops what it started, by pid; restores what it changed
#   test/setup/kubernetes.sh status|env   what runs / the variables the tests read
#
# Why every odd flag is here: see /work/shared/notes/test-substrates.md. In short, nothing may
# leave the machine: the kubelet gets AWS_EC2_METADATA_DISABLED=true (its ECR credential provider
# calls 169.254.169.254 otherwise), makeIPTablesUtilChains=false, a private resolv.conf, a modprobe
# stub, a node address on an `ifb` interface the script creates; the apiserver prefers InternalIP so
# it never resolves the node's name. The external interfaces' tx packet counters are recorded at
# start and checked at stop: every packet sent by the host while the cluster ran must be accounted
# for by an iptables OUTPUT rule that counts packets to non-local destinations (see `egress_*`).
#
# State lives under ${RK_K8S_DIR:-/tmp/runtime-kernel/kubernetes}; binaries under
# ${RK_K8S_CACHE:-/var/cache/runtime-kernel/kubernetes}/<version>/bin.
set -Eeuo pipefail

RK_K8S_DIR=${RK_K8S_DIR:-/tmp/runtime-kernel/kubernetes}
RK_K8S_CACHE=${RK_K8S_CACHE:-/var/cache/runtime-kernel/kubernetes}
# Debian 12's source package; pinned so the cache key is known before anything is fetched.
RK_K8S_VERSION=${RK_K8S_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}
BIN="$RK_K8S_CACHE/$RK_K8S_VERSION/bin"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DOCKER_SETUP="$SCRIPT_DIR/docker-engine.sh"
NODE_IF=${RK_K8S_NODE_IF:-rkk8s0}
NODE_IP=${RK_K8S_NODE_IP:-198.51.100.10}
NODE_NAME=${RK_K8S_NODE_NAME:-rk-node}
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

log() { printf '[kubernetes.sh] %s\n' "$*" >&2; }
die() {
  printf '[kubernetes.sh] FATAL: %s\n' "$*" >&2
  exit 1
}

free_port() {
  # Asks the kernel for a free loopback port; a tiny race is acceptable for a test cluster.
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps maintainer scripts from starting system services (a system-wide etcd).
  local policy=/usr/sbin/policy-rc.d created=0 rc=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1; fi
  apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends "${missing[@]}" >&2 ||
    { apt-get -o DPkg::Lock::Timeout=900 update >&2 &&
      apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends "${missing[@]}" >&2; } || rc=1
  [ "$created" = 0 ] || rm -f "$policy"
  [ "$rc" = 0 ] || die "could not install ${missing[*]}"
}

# ---------------------------------------------------------------------------------------------
# build

# Writes deb-src twins of the machine's own Debian apt sources into a private directory, so
# `apt-get source` works without touching /etc.
private_sources() {
  local out=$1
  mkdir -p "$out"
  : >"$out/twin.list"
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    grep -E '^[[:space:]]*deb[[:space:]]' "$f" | grep -i debian | sed -E 's/^[[:space:]]*deb[[:space:]]/deb-src /' >>"$out/twin.list" || true
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822: keep stanzas that are Debian's own, switch their Types to deb-src.
    awk 'BEGIN{RS="";ORS="\n\n"} tolower($0) ~ /debian/ && $0 ~ /Types:[^\n]*deb/ && $0 !~ /Enabled:[[:space:]]*no/ {
           gsub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >>"$out/twin.sources"
  done
  [ -s "$out/twin.list" ] || [ -s "$out/twin.sources" ] || die "no Debian apt source found to twin as deb-src"
}

cmd_build() {
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kubelet" ] && [ -x "$BIN/kube-scheduler" ] && [ -x "$BIN/pause" ] && [ -f "$BIN/.complete" ]; then
    log "binaries cached in $BIN"
    return 0
  fi
  apt_install golang-go dpkg-dev jq rsync make gcc libc6-dev etcd-server golang-github-modern-go-reflect2-dev
  mkdir -p "$RK_K8S_CACHE"
  exec 9>"$RK_K8S_CACHE/.build.lock"
  flock 9
  if [ -f "$BIN/.complete" ]; then
    log "binaries built by a concurrent run in $BIN"
    return 0
  fi
  local work="$RK_K8S_CACHE/$RK_K8S_VERSION/build"
  rm -rf "$work"
  mkdir -p "$work/src" "$work/apt/lists/partial" "$work/apt/sources.d"
  private_sources "$work/apt/sources.d"
  local aptopts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/sources.d"
    -o "Dir::State::Lists=$work/apt/lists" -o DPkg::Lock::Timeout=900 -o APT::Sandbox::User=root)
  log "fetching the kubernetes $RK_K8S_VERSION source package (private apt lists in $work/apt)"
  apt-get "${aptopts[@]}" update >&2 || die "apt-get update of the deb-src twin failed"
  if ! (cd "$work/src" && apt-get "${aptopts[@]}" source "kubernetes=$RK_K8S_VERSION" >&2); then
    # The archive moved on: build what it has, but say so (the cache key stays the pinned name).
    log "WARNING: kubernetes=$RK_K8S_VERSION is not in the archive; fetching its current kubernetes source"
    (cd "$work/src" && apt-get "${aptopts[@]}" source kubernetes >&2) || die "apt-get source kubernetes failed"
  fi
  local tree
  tree=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
  [ -n "$tree" ] && [ -f "$tree/build/pause/linux/pause.c" ] || die "unpacked source tree not found under $work/src"
  # Go 1.19 crashes the apiserver in the vendored reflect2 1.0.1 (UnsafeMapType.UnsafeIterate):
  # Debian's 1.0.2 is the fix.
  local r2=/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -d "$r2" ] || die "golang-github-modern-go-reflect2-dev is missing $r2"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  mkdir -p "$tree/vendor/github.com/modern-go/reflect2"
  cp -rL "$r2/." "$tree/vendor/github.com/modern-go/reflect2/"
  log "building kube-apiserver kubelet kube-scheduler (5-8 minutes on 2 cores)"
  (cd "$tree" && env -u GOFLAGS GOPROXY=off CGO_ENABLED=0 GOCACHE="$work/gocache" \
    make WHAT="cmd/kube-apiserver cmd/kubelet cmd/kube-scheduler" >&2) || die "make failed"
  local out
  out=$(dirname "$(find "$tree/_output" -type f -name kube-apiserver -perm -u+x | head -n1)")
  [ -x "$out/kube-apiserver" ] || die "no kube-apiserver under $tree/_output"
  mkdir -p "$BIN.tmp"
  cp "$out/kube-apiserver" "$out/kubelet" "$out/kube-scheduler" "$BIN.tmp/"
  gcc -Os -static -o "$BIN.tmp/pause" -DVERSION=v3.4-rk "$tree/build/pause/linux/pause.c" || die "building pause failed"
  touch "$BIN.tmp/.complete"
  rm -rf "$BIN"
  mv "$BIN.tmp" "$BIN"
  [ "${RK_K8S_KEEP_BUILD:-}" = 1 ] || rm -rf "$work"
  log "binaries cached in $BIN"
}

# ---------------------------------------------------------------------------------------------
# helpers for the running cluster

D="$RK_K8S_DIR"
ENVFILE="$D/env"
CG_NAME="runtime-kernel-k8s"
CG="/sys/fs/cgroup/unified/$CG_NAME"
[ -d /sys/fs/cgroup/unified ] || CG="/sys/fs/cgroup/$CG_NAME"
GUARD_COMMENT="runtime-kernel k8s egress guard"

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pidof_component() { cat "$D/run/$1.pid" 2>/dev/null || true; }

# Starts a component detached (it outlives this script), inside the guarded cgroup, logging to a file.
launch() {
  local name=$1
  shift
  mkdir -p "$D/run" "$D/logs"
  (
    echo "$BASHPID" >"$CG/cgroup.procs"
    cd "$D"
    # The lock fds must not outlive this script in a long-running component.
    exec 8>&- 9>&-
    exec setsid "$@" </dev/null >>"$D/logs/$name.log" 2>&1
  ) &
  echo $! >"$D/run/$name.pid"
  log "started $name (pid $!)"
}

stop_pid() {
  local name=$1 pid=$2 i
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    pid_alive "$pid" || {
      log "stopped $name (pid $pid)"
      return 0
    }
    sleep 0.1
  done
  log "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

# kcurl METHOD PATH [BODY [CONTENT-TYPE]]: one call to our apiserver with the admin token.
kcurl() {
  local method=$1 path=$2 body=${3:-} ctype=${4:-application/json}
  local args=(-sk --max-time 10 -X "$method" -H "Authorization: Bearer $(cat "$D/token")")
  [ -z "$body" ] || args+=(-H "Content-Type: $ctype" --data-binary "$body")
  curl "${args[@]}" "$(cat "$D/server")$path"
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

# wait_up NAME SECONDS COMMAND...: like wait_for, but gives up at once when component NAME exits.
wait_up() {
  local name=$1 secs=$2 i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    pid_alive "$(pidof_component "$name")" || return 1
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

component_died() {
  local name=$1
  log "---- last lines of $D/logs/$name.log"
  tail -n 40 "$D/logs/$name.log" >&2 || true
  die "$name did not come up (log above)"
}

api_ready() { [ "$(kcurl GET /readyz 2>/dev/null)" = ok ]; }
api_running() { pid_alive "$(pidof_component etcd)" && pid_alive "$(pidof_component kube-apiserver)" && api_ready; }
node_running() { api_running && pid_alive "$(pidof_component kubelet)" && pid_alive "$(pidof_component kube-scheduler)"; }
default_ns() { kcurl GET /api/v1/namespaces/default | jq -e '.status.phase == "Active"'; }
etcd_healthy() { curl -sf --max-time 2 "http://127.0.0.1:$(cat "$D/run/etcd.port")/health"; }

# External interfaces' tx packet counters (everything but lo and our node interface).
iface_tx() {
  awk -v skip="$NODE_IF" 'NR > 2 { gsub(/:/, " "); if ($1 != "lo" && $1 != skip) printf "%s=%s ", $1, $11 }' /proc/net/dev
}

# The egress guard: every process of the cluster (and the node tier's Docker engine, its shims and
# containers) runs in one cgroup-v2 group; an OUTPUT rule drops and counts every packet of that group
# that does not go through lo. `stop` fails when the count is not zero, so a leak cannot pass unseen.
egress_setup() {
  mkdir -p "$CG" || die "cannot create the cgroup $CG for the egress guard"
  local t
  for t in iptables ip6tables; do
    if ! command -v $t >/dev/null; then
      [ $t = ip6tables ] && continue
      die "iptables is missing: the egress guard needs it"
    fi
    $t -C OUTPUT ! -o lo -m cgroup --path "$CG_NAME" -m comment --comment "$GUARD_COMMENT" -j DROP 2>/dev/null ||
      $t -I OUTPUT 1 ! -o lo -m cgroup --path "$CG_NAME" -m comment --comment "$GUARD_COMMENT" -j DROP ||
      die "could not install the $t egress guard (needs xt_cgroup)"
  done
  [ -f "$D/iface-tx.start" ] || iface_tx >"$D/iface-tx.start"
}

egress_dropped() {
  local n=0 t c
  for t in iptables ip6tables; do
    command -v $t >/dev/null || continue
    c=$($t -L OUTPUT -v -n -x 2>/dev/null | awk -v cm="$GUARD_COMMENT" 'index($0, cm) { s += $1 } END { print s + 0 }')
    n=$((n + c))
  done
  echo "$n"
}

egress_teardown() {
  local t
  for t in iptables ip6tables; do
    command -v $t >/dev/null || continue
    while $t -D OUTPUT ! -o lo -m cgroup --path "$CG_NAME" -m comment --comment "$GUARD_COMMENT" -j DROP 2>/dev/null; do :; done
  done
}

write_env() {
  {
    echo "RK_K8S_TIER=$1"
    echo "RK_K8S_KUBECONFIG=$D/kubeconfig"
    echo "RK_K8S_SERVER=$(cat "$D/server")"
    echo "RK_K8S_NAMESPACE=default"
    echo "RK_K8S_DIR=$D"
    echo "RK_K8S_ETCD=http://127.0.0.1:$(cat "$D/run/etcd.port")"
    if [ "$1" = node ]; then
      echo "RK_K8S_NODE_NAME=$NODE_NAME"
      grep -E '^(DOCKER_HOST|RK_TEST_IMAGE)=' "$D/docker/env" | sed 's/^DOCKER_HOST=/RK_K8S_DOCKER_HOST=/'
    fi
  } >"$ENVFILE.tmp"
  mv "$ENVFILE.tmp" "$ENVFILE"
  cat "$ENVFILE"
}

# ---------------------------------------------------------------------------------------------
# start-api: etcd + kube-apiserver

# A start that fails half-way stops what it had started, so nothing is left running.
stop_on_failure() {
  local rc=$?
  [ "$rc" = 0 ] && return 0
  log "start failed (exit $rc): stopping whatever was started"
  cmd_stop_locked || true
  exit "$rc"
}

cmd_start_api() {
  mkdir -p "$D"
  exec 8>"$D/.lock"
  flock 8
  trap stop_on_failure EXIT
  start_api_locked
  if pid_alive "$(pidof_component kubelet)"; then write_env node; else write_env api; fi
}

start_api_locked() {
  if [ -f "$D/server" ] && api_running; then
    log "API tier already running"
    return 0
  fi
  if [ -n "$(pidof_component etcd)$(pidof_component kube-apiserver)" ]; then
    log "stale state in $D: stopping it first"
    cmd_stop_locked || true
  fi
  cmd_build
  apt_install etcd-server curl openssl iptables jq
  mkdir -p "$D"/{etcd,pki,run,logs}
  echo "$RK_K8S_VERSION" >"$D/version"
  egress_setup
  [ -f "$D/token" ] || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$D/token"
  echo "$(cat "$D/token"),rk-admin,rk-admin,system:masters" >"$D/tokens.csv"
  [ -f "$D/pki/sa.key" ] || openssl genrsa -out "$D/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$D/pki/sa.key" -pubout -out "$D/pki/sa.pub" 2>/dev/null
  local etcd_port etcd_peer api_port
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  api_port=$(free_port)
  echo "$etcd_port" >"$D/run/etcd.port"
  echo "https://127.0.0.1:$api_port" >"$D/server"
  launch etcd env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/bin/etcd --name rk \
    --data-dir "$D/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "rk=http://127.0.0.1:$etcd_peer" \
    --quota-backend-bytes 2147483648 --log-level warn
  wait_up etcd 30 etcd_healthy || component_died etcd
  # pods#0: Pod watches are served from etcd, not from the apiserver's cache, so a test can expire
  # a watch's resourceVersion for real (compact etcd: the resumed watch gets 410 Gone).
  launch kube-apiserver env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --secure-port="$api_port" --insecure-port=0 --cert-dir="$D/pki" \
    --token-auth-file="$D/tokens.csv" --authorization-mode=AlwaysAllow \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-account-key-file="$D/pki/sa.pub" --service-account-signing-key-file="$D/pki/sa.key" \
    --service-cluster-ip-range=10.96.0.0/16 --disable-admission-plugins=ServiceAccount \
    --kubelet-preferred-address-types=InternalIP --profiling=false --v=1 \
    --watch-cache-sizes=pods#0
  wait_up kube-apiserver 90 api_ready || component_died kube-apiserver
  # The apiserver can report ready before the `default` namespace exists.
  wait_up kube-apiserver 30 default_ns || component_died kube-apiserver
  cat >"$D/kubeconfig.tmp" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: rk
  cluster:
    server: $(cat "$D/server")
    insecure-skip-tls-verify: true
users:
- name: rk-admin
  user:
    token: $(cat "$D/token")
contexts:
- name: rk
  context:
    cluster: rk
    user: rk-admin
    namespace: default
current-context: rk
KUBECONFIG
  mv "$D/kubeconfig.tmp" "$D/kubeconfig"
  log "API tier ready at $(cat "$D/server")"
}

# ---------------------------------------------------------------------------------------------
# start-node: + kube-scheduler + kubelet on a private Docker engine

KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.bridge.bridge-nf-call-iptables)
KUBELET_HOST_DIRS=(/var/log/pods /var/log/containers /var/lib/kubelet /var/lib/dockershim)

cmd_start_node() {
  mkdir -p "$D"
  exec 8>"$D/.lock"
  flock 8
  trap stop_on_failure EXIT
  start_api_locked
  if node_running; then
    log "node tier already running"
  else
    start_node_locked
  fi
  write_env node
}

start_node_locked() {
  [ -x "$DOCKER_SETUP" ] || die "$DOCKER_SETUP is missing: the node tier runs on its Docker engine"
  # What the kubelet changes on the host, recorded once so that `stop` can put it back.
  if [ ! -f "$D/host.saved" ]; then
    local s d
    for s in "${KUBELET_SYSCTLS[@]}"; do
      if sysctl -n "$s" >/dev/null 2>&1; then echo "sysctl $s $(sysctl -n "$s")"; fi
    done >"$D/host.tmp"
    for d in "${KUBELET_HOST_DIRS[@]}"; do [ -e "$d" ] || echo "created $d"; done >>"$D/host.tmp"
    mv "$D/host.tmp" "$D/host.saved"
  fi
  # The node's address lives on an interface of our own (the kubelet refuses loopback; this
  # kernel has no dummy links).
  if ! ip link show "$NODE_IF" >/dev/null 2>&1; then
    ip link add "$NODE_IF" type ifb || die "could not create the $NODE_IF ifb interface"
    echo "$NODE_IF" >"$D/run/node-if"
  fi
  ip addr show dev "$NODE_IF" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/32" dev "$NODE_IF"
  ip link set "$NODE_IF" up
  # Stubs first on the components' PATH: the kubelet must not load kernel modules.
  mkdir -p "$D/stubbin" "$D/kubelet" "$D/dockershim"
  printf '#!/bin/sh\nexit 0\n' >"$D/stubbin/modprobe"
  chmod +x "$D/stubbin/modprobe"
  echo "nameserver 127.0.0.1" >"$D/resolv.conf"
  write_cni
  # The Docker engine of the docker work, in a private state dir, started from inside the cgroup
  # so that it, its shims and its containers are under the egress guard.
  (
    echo "$BASHPID" >"$CG/cgroup.procs"
    exec 8>&- 9>&-
    RK_DOCKER_DIR="$D/docker" "$DOCKER_SETUP" start >/dev/null
  ) || die "the Docker engine did not start ($DOCKER_SETUP start)"
  local docker_host
  docker_host=$(grep '^DOCKER_HOST=' "$D/docker/env" | cut -d= -f2-)
  local pause_image=runtime-kernel/pause:3.4-rk
  if ! /usr/bin/docker -H "$docker_host" image inspect "$pause_image" >/dev/null 2>&1; then
    local pb
    pb=$(mktemp -d "$D/pause.XXXXXX")
    cp "$BIN/pause" "$pb/pause"
    tar -C "$pb" -cf "$pb/pause.tar" pause
    /usr/bin/docker -H "$docker_host" import -c 'ENTRYPOINT ["/pause"]' "$pb/pause.tar" "$pause_image" >/dev/null ||
      die "could not import the pause image"
    rm -rf "$pb"
  fi
  launch kube-scheduler env -i PATH="$D/stubbin:/usr/sbin:/usr/bin:/sbin:/bin" "$BIN/kube-scheduler" \
    --kubeconfig="$D/kubeconfig" --leader-elect=false --port=0 --secure-port=0 --bind-address=127.0.0.1 --v=1
  local kport hport
  kport=$(free_port)
  hport=$(free_port)
  cat >"$D/kubelet.yaml" <<KUBELET
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
makeIPTablesUtilChains: false
hairpinMode: none
resolvConf: $D/resolv.conf
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 1000
KUBELET
  # AWS_EC2_METADATA_DISABLED: the built-in ECR credential provider would call 169.254.169.254.
  launch kubelet env -i PATH="$D/stubbin:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$D" AWS_EC2_METADATA_DISABLED=true \
    HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY="127.0.0.1,$NODE_IP" \
    "$BIN/kubelet" --kubeconfig="$D/kubeconfig" --config="$D/kubelet.yaml" \
    --root-dir="$D/kubelet" --cert-dir="$D/kubelet/pki" --experimental-dockershim-root-directory="$D/dockershim" \
    --container-runtime-endpoint="unix://$D/dockershim.sock" \
    --container-runtime=docker --docker-endpoint="$docker_host" \
    --network-plugin=cni --cni-bin-dir="$D/cni/bin" --cni-conf-dir="$D/cni/net.d" --cni-cache-dir="$D/cni/cache" \
    --pod-infra-container-image="$pause_image" --node-ip="$NODE_IP" --hostname-override="$NODE_NAME" \
    --v=1
  wait_up kubelet 90 node_ready || component_died kubelet
  # No controller-manager runs: nothing else would lift the not-ready taint the kubelet registered with.
  kcurl PATCH "/api/v1/nodes/$NODE_NAME" '{"spec":{"taints":null}}' application/merge-patch+json >/dev/null
  if ! smoke_pod; then
    tail -n 40 "$D/logs/kubelet.log" >&2
    die "the node tier's smoke Pod did not run to its exit code"
  fi
  log "node tier ready (node $NODE_NAME at $NODE_IP)"
}

# A CNI plugin of our own. The kubelet kills every container of a Pod whose sandbox has no IP
# ("Sandbox for pod has no IP address. Need to start a new one"), and dockershim reads that IP from
# eth0 inside the Pod's network namespace. This plugin gives the namespace an eth0 of type ifb with
# a /32 address and no route: the Pod has an IP, the host gets no interface, bridge, route or
# iptables rule, and nothing in the Pod can reach beyond its own namespace.
write_cni() {
  mkdir -p "$D/cni/bin" "$D/cni/net.d" "$D/cni/cache"
  cat >"$D/cni/bin/rk-static" <<'CNI'
#!/bin/sh
# CNI plugin of runtime-kernel's test cluster: eth0 (ifb, /32, no route) inside the Pod's netns.
cat >/dev/null
ver=0.4.0
case "$CNI_COMMAND" in
ADD)
  h=$(printf '%s' "$CNI_CONTAINERID" | cksum | cut -d' ' -f1)
  ip="10.244.$(((h / 256) % 250 + 1)).$((h % 250 + 2))"
  nsenter --net="$CNI_NETNS" ip link add "$CNI_IFNAME" type ifb 2>/dev/null || true
  nsenter --net="$CNI_NETNS" ip addr add "$ip/32" dev "$CNI_IFNAME" 2>/dev/null || true
  nsenter --net="$CNI_NETNS" ip link set "$CNI_IFNAME" up || { echo '{"code":100,"msg":"cannot set up eth0"}'; exit 1; }
  printf '{"cniVersion":"%s","interfaces":[{"name":"%s","sandbox":"%s"}],"ips":[{"version":"4","address":"%s/32","interface":0}],"dns":{}}\n' \
    "$ver" "$CNI_IFNAME" "$CNI_NETNS" "$ip"
  ;;
DEL)
  [ -n "$CNI_NETNS" ] && [ -e "$CNI_NETNS" ] && nsenter --net="$CNI_NETNS" ip link del "$CNI_IFNAME" 2>/dev/null
  exit 0
  ;;
VERSION) printf '{"cniVersion":"%s","supportedVersions":["0.3.0","0.3.1","0.4.0"]}\n' "$ver" ;;
*) exit 0 ;;
esac
CNI
  cat >"$D/cni/bin/loopback" <<'CNI'
#!/bin/sh
# The loopback network dockershim sets up before the Pod's own: bring lo up.
cat >/dev/null
case "$CNI_COMMAND" in
ADD)
  nsenter --net="$CNI_NETNS" ip link set lo up
  printf '{"cniVersion":"0.4.0","interfaces":[{"name":"lo","sandbox":"%s"}],"ips":[{"version":"4","address":"127.0.0.1/8","interface":0}],"dns":{}}\n' "$CNI_NETNS"
  ;;
VERSION) printf '{"cniVersion":"0.4.0","supportedVersions":["0.3.0","0.3.1","0.4.0"]}\n' ;;
*) exit 0 ;;
esac
CNI
  chmod +x "$D/cni/bin/rk-static" "$D/cni/bin/loopback"
  printf '{"cniVersion":"0.4.0","name":"rk","plugins":[{"type":"rk-static"}]}\n' >"$D/cni/net.d/10-rk.conflist"
}

node_ready() { kcurl GET "/api/v1/nodes/$NODE_NAME" | jq -e '.status.conditions[]? | select(.type == "Ready" and .status == "True")'; }
smoke_gone() { kcurl GET /api/v1/namespaces/default/pods/rk-smoke | jq -e '.kind == "Status"'; }
smoke_exited() {
  kcurl GET /api/v1/namespaces/default/pods/rk-smoke |
    jq -e '.status.phase == "Failed" and .status.containerStatuses[0].state.terminated.exitCode == 4'
}

smoke_pod() {
  local image ok=1
  image=$(grep '^RK_TEST_IMAGE=' "$D/docker/env" | cut -d= -f2-)
  kcurl DELETE "/api/v1/namespaces/default/pods/rk-smoke?gracePeriodSeconds=0" >/dev/null || true
  wait_for 30 smoke_gone || return 1
  kcurl POST /api/v1/namespaces/default/pods "$(jq -nc --arg img "$image" '{apiVersion: "v1", kind: "Pod",
    metadata: {name: "rk-smoke"}, spec: {restartPolicy: "Never", automountServiceAccountToken: false,
    containers: [{name: "main", image: $img, imagePullPolicy: "Never", command: ["sh", "-c", "exit 4"]}]}}')" >/dev/null
  if wait_for 90 smoke_exited; then ok=0; else kcurl GET /api/v1/namespaces/default/pods/rk-smoke | jq -c .status >&2 || true; fi
  kcurl DELETE "/api/v1/namespaces/default/pods/rk-smoke?gracePeriodSeconds=0" >/dev/null || true
  return $ok
}

# ---------------------------------------------------------------------------------------------
# stop

cmd_stop() {
  [ -d "$D" ] || {
    log "nothing to stop in $D"
    return 0
  }
  exec 8>"$D/.lock"
  flock 8
  cmd_stop_locked
}

cmd_stop_locked() {
  local rc=0 docker_host="" m
  [ -f "$D/docker/env" ] && docker_host=$(grep '^DOCKER_HOST=' "$D/docker/env" | cut -d= -f2-)
  stop_pid kubelet "$(pidof_component kubelet)"
  if [ -n "$docker_host" ] && [ -x "$DOCKER_SETUP" ]; then
    local ids
    ids=$(/usr/bin/docker -H "$docker_host" ps -aq 2>/dev/null || true)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || /usr/bin/docker -H "$docker_host" rm -f $ids >/dev/null 2>&1 || true
    RK_DOCKER_DIR="$D/docker" "$DOCKER_SETUP" stop || rc=1
  fi
  stop_pid kube-scheduler "$(pidof_component kube-scheduler)"
  stop_pid kube-apiserver "$(pidof_component kube-apiserver)"
  stop_pid etcd "$(pidof_component etcd)"
  # Anything still in our cgroup was started by us (shims, containers): by pid.
  if [ -f "$CG/cgroup.procs" ]; then
    local p
    for p in $(cat "$CG/cgroup.procs"); do kill -KILL "$p" 2>/dev/null || true; done
  fi
  # Mounts the kubelet and the engine made under our state dir, deepest first.
  { awk '{print $5}' /proc/self/mountinfo | grep -F -- "$D/" || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  # Host settings the kubelet changed, and the directories it created.
  if [ -f "$D/host.saved" ]; then
    local kind a b
    while read -r kind a b; do
      case "$kind" in
      sysctl) [ "$(sysctl -n "$a" 2>/dev/null)" = "$b" ] || sysctl -q -w "$a=$b" >/dev/null 2>&1 || {
        log "could not restore $a=$b"
        rc=1
      } ;;
      created) rm -rf "$a" ;;
      esac
    done <"$D/host.saved"
    rm -f "$D/host.saved"
  fi
  if [ -f "$D/run/node-if" ]; then
    ip link del "$(cat "$D/run/node-if")" 2>/dev/null || true
    rm -f "$D/run/node-if"
  fi
  local dropped
  dropped=$(egress_dropped)
  if [ -f "$D/iface-tx.start" ]; then
    log "external interfaces' tx packets at start: $(cat "$D/iface-tx.start")"
    log "external interfaces' tx packets at stop:  $(iface_tx)(the whole host's, other work included)"
  fi
  egress_teardown
  for ((m = 0; m < 20; m++)); do rmdir "$CG" 2>/dev/null && break; sleep 0.1; done
  if [ "$dropped" != 0 ]; then
    log "EGRESS: the cluster's processes tried to send $dropped packet(s) off the machine (all dropped by the guard)"
    rc=1
  else
    log "egress guard: 0 packets from the cluster's processes went to a non-loopback interface"
  fi
  rm -rf "$D/etcd" "$D/kubelet" "$D/dockershim" "$D/dockershim.sock" "$D/cni" "$D/run" "$D/stubbin" "$D/docker" "$D"/pause.* "$ENVFILE" \
    "$D/iface-tx.start" "$D/server" "$D/kubeconfig"
  return $rc
}

cmd_status() {
  local c
  for c in etcd kube-apiserver kube-scheduler kubelet; do
    if pid_alive "$(pidof_component $c)"; then echo "$c running pid=$(pidof_component $c)"; else echo "$c stopped"; fi
  done
  [ -f "$D/server" ] && api_running
}

cmd_env() {
  { [ -f "$ENVFILE" ] && [ -f "$D/server" ] && api_running; } || die "no running cluster in $D (run '$0 start-api' or '$0 start-node')"
  cat "$ENVFILE"
}

case "${1:-}" in
build) cmd_build ;;
start-api) cmd_start_api ;;
start-node) cmd_start_node ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  echo "usage: $0 build|start-api|start-node|stop|status|env" >&2
  exit 2
  ;;
esac
