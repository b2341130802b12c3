#!/usr/bin/env bash
# A private Docker engine for runtime-kernel's tests (and the Kubernetes tier's kubelet).
#
#   test/setup/docker-engine.sh start    # idempotent: installs packages, starts dockerd, imports the test image
#   test/setup/docker-engine.sh env      # prints the env file of a running engine
#   test/setup/docker-engine.sh status   # "running ..." (exit 0) or "stopped" (exit 3)
#   test/setup/docker-engine.sh stop     # stops it by pid and removes everything it created
#
# Everything lives under ${RK_DOCKER_DIR:-/tmp/runtime-kernel/docker}: data-root, exec-root,
# the unix socket, the runc wrapper, the log. `start` prints and writes $RK_DOCKER_DIR/env:
#   DOCKER_HOST=unix://<dir>/docker.sock
#   RK_TEST_IMAGE=runtime-kernel/busybox:test
#   RK_DOCKER_PID=<pid of dockerd>          (absent when RK_TEST_DOCKER_HOST is used)
#   RK_DOCKER_RUNTIME=rk-runc
# The engine never touches the host's network: no iptables rules, no bridge, no forwarding,
# no masquerading, and a dead proxy so that an accidental image pull fails at once.
# It never touches an engine the user already runs, unless RK_TEST_DOCKER_HOST names one:
# then `start` only imports the test image there and prints the env (writing no file).
set -euo pipefail

DIR="${RK_DOCKER_DIR:-/tmp/runtime-kernel/docker}"
IMAGE="${RK_TEST_IMAGE:-runtime-kernel/busybox:test}"
DOCKER=/usr/bin/docker # another client may sit earlier on PATH
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
LOG="$DIR/dockerd.log"
ENVFILE="$DIR/env"
MARKER="$DIR/.runtime-kernel-docker-engine"
WRAPPER="$DIR/bin/rk-runc"
RUNTIME=rk-runc
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

log() { printf 'docker-engine: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

case "$DIR" in
/*/*) ;;
*) die "RK_DOCKER_DIR must be an absolute path at least two levels deep (got '$DIR')" ;;
esac
# An untagged or `latest` image defaults to "always pull" in Kubernetes, which fails here.
[[ "${IMAGE##*/}" == *:* && "$IMAGE" != *:latest ]] ||
  die "RK_TEST_IMAGE must carry a tag other than latest (got '$IMAGE')"

docker_host() {
  if [[ -n "${RK_TEST_DOCKER_HOST:-}" ]]; then printf '%s' "$RK_TEST_DOCKER_HOST"; else printf 'unix://%s' "$SOCK"; fi
}

dockercli() { "$DOCKER" -H "$(docker_host)" "$@"; }

# The pid of our dockerd if it runs (pidfile names a live dockerd whose argv names our socket).
engine_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "unix://$SOCK" || return 1
  printf '%s' "$pid"
}

engine_answers() { dockercli version --format '{{.Server.Version}}' >/dev/null 2>&1; }

ensure_packages() {
  local missing=()
  [[ -x /usr/sbin/dockerd && -x "$DOCKER" && -x /usr/sbin/runc && -x /usr/bin/docker-init ]] || missing+=(docker.io)
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v jq >/dev/null 2>&1 || missing+=(jq)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  # policy-rc.d keeps Debian's maintainer scripts from starting a system-wide dockerd.
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  apt-get install -y -qq "${missing[@]}" >&2 || { ((created_policy)) && rm -f "$policy"; die "apt-get install ${missing[*]} failed"; }
  ((created_policy)) && rm -f "$policy"
  return 0
}

# runc fails to apply a negative oom_score_adj without CAP_SYS_RESOURCE (kubelet asks for one
# on every Pod). The wrapper rewrites it to 0 in the bundle's config.json, then execs runc.
write_wrapper() {
  mkdir -p "$DIR/bin"
  cat >"$WRAPPER.tmp" <<'EOF'
#!/bin/sh
# runc wrapper registered by runtime-kernel's test engine: clamps a negative
# .process.oomScoreAdj to 0 (no CAP_SYS_RESOURCE here), then execs the real runc.
bundle=""
prev=""
for arg in "$@"; do
  case "$prev" in --bundle|-b) bundle="$arg" ;; esac
  case "$arg" in --bundle=*) bundle="${arg#--bundle=}" ;; esac
  prev="$arg"
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  if jq -e '(.process.oomScoreAdj // 0) < 0' "$bundle/config.json" >/dev/null 2>&1; then
    jq -c '.process.oomScoreAdj = 0' "$bundle/config.json" >"$bundle/config.json.rk" &&
      mv "$bundle/config.json.rk" "$bundle/config.json"
  fi
fi
exec /usr/sbin/runc "$@"
EOF
  chmod 0755 "$WRAPPER.tmp"
  mv "$WRAPPER.tmp" "$WRAPPER"
}

# Host paths dockerd and containerd create whatever their roots are. Record which ones did
# not exist before, so that `stop` removes only those (and only once empty: another engine
# may be using them).
HOST_PATHS=(/run/docker/plugins /run/docker /run/containerd/s /run/containerd)
record_host_paths() {
  [[ -f "$DIR/host-paths" ]] && return 0
  local p
  for p in "${HOST_PATHS[@]}"; do [[ -e "$p" ]] || printf '%s\n' "$p"; done >"$DIR/host-paths"
}
restore_host_paths() {
  [[ -f "$DIR/host-paths" ]] || return 0
  local p
  while read -r p; do [[ -d "$p" ]] && rmdir "$p" 2>/dev/null; done <"$DIR/host-paths" || true
}

start_engine() {
  mkdir -p "$DIR/data" "$DIR/exec"
  touch "$MARKER"
  write_wrapper
  # Our own config file: the host's /etc/docker/daemon.json must not shape the test engine,
  # and the engine's trust key stays in our dir instead of /etc/docker/key.json.
  printf '{"deprecated-key-path": "%s/key.json"}\n' "$DIR" >"$DIR/daemon.json"
  record_host_paths
  rm -f "$SOCK" "$PIDFILE"
  log "starting dockerd (state in $DIR)"
  # setsid: the engine outlives the shell that started it (vitest's globalSetup); the dead
  # proxy makes an accidental pull fail at once instead of reaching out.
  env -i PATH="$PATH" HOME="$DIR" \
    HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 \
    setsid /usr/sbin/dockerd \
    --config-file "$DIR/daemon.json" \
    --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$PIDFILE" \
    -H "unix://$SOCK" \
    --storage-driver vfs \
    --iptables=false --ip6tables=false --bridge=none --ip-masq=false --ip-forward=false \
    --userland-proxy=false \
    --add-runtime "$RUNTIME=$WRAPPER" --default-runtime="$RUNTIME" \
    --shutdown-timeout 5 \
    --log-level warn \
    </dev/null >>"$LOG" 2>&1 9>&- &
  local launcher=$!
  local i
  for ((i = 0; i < 300; i++)); do
    if engine_answers; then
      engine_pid >/dev/null || die "dockerd answers on $SOCK but its pidfile is missing"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null; then
      tail -n 30 "$LOG" >&2 || true
      die "dockerd exited during startup (log: $LOG)"
    fi
    sleep 0.1
  done
  tail -n 30 "$LOG" >&2 || true
  die "dockerd did not answer on $SOCK within 30 s (log: $LOG)"
}

ensure_image() {
  if dockercli image inspect "$IMAGE" >/dev/null 2>&1; then return 0; fi
  log "importing $IMAGE from busybox-static"
  local build
  build="$(mktemp -d "$DIR/image.XXXXXX")"
  local root="$build/rootfs"
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/workspace" "$root/home/user"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  local applet
  for applet in $(/bin/busybox --list); do
    [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
  chown 1000:1000 "$root/home/user"
  tar -C "$root" -cf "$build/rootfs.tar" .
  dockercli import \
    -c 'ENV PATH=/bin' \
    -c 'CMD ["/bin/sh"]' \
    "$build/rootfs.tar" "$IMAGE" >/dev/null
  rm -rf "$build"
}

write_env() {
  local tmp="$ENVFILE.tmp"
  {
    printf 'DOCKER_HOST=%s\n' "$(docker_host)"
    printf 'RK_TEST_IMAGE=%s\n' "$IMAGE"
    printf 'RK_DOCKER_PID=%s\n' "$(engine_pid)"
    printf 'RK_DOCKER_RUNTIME=%s\n' "$RUNTIME"
  } >"$tmp"
  mv "$tmp" "$ENVFILE"
  cat "$ENVFILE"
}

# Processes our engine started (containerd, shims) whose argv names our state dir, by pid.
engine_children() {
  local p
  for p in /proc/[0-9]*; do
    [[ -r "$p/cmdline" ]] || continue
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q -- "$DIR/"; then printf '%s\n' "${p#/proc/}"; fi
  done
}

# Serialises start/stop on one state dir. The engine must never inherit fd 9 (9>&- above),
# or it would hold the lock for its whole life.
take_lock() {
  exec 9>"$DIR/.lock"
  flock -w 300 9 || die "another start/stop holds $DIR/.lock for more than 5 minutes"
}

# The env of an external engine (RK_TEST_DOCKER_HOST): printed only, so that the env file of
# a private engine in $DIR is never overwritten with another engine's address.
external_env() {
  printf 'DOCKER_HOST=%s\nRK_TEST_IMAGE=%s\n' "$RK_TEST_DOCKER_HOST" "$IMAGE"
}

cmd_start() {
  if [[ -n "${RK_TEST_DOCKER_HOST:-}" ]]; then
    engine_answers || die "RK_TEST_DOCKER_HOST=$RK_TEST_DOCKER_HOST does not answer"
    ensure_image
    external_env
    return 0
  fi
  mkdir -p "$DIR"
  take_lock
  ensure_packages
  if engine_pid >/dev/null && engine_answers; then
    log "already running (pid $(engine_pid))"
  else
    if pid="$(engine_pid)"; then
      die "dockerd pid $pid runs but does not answer on $SOCK; run '$0 stop' first"
    fi
    start_engine
  fi
  ensure_image
  write_env
}

cmd_stop() {
  if [[ -n "${RK_TEST_DOCKER_HOST:-}" ]]; then
    log "RK_TEST_DOCKER_HOST is set: nothing of ours to stop"
    return 0
  fi
  [[ -d "$DIR" ]] || { log "nothing to stop in $DIR"; return 0; }
  take_lock
  local pid i
  if pid="$(engine_pid)"; then
    log "stopping dockerd pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd pid $pid ignored SIGTERM for 30 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  # containerd and shims normally exit with dockerd; anything left that names our dir goes by pid.
  local left
  left="$(engine_children)"
  if [[ -n "$left" ]]; then
    log "stopping leftover engine processes: $(echo $left)"
    for pid in $left; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in $(engine_children); do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  # Container shm and netns mounts under our dir, deepest first.
  local mnt
  for mnt in $(awk -v dir="$DIR/" 'index($5, dir) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$mnt" 2>/dev/null || true
  done
  restore_host_paths
  if [[ -f "$MARKER" ]]; then
    rm -rf "$DIR/data" "$DIR/exec" "$DIR/bin" "$DIR"/image.* "$SOCK" "$PIDFILE" "$ENVFILE" "$LOG" \
      "$DIR/daemon.json" "$DIR/key.json" "$DIR/host-paths" "$MARKER"
  fi
  rm -f "$DIR/.lock"
  rmdir "$DIR" 2>/dev/null || true
  log "stopped"
}

cmd_status() {
  if [[ -n "${RK_TEST_DOCKER_HOST:-}" ]]; then
    if engine_answers; then echo "running host=$RK_TEST_DOCKER_HOST (external)"; return 0; fi
    echo "stopped host=$RK_TEST_DOCKER_HOST (external, not answering)"
    return 3
  fi
  local pid
  if pid="$(engine_pid)" && engine_answers; then
    local image=missing
    dockercli image inspect "$IMAGE" >/dev/null 2>&1 && image=present
    echo "running pid=$pid host=unix://$SOCK image=$IMAGE($image) dir=$DIR"
    return 0
  fi
  echo "stopped dir=$DIR"
  return 3
}

cmd_env() {
  if [[ -n "${RK_TEST_DOCKER_HOST:-}" ]]; then
    cmd_status >/dev/null || die "RK_TEST_DOCKER_HOST=$RK_TEST_DOCKER_HOST does not answer"
    external_env
    return 0
  fi
  if [[ -f "$ENVFILE" ]] && cmd_status >/dev/null; then
    cat "$ENVFILE"
    return 0
  fi
  die "no running engine in $DIR (run '$0 start')"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
env) cmd_env ;;
*)
  echo "usage: $0 start|stop|status|env   (state dir: \${RK_DOCKER_DIR:-/tmp/runtime-kernel/docker})" >&2
  exit 2
  ;;
esac
