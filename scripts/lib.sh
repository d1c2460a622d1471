# shellcheck shell=bash
# Variables set here are read by the scripts that source this file, some of
# them only by name (${!name}):
# shellcheck disable=SC2034
# scripts/lib.sh — helpers shared by scripts/up, scripts/down and scripts/test.
# Source it (`source "$(dirname "$0")/lib.sh"`); running it does nothing.
#
# Everything here starts *private* servers on loopback ports of their own, with
# their state in a directory the caller names (under .run/). The machine's own
# Redis (6379) and PostgreSQL (5432) are never used or touched.

if [[ -n "${STAMPEDE_LIB_SOURCED:-}" ]]; then
  return 0
fi
STAMPEDE_LIB_SOURCED=1

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# STAMPEDE_RUN_DIR puts a whole second stack elsewhere (test stages use .run/test/…).
RUN_DIR="${STAMPEDE_RUN_DIR:-${REPO_ROOT}/.run}"
# nginx, runuser and friends live in sbin, which a non-root PATH may lack.
case ":${PATH}:" in *:/usr/sbin:*) ;; *) PATH="${PATH}:/usr/sbin:/sbin" ;; esac
export PATH

# Ports handed out by pick_port during this run, so two servers never get the same one.
STAMPEDE_CLAIMED_PORTS=" "

# ---------------------------------------------------------------------------
# logging
# ---------------------------------------------------------------------------
log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# tail_log FILE [LINES]: show the end of a log file on stderr (for failure messages).
tail_log() {
  local file=$1 lines=${2:-30}
  if [[ -f $file ]]; then
    printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
    tail -n "$lines" "$file" >&2 || true
    printf -- '--- end of %s ---\n' "$file" >&2
  fi
}

# ---------------------------------------------------------------------------
# packages
# ---------------------------------------------------------------------------
# command:package pairs. "pg-server" is checked through pg_bindir, not PATH;
# "pymod-NAME" by importing the Python module NAME (python_has).
STAMPEDE_PKGS=(
  "redis-server:redis-server"
  "redis-cli:redis-tools"
  "pg-server:postgresql"
  "psql:postgresql-client"
  "nginx:nginx-light"
  "prometheus:prometheus"
  "promtool:prometheus"
  "wrk:wrk"
  "curl:curl"
  "openssl:openssl"
  "ss:iproute2"
  "runuser:util-linux"
)
STAMPEDE_APT_UPDATED=""

as_root() {
  if ((EUID == 0)); then
    "$@"
  elif have sudo; then
    sudo -n "$@" || die "'sudo -n $*' failed: run as root or allow passwordless sudo for apt-get"
  else
    die "need root (or sudo) to run: $*"
  fi
}

apt_update_once() {
  [[ -n $STAMPEDE_APT_UPDATED ]] && return 0
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  STAMPEDE_APT_UPDATED=1
}

# ensure_pkgs [command:package ...]: apt-get install whatever is missing among the
# platform's packages plus the extra pairs given. A no-op when all are present.
ensure_pkgs() {
  local entry cmd pkg missing=()
  for entry in "${STAMPEDE_PKGS[@]}" "$@"; do
    cmd=${entry%%:*}
    pkg=${entry#*:}
    if [[ $cmd == pg-server ]]; then
      pg_bindir >/dev/null 2>&1 && continue
    elif [[ $cmd == pymod-* ]]; then
      python_has "${cmd#pymod-}" && continue
    else
      have "$cmd" && continue
    fi
    [[ " ${missing[*]} " == *" ${pkg} "* ]] || missing+=("$pkg")
  done
  ((${#missing[@]} == 0)) && return 0

  have apt-get || die "missing packages (${missing[*]}) and no apt-get: install them by hand"
  apt_update_once
  local i
  for i in "${!missing[@]}"; do
    # nginx-light is a transitional package on newer Debian; fall back to nginx.
    if [[ ${missing[$i]} == nginx-light ]] && ! apt-cache show nginx-light >/dev/null 2>&1; then
      missing[i]=nginx
    fi
  done
  log "apt-get install ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
    install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  for entry in "${STAMPEDE_PKGS[@]}" "$@"; do
    cmd=${entry%%:*}
    if [[ $cmd == pg-server ]]; then
      pg_bindir >/dev/null 2>&1 || die "PostgreSQL server binaries still missing after apt-get install"
    elif [[ $cmd == pymod-* ]]; then
      python_has "${cmd#pymod-}" || die "Python module ${cmd#pymod-} still missing after apt-get install"
    else
      have "$cmd" || die "'$cmd' still missing after apt-get install"
    fi
  done
}

# python_has MODULE: the python3 on PATH, or Debian's /usr/bin/python3 (which
# apt's python3-* packages serve), imports MODULE.
python_has() {
  local py
  for py in python3 /usr/bin/python3; do
    have "$py" && "$py" -c "import $1" >/dev/null 2>&1 && return 0
  done
  return 1
}

# find_cargo: put cargo on PATH (it may only be in ~/.cargo/bin) or fail clearly.
find_cargo() {
  if ! have cargo; then
    local d
    for d in "${CARGO_HOME:-${HOME}/.cargo}/bin" "${HOME}/.cargo/bin" /root/.cargo/bin /usr/local/cargo/bin; do
      if [[ -x $d/cargo ]]; then
        PATH="${d}:${PATH}"
        export PATH
        break
      fi
    done
  fi
  if ! have cargo; then
    printf 'ERROR: no Rust toolchain: cargo is neither on PATH nor in ~/.cargo/bin.\n' >&2
    printf '       It cannot be downloaded here; install rustup/cargo on this machine first.\n' >&2
    return 1
  fi
}

# ---------------------------------------------------------------------------
# ports and processes
# ---------------------------------------------------------------------------
# raise_nofile: lift this shell's soft open-file limit to the hard limit, so the
# servers it starts (nginx, the app under load) can hold many connections.
raise_nofile() {
  local hard
  hard=$(ulimit -Hn)
  [[ $hard == unlimited ]] && hard=1048576
  ulimit -Sn "$hard" 2>/dev/null || true
}

# port_free PORT: true when nothing listens on PORT (any address).
port_free() {
  local port=$1
  if have ss && [[ -n "$(ss -Hltn "sport = :${port}" 2>/dev/null)" ]]; then
    return 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; then
    return 1
  fi
  return 0
}

# pick_port VAR PORT...: set VAR to the first free, unclaimed port among the
# candidates (empty ones are skipped); if none is free, scan upward from the last.
pick_port() {
  local __var=$1 p last=""
  shift
  for p in "$@"; do
    [[ -n $p ]] || continue
    last=$p
    if [[ $STAMPEDE_CLAIMED_PORTS != *" ${p} "* ]] && port_free "$p"; then
      printf -v "$__var" '%s' "$p"
      STAMPEDE_CLAIMED_PORTS+="${p} "
      return 0
    fi
  done
  [[ -n $last ]] || die "pick_port: no candidate port given"
  for ((p = last + 1; p < last + 500 && p < 65536; p++)); do
    if [[ $STAMPEDE_CLAIMED_PORTS != *" ${p} "* ]] && port_free "$p"; then
      printf -v "$__var" '%s' "$p"
      STAMPEDE_CLAIMED_PORTS+="${p} "
      return 0
    fi
  done
  die "no free port found from $1 upward"
}

# claim_port PORT: fail unless PORT is free; then mark it as taken for this run.
claim_port() {
  local p=$1 what=${2:-port}
  port_free "$p" || die "$what $p is already in use by another program"
  STAMPEDE_CLAIMED_PORTS+="${p} "
}

# read_kv FILE KEY: print KEY's value from a KEY=VALUE file (empty if absent).
read_kv() {
  local file=$1 key=$2 line
  [[ -f $file ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == "${key}="* ]]; then
      printf '%s' "${line#*=}"
      return 0
    fi
  done <"$file"
}

# load_env_file FILE [KEY...]: export the KEY=VALUE lines of FILE (values
# quoted for the shell, as scripts/up writes .run/env), or only the KEYs
# named. A variable already set in the environment wins over the file.
load_env_file() {
  local file=$1 line key
  shift
  [[ -f $file ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ ^([A-Z_][A-Z0-9_]*)= ]] || continue
    key=${BASH_REMATCH[1]}
    (($# == 0)) || [[ " $* " == *" ${key} "* ]] || continue
    [[ -z ${!key+set} ]] || continue
    eval "export ${line}"
  done <"$file"
}

# pid_matches PID PATTERN: PID is alive and its command line contains PATTERN.
pid_matches() {
  local pid=$1 pattern=$2 cmdline
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  cmdline=$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$pattern"* ]]
}

# pidfile_alive PIDFILE PATTERN: the process named in PIDFILE runs and matches.
pidfile_alive() {
  local pidfile=$1 pattern=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(head -n1 "$pidfile")
  pid_matches "$pid" "$pattern"
}

# stop_pidfile PIDFILE PATTERN NAME [TIMEOUT]: SIGTERM the process, wait, then SIGKILL.
# Harmless when the pid file is missing or stale (a stale one is removed).
stop_pidfile() {
  local pidfile=$1 pattern=$2 name=$3 timeout=${4:-20} pid i
  if ! pidfile_alive "$pidfile" "$pattern"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(head -n1 "$pidfile")
  log "stopping ${name} (pid ${pid})"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    pid_matches "$pid" "$pattern" || break
    sleep 0.1
  done
  if pid_matches "$pid" "$pattern"; then
    warn "${name} (pid ${pid}) did not stop within ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$pidfile"
}

# wait_http URL [TIMEOUT_SECONDS] [PID]: wait until URL answers 2xx. If PID is
# given and that process dies meanwhile, fail at once.
wait_http() {
  local url=$1 timeout=${2:-60} pid=${3:-} deadline
  deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
      return 0
    fi
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      warn "process ${pid} exited while waiting for ${url}"
      return 1
    fi
    sleep 0.2
  done
  warn "timed out after ${timeout}s waiting for ${url}"
  return 1
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------
redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }

# start_redis DIR PORT [EXTRA redis-server ARGS...]: a private Redis with its data,
# pid file and log in DIR, on PORT or the next free port. If the Redis started
# from DIR before is still running, it is reused. Sets REDIS_PORT and writes
# DIR/ports.env. EXTRA args come last, so they win (scripts/test passes
# `--appendfsync everysec` for its disposable test data).
#
# Durability: AOF with `appendfsync always` (STAMPEDE_REDIS_APPENDFSYNC to
# override). A payment's 201 says the order exists; with `everysec` a crash of
# the machine loses up to a second of acknowledged writes (and Redis may answer
# before even the write(2) when a slow fsync is still running), so an order
# already charged and confirmed could vanish. `always` fsyncs each event-loop
# batch before its replies go out: nothing acknowledged is lost. Its price,
# measured by `scripts/chaos --fsync-cost` (the lean hold benchmark, 64
# connections, 2 cores, 5 alternating rounds of 10 s): 13-14% of the peak hold
# rate on a quiet disk (10,400-10,800 → 9,000-9,300 holds/s; p50 5.9 → 6.6 ms,
# p99 14 → 20 ms), about 40% while other work writes to the same disk (a build:
# 7,500 → 4,500 holds/s). Either way far above a 20,000-seat
# sale's first minute. Redis 7.0 has no WAITAOF (7.2) to fsync only payments.
# redis_server_start DIR PORT [ARGS...]: one private redis-server on
# 127.0.0.1:PORT, daemonized, its data, pid file (redis.pid) and log
# (redis.log) in DIR, with the durability and keyspace notifications above;
# ARGS come last, so they win. Used by start_redis and by every node of
# start_redis_cluster, so both keep the same settings.
redis_server_start() {
  local dir=$1 port=$2
  shift 2
  redis-server --daemonize yes \
    --bind 127.0.0.1 --port "$port" \
    --dir "$dir" --pidfile "${dir}/redis.pid" --logfile "${dir}/redis.log" \
    --appendonly yes --appendfsync "${STAMPEDE_REDIS_APPENDFSYNC:-always}" \
    --notify-keyspace-events Ex \
    --save "" \
    "$@" || {
    tail_log "${dir}/redis.log"
    die "redis-server on port ${port} failed to start"
  }
}

start_redis() {
  local dir=$1 preferred=$2
  shift 2
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  local pidfile=${dir}/redis.pid logfile=${dir}/redis.log recorded
  recorded=$(read_kv "${dir}/ports.env" REDIS_PORT)

  if pidfile_alive "$pidfile" redis-server; then
    if [[ -n $recorded ]] && redis_ping "$recorded"; then
      REDIS_PORT=$recorded
      STAMPEDE_CLAIMED_PORTS+="${REDIS_PORT} "
      log "Redis already running on 127.0.0.1:${REDIS_PORT} (${dir})"
      return 0
    fi
    warn "the Redis of ${dir} runs but does not answer; restarting it"
    stop_redis "$dir"
  fi

  pick_port REDIS_PORT "$recorded" "$preferred"
  log "starting Redis on 127.0.0.1:${REDIS_PORT} (${dir})"
  redis_server_start "$dir" "$REDIS_PORT" "$@"
  local i
  for ((i = 0; i < 150; i++)); do
    redis_ping "$REDIS_PORT" && break
    sleep 0.2
  done
  if ! redis_ping "$REDIS_PORT"; then
    tail_log "$logfile"
    die "Redis on port ${REDIS_PORT} did not answer PING within 30s"
  fi
  printf 'REDIS_PORT=%s\n' "$REDIS_PORT" >"${dir}/ports.env"
}

# stop_redis DIR: stop the Redis started from DIR (AOF is flushed on SIGTERM).
stop_redis() {
  local dir=$1
  [[ -d $dir ]] || return 0
  stop_pidfile "${dir}/redis.pid" redis-server "Redis (${dir})" 30
}

# cluster_ok PORT: the cluster node on PORT reports cluster_state:ok.
cluster_ok() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' | grep '^cluster_state:')" == cluster_state:ok ]]; }

# start_redis_cluster DIR PORT [EXTRA redis-server ARGS...]: a private Redis
# Cluster of 3 primaries with 1 replica each (6 redis-server processes with
# `cluster-enabled yes`, keyspace notifications on, data in DIR/node-<port>/),
# made with `redis-cli --cluster create`. Node ports are PORT and up, each the
# next free port whose cluster bus port (port + 10000) is free too. A cluster
# of DIR that is still running is reused. Sets REDIS_CLUSTER_PORTS (the six
# ports, primaries first as created) and REDIS_CLUSTER_URL (every node's
# redis:// URL, comma-separated: the seed list STAMPEDE_REDIS_URL takes) and
# writes DIR/ports.env. Durability as start_redis (AOF `always` unless
# STAMPEDE_REDIS_APPENDFSYNC says otherwise).
start_redis_cluster() {
  local dir=$1 preferred=$2
  shift 2
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  local recorded port ports=() alive=1
  recorded=$(read_kv "${dir}/ports.env" REDIS_CLUSTER_PORTS)
  if [[ -n $recorded ]]; then
    for port in ${recorded//,/ }; do
      if ! pidfile_alive "${dir}/node-${port}/redis.pid" redis-server || ! redis_ping "$port"; then
        alive=0
      fi
    done
    if ((alive)) && cluster_ok "${recorded%%,*}"; then
      REDIS_CLUSTER_PORTS=$recorded
      for port in ${recorded//,/ }; do STAMPEDE_CLAIMED_PORTS+="${port} "; done
      REDIS_CLUSTER_URL=$(cluster_urls "$recorded")
      log "Redis Cluster already running on ${REDIS_CLUSTER_PORTS} (${dir})"
      return 0
    fi
    warn "the Redis Cluster of ${dir} is not whole; starting it anew"
    stop_redis_cluster "$dir"
    rm -rf "${dir:?}"/node-*
  fi
  local candidate=$preferred
  while ((${#ports[@]} < 6)); do
    pick_port port "$candidate"
    if ((port + 10000 < 65536)) && port_free $((port + 10000)); then
      ports+=("$port")
    fi
    candidate=$((port + 1))
  done
  log "starting a Redis Cluster on 127.0.0.1:${ports[*]} (${dir})"
  : >"${dir}/extra-args"
  (($#)) && printf '%s\n' "$@" >"${dir}/extra-args"
  for port in "${ports[@]}"; do
    start_cluster_node "$dir" "$port"
  done
  local i
  for port in "${ports[@]}"; do
    for ((i = 0; i < 150; i++)); do
      redis_ping "$port" && break
      sleep 0.2
    done
    redis_ping "$port" || die "Redis Cluster node ${port} did not answer PING within 30s"
  done
  local addrs=()
  for port in "${ports[@]}"; do addrs+=("127.0.0.1:${port}"); done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"${dir}/create.log" 2>&1 || {
    cat "${dir}/create.log" >&2
    die "redis-cli --cluster create failed"
  }
  for ((i = 0; i < 150; i++)); do
    cluster_ok "${ports[0]}" && cluster_ok "${ports[5]}" && break
    sleep 0.2
  done
  cluster_ok "${ports[0]}" || die "the Redis Cluster did not reach cluster_state:ok within 30s"
  # Replicas attach after the create: wait for all three, so a failover test
  # starts with a replica behind every primary.
  for ((i = 0; i < 150; i++)); do
    [[ $(redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster nodes 2>/dev/null | grep -c ' slave ') == 3 ]] && break
    sleep 0.2
  done
  REDIS_CLUSTER_PORTS=$(IFS=,; printf '%s' "${ports[*]}")
  REDIS_CLUSTER_URL=$(cluster_urls "$REDIS_CLUSTER_PORTS")
  printf 'REDIS_CLUSTER_PORTS=%s\n' "$REDIS_CLUSTER_PORTS" >"${dir}/ports.env"
}

# start_cluster_node DIR PORT: start (or start again, after a crash: its
# nodes.conf and AOF bring it back as the member it was) the node of the
# cluster of DIR on PORT, with the cluster's extra arguments (DIR/extra-args).
start_cluster_node() {
  local dir=$1 port=$2 node=${1}/node-${2} extra=()
  mkdir -p "$node"
  [[ -s ${dir}/extra-args ]] && mapfile -t extra <"${dir}/extra-args"
  redis_server_start "$node" "$port" \
    --cluster-enabled yes --cluster-config-file "${node}/nodes.conf" --cluster-node-timeout 2000 "${extra[@]}"
}

# cluster_slot_owner DIR KEY: the port of the live primary that serves KEY's
# slot in the cluster of DIR (asked of any node that answers), or nothing.
cluster_slot_owner() {
  local dir=$1 key=$2 port any="" slot
  for port in $(read_kv "${dir}/ports.env" REDIS_CLUSTER_PORTS | tr , ' '); do
    if redis_ping "$port"; then
      any=$port
      break
    fi
  done
  [[ -n $any ]] || return 0
  slot=$(redis-cli -h 127.0.0.1 -p "$any" cluster keyslot "$key" | tr -d '\r')
  redis-cli -h 127.0.0.1 -p "$any" cluster nodes | tr -d '\r' | awk -v slot="$slot" '
    $3 ~ /master/ && $3 !~ /fail/ {
      for (i = 9; i <= NF; i++) {
        n = split($i, r, "-"); lo = r[1]; hi = (n > 1) ? r[2] : r[1]
        if (lo ~ /^[0-9]+$/ && slot + 0 >= lo + 0 && slot + 0 <= hi + 0) { split($2, a, "[:@]"); print a[2]; exit }
      }
    }'
}

# cluster_urls P1,P2,...: the comma-separated redis:// URLs of those loopback ports.
cluster_urls() {
  local port urls=()
  for port in ${1//,/ }; do urls+=("redis://127.0.0.1:${port}/"); done
  (IFS=,; printf '%s' "${urls[*]}")
}

# stop_redis_cluster DIR: stop every node of the cluster started from DIR.
stop_redis_cluster() {
  local dir=$1 node
  [[ -d $dir ]] || return 0
  for node in "$dir"/node-*; do
    [[ -d $node ]] || continue
    stop_pidfile "${node}/redis.pid" redis-server "Redis Cluster node (${node##*/})" 30
  done
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
# pg_bindir: print the directory holding initdb/pg_ctl/postgres (newest version).
pg_bindir() {
  local d candidates=()
  if [[ -n ${STAMPEDE_PG_BIN:-} ]]; then
    printf '%s\n' "$STAMPEDE_PG_BIN"
    return 0
  fi
  shopt -s nullglob
  candidates=(/usr/lib/postgresql/*/bin)
  shopt -u nullglob
  if ((${#candidates[@]})); then
    while IFS= read -r d; do
      if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres ]]; then
        printf '%s\n' "$d"
        return 0
      fi
    done < <(printf '%s\n' "${candidates[@]}" | sort -V -r)
  fi
  if have initdb; then
    d=$(dirname "$(readlink -f "$(command -v initdb)")")
    if [[ -x $d/pg_ctl && -x $d/postgres ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  fi
  return 1
}

# as_pg CMD...: run a server-side PostgreSQL command. Postgres refuses to run as
# root, so as root it runs as the `postgres` user (from /, which it can read).
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# resolve_pg_home DIR [create]: set PG_HOME, the directory the server user owns
# (data/, sock/, postgres.log). Normally DIR itself; when the postgres user cannot
# reach DIR (a checkout under /root, say) it lives under /var/tmp instead and
# DIR/pg_home names it.
resolve_pg_home() {
  local dir=$1 create=${2:-}
  if [[ -s ${dir}/pg_home ]]; then
    PG_HOME=$(head -n1 "${dir}/pg_home")
    return 0
  fi
  PG_HOME=$dir
  ((EUID == 0)) || return 0
  [[ -n $create ]] || return 0
  id postgres >/dev/null 2>&1 || die "no 'postgres' user: is the postgresql package installed?"
  chown postgres: "$dir"
  chmod 0750 "$dir"
  if runuser -u postgres -- test -w "$dir" -a -x "$dir" 2>/dev/null; then
    return 0
  fi
  local sum
  sum=$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
  PG_HOME=/var/tmp/stampede-pg/${sum}
  warn "user postgres cannot reach ${dir}; keeping the cluster in ${PG_HOME}"
  mkdir -p "$PG_HOME"
  chmod 0755 /var/tmp/stampede-pg
  chown postgres: "$PG_HOME"
  chmod 0750 "$PG_HOME"
  printf '%s\n' "$PG_HOME" >"${dir}/pg_home"
  ln -sfn "${PG_HOME}/data" "${dir}/data"
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -t 2 >/dev/null 2>&1; }

# start_postgres DIR PORT [SETTING=VALUE ...]: a private PostgreSQL cluster in DIR
# (initdb on first use: superuser `postgres`, trust auth, listening on 127.0.0.1
# only, unix socket inside DIR), on PORT or the next free port, with database
# `stampede`. Extra SETTING=VALUE pairs are passed as `-c` options at start.
# A cluster of DIR that is already running is reused. Sets PG_PORT, writes
# DIR/ports.env.
start_postgres() {
  local dir=$1 preferred=$2
  shift 2
  local pgbin
  pgbin=$(pg_bindir) || die "PostgreSQL server binaries not found (apt-get install postgresql)"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  resolve_pg_home "$dir" create
  local data=${PG_HOME}/data sock=${PG_HOME}/sock logfile=${PG_HOME}/postgres.log recorded
  recorded=$(read_kv "${dir}/ports.env" PG_PORT)

  if [[ ! -s ${data}/PG_VERSION ]]; then
    log "initdb ${data}"
    as_pg mkdir -p "$sock"
    if ! as_pg "${pgbin}/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
      --no-locale --no-instructions >"${dir}/initdb.log" 2>&1; then
      tail_log "${dir}/initdb.log"
      die "initdb failed"
    fi
    # A unix socket path must fit in 107 bytes; fall back to TCP only otherwise.
    local sockdirs="'${sock}'"
    if ((${#sock} > 90)); then
      sockdirs="''"
    fi
    cat >>"${data}/postgresql.conf" <<EOF

# --- Stampede private cluster (scripts/lib.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ${sockdirs}
max_connections = 300
shared_buffers = 128MB
EOF
  fi

  if as_pg "${pgbin}/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    if [[ -n $recorded ]] && pg_ready "$recorded"; then
      PG_PORT=$recorded
      STAMPEDE_CLAIMED_PORTS+="${PG_PORT} "
      log "PostgreSQL already running on 127.0.0.1:${PG_PORT} (${dir})"
      pg_ensure_db "$PG_PORT" stampede
      return 0
    fi
    warn "the PostgreSQL of ${dir} runs but does not answer; restarting it"
    stop_postgres "$dir"
  fi

  pick_port PG_PORT "$recorded" "$preferred"
  local opts="-p ${PG_PORT}" kv
  for kv in "$@"; do
    opts+=" -c ${kv}"
  done
  log "starting PostgreSQL on 127.0.0.1:${PG_PORT} (${dir})"
  if ! as_pg "${pgbin}/pg_ctl" -D "$data" -l "$logfile" -w -t 60 -o "$opts" start >/dev/null; then
    tail_log "$logfile"
    die "PostgreSQL failed to start"
  fi
  local i
  for ((i = 0; i < 150; i++)); do
    pg_ready "$PG_PORT" && break
    sleep 0.2
  done
  if ! pg_ready "$PG_PORT"; then
    tail_log "$logfile"
    die "PostgreSQL on port ${PG_PORT} is not ready after 30s"
  fi
  printf 'PG_PORT=%s\n' "$PG_PORT" >"${dir}/ports.env"
  pg_ensure_db "$PG_PORT" stampede
}

# pg_ensure_db PORT NAME: create database NAME unless it exists.
pg_ensure_db() {
  local port=$1 name=$2 found
  found=$(psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '${name}'") || die "cannot query PostgreSQL on port ${port}"
  if [[ $found != 1 ]]; then
    log "creating database ${name}"
    createdb -h 127.0.0.1 -p "$port" -U postgres "$name"
  fi
}

# stop_postgres DIR: fast shutdown of the cluster in DIR; harmless if not running.
stop_postgres() {
  local dir=$1
  [[ -d $dir ]] || return 0
  dir=$(cd "$dir" && pwd -P)
  resolve_pg_home "$dir"
  local data=${PG_HOME}/data pgbin pid i
  [[ -f ${data}/postmaster.pid ]] || return 0
  pid=$(head -n1 "${data}/postmaster.pid")
  pid_matches "$pid" postgres || return 0
  log "stopping PostgreSQL (${dir})"
  if pgbin=$(pg_bindir); then
    as_pg "${pgbin}/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
  else
    kill -INT "$pid" 2>/dev/null || true
  fi
  for ((i = 0; i < 300; i++)); do
    pid_matches "$pid" postgres || return 0
    sleep 0.2
  done
  warn "PostgreSQL (pid ${pid}) still running after 60s"
  return 1
}

# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------
# The template's placeholders; each must be set when rendering.
NGINX_PLACEHOLDERS=(LISTEN PREFIX WEB_ROOT AUTH_UPSTREAM CATALOG_UPSTREAM RESERVATION_UPSTREAM CHECKOUT_UPSTREAM)

# render_nginx_conf TEMPLATE OUT: substitute ${NAME} for each name in
# NGINX_PLACEHOLDERS (from shell variables of that name). Lines carrying
# ${RATE_LIMITS} are kept (marker removed) when RATE_LIMITS=on and dropped when
# RATE_LIMITS=off. Comment lines are copied untouched. Fails on any placeholder
# left over.
render_nginx_conf() {
  local tmpl=$1 out=$2 line name trimmed rendered="" rl=${RATE_LIMITS:-on}
  [[ -f $tmpl ]] || die "nginx template ${tmpl} not found"
  [[ $rl == on || $rl == off ]] || die "RATE_LIMITS must be on or off, not '${rl}'"
  for name in "${NGINX_PLACEHOLDERS[@]}"; do
    [[ -n ${!name:-} ]] || die "render_nginx_conf: ${name} is not set"
  done
  while IFS= read -r line || [[ -n $line ]]; do
    trimmed=${line#"${line%%[![:space:]]*}"}
    if [[ $trimmed != '#'* ]]; then
      # shellcheck disable=SC2016 # a literal ${RATE_LIMITS}
      if [[ $line == *'${RATE_LIMITS}'* ]]; then
        [[ $rl == off ]] && continue
        # shellcheck disable=SC2016
        line=${line//'${RATE_LIMITS}'/}
      fi
      for name in "${NGINX_PLACEHOLDERS[@]}"; do
        line=${line//"\${${name}}"/"${!name}"}
      done
      if [[ $line =~ \$\{[A-Z][A-Z0-9_]*\} ]]; then
        die "unknown placeholder ${BASH_REMATCH[0]} in ${tmpl}"
      fi
    fi
    rendered+="${line}"$'\n'
  done <"$tmpl"
  printf '%s' "$rendered" >"$out"
}

# nginx_prepare DIR: create DIR's layout, mime.types and the rendered nginx.conf.
# Needs the placeholder variables (LISTEN, *_UPSTREAM, RATE_LIMITS); PREFIX and
# WEB_ROOT default to DIR/ and the repo's web/.
nginx_prepare() {
  local dir=$1
  mkdir -p "${dir}/logs" "${dir}/tmp"
  PREFIX="${dir}/"
  WEB_ROOT=${WEB_ROOT:-${REPO_ROOT}/web}
  if [[ -f /etc/nginx/mime.types ]]; then
    cp /etc/nginx/mime.types "${dir}/mime.types"
  else
    cat >"${dir}/mime.types" <<'EOF'
types {
    text/html html htm;
    text/css css;
    text/plain txt;
    application/javascript js mjs;
    application/json json;
    application/manifest+json webmanifest;
    image/svg+xml svg;
    image/png png;
    image/x-icon ico;
    font/woff2 woff2;
}
EOF
  fi
  render_nginx_conf "${REPO_ROOT}/nginx/nginx.conf.tmpl" "${dir}/nginx.conf"
}

# nginx_check DIR: `nginx -t` on DIR/nginx.conf.
nginx_check() {
  local dir=$1
  nginx -t -q -p "${dir}/" -c "${dir}/nginx.conf" -e "${dir}/logs/error.log"
}

# start_nginx DIR: render the template into DIR, validate, and run nginx with
# every path (pid, logs, temp files) inside DIR. An nginx started from DIR before
# is stopped first. Needs LISTEN (host:port), the four *_UPSTREAM (host:port) and
# RATE_LIMITS (on|off).
start_nginx() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd -P)
  nginx_prepare "$dir"
  nginx_check "$dir" || die "nginx rejected ${dir}/nginx.conf"
  stop_nginx "$dir"
  port_free "${LISTEN##*:}" || die "nginx port ${LISTEN##*:} is already in use by another program"
  if ((EUID == 0)) && ! runuser -u nobody -- test -r "${WEB_ROOT}/index.html" 2>/dev/null; then
    warn "nginx workers (user nobody) cannot read ${WEB_ROOT}; static pages will fail"
  fi
  log "starting nginx on ${LISTEN} (${dir})"
  raise_nofile
  nginx -p "${dir}/" -c "${dir}/nginx.conf" -e "${dir}/logs/error.log" || {
    tail_log "${dir}/logs/error.log"
    die "nginx failed to start"
  }
  if ! wait_http "http://${LISTEN}/healthz" 15; then
    tail_log "${dir}/logs/error.log"
    die "nginx does not answer on ${LISTEN}"
  fi
}

# stop_nginx DIR: graceful stop of the nginx started from DIR; harmless if none.
stop_nginx() {
  local dir=$1
  [[ -d $dir ]] || return 0
  stop_pidfile "${dir}/nginx.pid" nginx "nginx (${dir})" 15
}

# ---------------------------------------------------------------------------
# Prometheus
# ---------------------------------------------------------------------------
# start_prometheus DIR PORT CONFIG: Prometheus on 127.0.0.1:PORT with CONFIG
# copied to DIR/prometheus.yml and its data in DIR/data. Restarts a running one.
start_prometheus() {
  local dir=$1 port=$2 config=$3 pid
  mkdir -p "${dir}/data"
  dir=$(cd "$dir" && pwd -P)
  stop_prometheus "$dir"
  [[ ${config} -ef ${dir}/prometheus.yml ]] || cp "$config" "${dir}/prometheus.yml"
  if have promtool; then
    promtool check config "${dir}/prometheus.yml" >/dev/null || die "promtool rejected ${dir}/prometheus.yml"
  fi
  port_free "$port" || die "Prometheus port ${port} is already in use by another program"
  log "starting Prometheus on 127.0.0.1:${port} (${dir})"
  nohup prometheus \
    --config.file="${dir}/prometheus.yml" \
    --storage.tsdb.path="${dir}/data" \
    --storage.tsdb.retention.time=7d \
    --web.listen-address="127.0.0.1:${port}" \
    --web.enable-lifecycle \
    >>"${dir}/prometheus.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"${dir}/prometheus.pid"
  if ! wait_http "http://127.0.0.1:${port}/-/ready" 60 "$pid"; then
    tail_log "${dir}/prometheus.log"
    die "Prometheus did not become ready"
  fi
}

stop_prometheus() {
  local dir=$1
  [[ -d $dir ]] || return 0
  stop_pidfile "${dir}/prometheus.pid" prometheus "Prometheus (${dir})" 30
}

# ---------------------------------------------------------------------------
# the application
# ---------------------------------------------------------------------------
STAMPEDE_ROLES=(auth catalog reservation checkout persister expiry notifier)
declare -A STAMPEDE_DEFAULT_PORTS=(
  [auth]=8101 [catalog]=8102 [reservation]=8103 [checkout]=8104
  [persister]=8105 [expiry]=8106 [notifier]=8107
)

stampede_bin() { printf '%s\n' "${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/release/stampede"; }

# stop_app DIR: stop the `stampede serve` whose pid file is DIR/stampede.pid.
stop_app() {
  local dir=$1 pidfile
  [[ -d $dir ]] || return 0
  stop_pidfile "${dir}/stampede.pid" stampede "stampede" 30
  # The extra instances of scripts/up --instances N.
  for pidfile in "$dir"/stampede-*.pid; do
    [[ -e $pidfile ]] || continue
    stop_pidfile "$pidfile" stampede "stampede (${pidfile##*/})" 30
    rm -f "$pidfile"
  done
}

# ---------------------------------------------------------------------------
# a whole stack for tests (scripts/test's openapi and browser stages)
# ---------------------------------------------------------------------------
# start_smtp_sink DIR PORT MAILDIR: scripts/smtp-sink (a real SMTP server,
# aiosmtpd) on 127.0.0.1:PORT in the background, writing each message it
# receives to MAILDIR; pid file DIR/smtp-sink.pid, log DIR/smtp-sink.log.
# Waits until it accepts connections (the first run installs aiosmtpd).
start_smtp_sink() {
  local dir=$1 port=$2 maildir=$3 pid i
  mkdir -p "$dir" "$maildir"
  stop_smtp_sink "$dir"
  "${REPO_ROOT}/scripts/smtp-sink" --port "$port" --dir "$maildir" >>"${dir}/smtp-sink.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"${dir}/smtp-sink.pid"
  for ((i = 0; i < 1800; i++)); do
    if ! port_free "$port"; then
      log "SMTP sink on smtp://127.0.0.1:${port}, mail in ${maildir}"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  tail_log "${dir}/smtp-sink.log"
  die "the SMTP sink did not start on port ${port}"
}

# stop_smtp_sink DIR: stop the sink start_smtp_sink started there; harmless if none.
stop_smtp_sink() {
  stop_pidfile "$1/smtp-sink.pid" smtp-sink "SMTP sink" 10
}

# The roles nginx routes to: a stack is up when these four are ready.
STAMPEDE_API_ROLES=(auth catalog reservation checkout)

# pg_fresh_db PORT NAME: drop database NAME if it exists, then create it empty.
pg_fresh_db() {
  local port=$1 name=$2
  PGOPTIONS="-c client_min_messages=warning" psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS \"${name}\" WITH (FORCE)" >/dev/null || die "cannot drop database ${name}"
  createdb -h 127.0.0.1 -p "$port" -U postgres "$name" || die "cannot create database ${name}"
}

# start_stack DIR BIN DATABASE_URL REDIS_URL: what scripts/up does once its
# Redis and PostgreSQL run — `BIN migrate`, `BIN serve all` with the first
# admin, nginx in front (rate limits on) — but on ports picked free from 18101
# (the roles) and 18080 (nginx), with the app's pid file, logs, nginx and mail
# under DIR. Mail goes over SMTP to a real local server (start_smtp_sink, on a
# port picked free from 18025) that writes it to DIR/mail, and the links in it
# point at the stack's nginx (STAMPEDE_PUBLIC_URL); STAMPEDE_STACK_MAIL=file
# keeps the file sink instead (the app writes DIR/mail itself).
# The caller's STAMPEDE_* variables reach the app; these get test
# defaults unless set: STAMPEDE_JWT_SECRET (random), STAMPEDE_REDIS_PREFIX
# (unique per stack, so a shared test Redis is fine), STAMPEDE_MIN_HOLD_SECONDS=1,
# STAMPEDE_ARGON2_MEMORY_KIB=1024, the admin admin@stampede.test /
# stampede-test-admin. Waits for STAMPEDE_API_ROLES to be ready. Writes
# DIR/ports.env (HTTP_PORT and STAMPEDE_<ROLE>_PORT, like .run/ports.env) and
# DIR/stack.env (those plus STAMPEDE_WEB_URL, STAMPEDE_MAIL_DIR and the admin's credentials) and
# sets those variables. stop_stack DIR stops it.
start_stack() {
  local dir=$1 bin=$2 db_url=$3 redis_url=$4 role var pid
  mkdir -p "${dir}/logs" "${dir}/mail"
  dir=$(cd "$dir" && pwd -P)
  [[ -x $bin ]] || die "start_stack: ${bin} is not an executable"
  stop_stack "$dir"

  local -A port=()
  local next=18101
  for role in "${STAMPEDE_ROLES[@]}"; do
    pick_port "port[$role]" "$next"
    next=$((port[$role] + 1))
  done
  pick_port HTTP_PORT 18080
  [[ $HTTP_PORT != 8080 ]] || pick_port HTTP_PORT 18081
  local smtp_url=""
  if [[ ${STAMPEDE_STACK_MAIL:-smtp} != file ]]; then
    local smtp_port
    pick_port smtp_port 18025
    start_smtp_sink "$dir" "$smtp_port" "${dir}/mail"
    smtp_url="smtp://127.0.0.1:${smtp_port}"
  fi

  STAMPEDE_ADMIN_EMAIL=${STAMPEDE_ADMIN_EMAIL:-admin@stampede.test}
  STAMPEDE_ADMIN_PASSWORD=${STAMPEDE_ADMIN_PASSWORD:-stampede-test-admin}
  local secret prefix
  secret=${STAMPEDE_JWT_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  prefix=${STAMPEDE_REDIS_PREFIX:-stack$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  local ticket_key=${STAMPEDE_TICKET_SIGNING_KEY_FILE:-${dir}/ticket-signing-key.pem}
  [[ -s $ticket_key ]] || (umask 077 && openssl genpkey -algorithm ed25519 -out "$ticket_key")
  local envs=(
    "STAMPEDE_DATABASE_URL=${db_url}" "STAMPEDE_REDIS_URL=${redis_url}"
    "STAMPEDE_JWT_SECRET=${secret}" "STAMPEDE_REDIS_PREFIX=${prefix}"
    "STAMPEDE_TICKET_SIGNING_KEY_FILE=${ticket_key}"
    "STAMPEDE_BIND_HOST=127.0.0.1"
    "STAMPEDE_ADMIN_EMAIL=${STAMPEDE_ADMIN_EMAIL}" "STAMPEDE_ADMIN_PASSWORD=${STAMPEDE_ADMIN_PASSWORD}"
    "STAMPEDE_MIN_HOLD_SECONDS=${STAMPEDE_MIN_HOLD_SECONDS:-1}"
    "STAMPEDE_ARGON2_MEMORY_KIB=${STAMPEDE_ARGON2_MEMORY_KIB:-1024}"
    "STAMPEDE_MAIL_DIR=${dir}/mail" "STAMPEDE_SMTP_URL=${smtp_url}"
    "STAMPEDE_PUBLIC_URL=http://127.0.0.1:${HTTP_PORT}" "STAMPEDE_LOG=${STAMPEDE_LOG:-info}"
  )
  for role in "${STAMPEDE_ROLES[@]}"; do
    envs+=("STAMPEDE_${role^^}_PORT=${port[$role]}")
  done

  log "stack in ${dir}: ${bin##*/} migrate"
  if ! env "${envs[@]}" "$bin" migrate >>"${dir}/logs/migrate.log" 2>&1; then
    tail_log "${dir}/logs/migrate.log"
    die "stampede migrate failed"
  fi
  log "stack: serve all (log: ${dir}/logs/stampede.log)"
  # No setsid: under job control it would fork and $! would not be the app.
  NO_COLOR=1 env "${envs[@]}" "$bin" serve all >>"${dir}/logs/stampede.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "$pid" >"${dir}/stampede.pid"
  for role in "${STAMPEDE_API_ROLES[@]}"; do
    if ! wait_http "http://127.0.0.1:${port[$role]}/readyz" "${STAMPEDE_READY_TIMEOUT:-90}" "$pid"; then
      tail_log "${dir}/logs/stampede.log" 40
      stop_app "$dir"
      die "stack: ${role} is not ready on port ${port[$role]}"
    fi
  done

  # Read by render_nginx_conf through ${!name}.
  local LISTEN="127.0.0.1:${HTTP_PORT}" RATE_LIMITS=on WEB_ROOT="${REPO_ROOT}/web"
  local AUTH_UPSTREAM="127.0.0.1:${port[auth]}" CATALOG_UPSTREAM="127.0.0.1:${port[catalog]}"
  local RESERVATION_UPSTREAM="127.0.0.1:${port[reservation]}" CHECKOUT_UPSTREAM="127.0.0.1:${port[checkout]}"
  start_nginx "${dir}/nginx"

  STAMPEDE_WEB_URL="http://${LISTEN}"
  {
    printf 'HTTP_PORT=%s\n' "$HTTP_PORT"
    for role in "${STAMPEDE_ROLES[@]}"; do
      printf 'STAMPEDE_%s_PORT=%s\n' "${role^^}" "${port[$role]}"
    done
  } >"${dir}/ports.env"
  {
    cat "${dir}/ports.env"
    printf 'STAMPEDE_WEB_URL=%s\nSTAMPEDE_ADMIN_EMAIL=%s\nSTAMPEDE_ADMIN_PASSWORD=%s\nSTAMPEDE_MAIL_DIR=%s\n' \
      "$STAMPEDE_WEB_URL" "$STAMPEDE_ADMIN_EMAIL" "$STAMPEDE_ADMIN_PASSWORD" "${dir}/mail"
  } >"${dir}/stack.env"
  for role in "${STAMPEDE_ROLES[@]}"; do
    printf -v "STAMPEDE_${role^^}_PORT" '%s' "${port[$role]}"
  done
  log "stack up: ${STAMPEDE_WEB_URL}/ ($(tr '\n' ' ' <"${dir}/ports.env"))"
}

# stack_alive DIR: the stack started in DIR still runs (app, nginx, SMTP sink).
stack_alive() {
  local dir=$1
  [[ -s ${dir}/stack.env ]] && pidfile_alive "${dir}/stampede.pid" stampede &&
    pidfile_alive "${dir}/nginx/nginx.pid" nginx &&
    { [[ ${STAMPEDE_STACK_MAIL:-smtp} == file ]] || pidfile_alive "${dir}/smtp-sink.pid" smtp-sink; }
}

# stop_stack DIR: stop the nginx and app of a stack; harmless if none.
stop_stack() {
  local dir=$1
  [[ -d $dir ]] || return 0
  stop_nginx "${dir}/nginx"
  stop_app "$dir"
  stop_smtp_sink "$dir"
  rm -f "${dir}/stack.env"
}
