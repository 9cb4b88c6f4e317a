# shellcheck shell=bash
# lib.sh: what scripts/demo.d/scenario and scripts/demo.d/vps-test share. Sourced, not run.
#
# The setting: one small VPS runs a PHP-FPM pool (php-fpm.conf, app.php) next to a Node.js
# queue worker that leaks (worker.js). These functions start the two, with or without cgrun,
# fire FastCGI requests at PHP-FPM with cgi-fcgi, and read what happened.
#
# Callers set, before sourcing: nothing. After demo_init they have:
#   DEMO_DIR   this directory (absolute)
#   REPO       the repository root
#   CGRUN      the cgrun binary ($CGRUN_BIN, else $REPO/bin/cgrun)
#   FPM        the php-fpm binary (php-fpm8.2 on bookworm)
#   DEMO_RUN   a fresh run directory (sockets, pid file, logs, events), removed by demo_cleanup

DEMO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$DEMO_DIR/../.." && pwd)
CG=/sys/fs/cgroup

# Everything this process started in the background, stopped by demo_cleanup: "pid" entries.
DEMO_PIDS=()
DEMO_PARENT_GROUP=  # a parent group we made for cgrun (see demo_placement), removed at cleanup

say() { printf '%s\n' "$*"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }  # no fork

# demo_init: find the binaries, make the run directory.
demo_init() {
  CGRUN=${CGRUN_BIN:-$REPO/bin/cgrun}
  [[ -x $CGRUN ]] || { say "no cgrun binary at $CGRUN: build it with scripts/build" >&2; return 1; }
  FPM=$(PATH=$PATH:/usr/sbin:/usr/local/sbin compgen -c php-fpm | grep -E '^php-fpm[0-9.]*$' | sort -r | head -n1 || true)
  [[ -n $FPM ]] && FPM=$(PATH=$PATH:/usr/sbin:/usr/local/sbin command -v "$FPM")
  local missing=()
  [[ -n $FPM ]] || missing+=(php-fpm)
  command -v cgi-fcgi >/dev/null || missing+=("cgi-fcgi (libfcgi-bin)")
  command -v node >/dev/null || missing+=("node (nodejs)")
  if ((${#missing[@]})); then
    say "missing: ${missing[*]}; install them with scripts/demo.d/install" >&2
    return 1
  fi
  DEMO_RUN=$(mktemp -d "${TMPDIR:-/tmp}/cgrun-demo.XXXXXX")
  # PHP-FPM's children run as www-data: they must reach app.php and nothing else of ours.
  chmod 755 "$DEMO_RUN"
  mkdir -m 755 "$DEMO_RUN/www"
  install -m 644 "$DEMO_DIR/app.php" "$DEMO_RUN/www/app.php"
  export DEMO_RUN  # php-fpm.conf reads ${DEMO_RUN}
}

# cgroup2_usable: is cgroup v2 mounted on /sys/fs/cgroup with the memory controller available
# to our own group? Only reads.
cgroup2_usable() {
  [[ $(stat -fc %T $CG 2>/dev/null) == cgroup2fs ]] || return 1
  local own
  own=$(sed -n 's/^0:://p' /proc/self/cgroup)
  [[ -n $own ]] && grep -qw memory "$CG${own%/}/cgroup.controllers" 2>/dev/null
}

# demo_placement: where cgrun's groups go. cgrun finds a place itself in the guest (our group
# is the root group), in a container's root group, and under systemd (it asks systemd for a
# delegated scope when our group is not delegated). Anywhere else our group holds other
# processes (this shell), which cgroup v2's "no internal processes" rule forbids cgrun to nest
# in: make a parent group for this run and point cgrun at it with CGRUN_PARENT (= --parent).
# demo_cleanup removes it again.
demo_placement() {
  local own
  own=$(sed -n 's/^0:://p' /proc/self/cgroup)
  [[ $own == / || -d /run/systemd/system ]] && return 0
  DEMO_PARENT_GROUP=$CG/cgrun-demo-$$
  grep -qw memory $CG/cgroup.subtree_control || echo "+memory +pids" >$CG/cgroup.subtree_control
  mkdir "$DEMO_PARENT_GROUP"
  export CGRUN_PARENT=$DEMO_PARENT_GROUP
  say "(our group $own holds other processes: cgrun's groups go under $DEMO_PARENT_GROUP)"
}

# cgroup_dirs: every group directory, sorted (for "nothing left behind" checks).
cgroup_dirs() { find $CG -mindepth 1 -type d 2>/dev/null | sort; }

# track PID: stop PID in demo_cleanup.
track() { DEMO_PIDS+=("$1"); }

# stop_pid PID [SECONDS]: SIGTERM, wait up to SECONDS (default 15), then SIGKILL. Returns the
# process's exit status when it is our child (else 0).
stop_pid() {
  local pid=$1 secs=${2:-15} i rc=0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || rc=$?; return $rc; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    # a zombie child counts as gone
    [[ $(ps -o stat= -p "$pid" 2>/dev/null) == Z* ]] && break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]; then
    say "  (pid $pid ignored SIGTERM for ${secs}s: SIGKILL)" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || rc=$?
  return $rc
}

# demo_cleanup: stop whatever we started (newest first), remove the run directory and a parent
# group we made. Safe to call twice.
demo_cleanup() {
  local i
  for ((i = ${#DEMO_PIDS[@]} - 1; i >= 0; i--)); do
    stop_pid "${DEMO_PIDS[i]}" 15 >/dev/null 2>&1 || true
  done
  DEMO_PIDS=()
  if [[ -n $DEMO_PARENT_GROUP && -d $DEMO_PARENT_GROUP ]]; then
    rmdir "$DEMO_PARENT_GROUP" 2>/dev/null || say "warning: could not remove $DEMO_PARENT_GROUP" >&2
  fi
  [[ -n ${DEMO_RUN:-} && -d $DEMO_RUN && ${DEMO_KEEP_RUN:-0} != 1 ]] && rm -rf "$DEMO_RUN"
  return 0
}

# wait_for_fpm SECONDS: until PHP-FPM's socket and pid file are there. Prints the master's pid.
wait_for_fpm() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    if [[ -S $DEMO_RUN/php-fpm.sock && -s $DEMO_RUN/php-fpm.pid ]]; then
      cat "$DEMO_RUN/php-fpm.pid"
      return 0
    fi
    sleep 0.1
  done
  say "PHP-FPM did not come up in $1 s; its log:" >&2
  tail -n 20 "$DEMO_RUN/php-fpm.log" >&2 2>/dev/null || true
  return 1
}

# fpm_master_pid: the master's pid now, from its pid file (empty when it is gone).
fpm_master_pid() {
  local pid
  pid=$(cat "$DEMO_RUN/php-fpm.pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

# fpm_children MASTER: the pool's children, space-separated, sorted.
fpm_children() {
  [[ ${1:-0} != 0 ]] || return 0  # no master: no children (pgrep -P 0 would list the kernel's)
  pgrep -P "$1" 2>/dev/null | sort -n | xargs echo
}

# request: one FastCGI GET of app.php; prints the body's last line. Times out after 10 s.
request() {
  SCRIPT_FILENAME=$DEMO_RUN/www/app.php SCRIPT_NAME=/app.php REQUEST_METHOD=GET QUERY_STRING='' \
    timeout 10 cgi-fcgi -bind -connect "$DEMO_RUN/php-fpm.sock" 2>&1 | tail -n 1
}

# load OUT SECONDS MAX: fire requests one after another (0.1 s apart) for SECONDS, at most MAX
# of them, or until the file $OUT.stop appears. One line per request in OUT:
#   MS_SINCE_START LATENCY_MS ok|fail WHAT
load() {
  local out=$1 secs=$2 max=$3 n=0 t0 t1 t2 body
  t0=$(now_ms)
  : >"$out"
  while ((n < max)) && [[ ! -e $out.stop ]]; do
    t1=$(now_ms)
    ((t1 - t0 < secs * 1000)) || break
    body=$(request) || true
    t2=$(now_ms)
    if [[ $body == "ok pid="* ]]; then
      echo "$((t1 - t0)) $((t2 - t1)) ok ${body#ok }" >>"$out"
    else
      echo "$((t1 - t0)) $((t2 - t1)) fail ${body:-no answer (timeout)}" >>"$out"
    fi
    n=$((n + 1))
    sleep 0.1
  done
}

# load_stats OUT: "ok=N fail=N avg_ms=N max_ms=N p95_ms=N" for a load file.
load_stats() {
  local ok fail
  ok=$(grep -c ' ok ' "$1" || true)
  fail=$(grep -c ' fail ' "$1" || true)
  printf 'ok=%d fail=%d ' "$ok" "$fail"
  # mawk (Debian's awk) has no asort: sort the latencies first
  cut -d' ' -f2 "$1" | sort -n | awk '{ lat[NR] = $1; sum += $1 }
       END { n = NR; if (n == 0) { print "avg_ms=0 max_ms=0 p95_ms=0"; exit }
             i = int(n * 0.95); if (i < 1) i = 1
             printf "avg_ms=%d max_ms=%d p95_ms=%d\n", sum / n, lat[n], lat[i] }'
}

# events FILE MODE: read a cgrun --events file (see events.js).
events() { node "$DEMO_DIR/events.js" "$2" "$1"; }

# kmsg_mark / kmsg_since MARK: the kernel log lines stamped after a mark. The mark is the
# uptime (the clock of dmesg's [seconds] stamps), not a line count: OOM reports are long and the
# ring buffer wraps. The log is never cleared.
kmsg_mark() { cut -d' ' -f1 /proc/uptime; }
kmsg_since() {
  dmesg 2>/dev/null | awk -v m="$1" '{ t = $0; sub(/^\[ */, "", t); sub(/\].*/, "", t); if (t + 0 > m + 0) print }'
}

# human BYTES: 64.0M
human() { numfmt --to=iec --round=nearest --format='%.1f' "${1:-0}" 2>/dev/null || echo "${1:-0}"; }
