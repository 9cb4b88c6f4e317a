#!/bin/bash
# Real-systemd tests of cgrun: run by scripts/test inside scripts/uml-systemd (systemd as PID 1 in
# a UML guest, the repository at its host path). Needs bin/cgrun and the cmd/cgrun test binary
# (bin/test/cmd_cgrun.test, whose helpers serve as payloads) built beforehand.
#
# Each test prints "--- PASS: NAME" or "--- FAIL: NAME" and the reason; the script exits non-zero
# when any failed.
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
cg=$repo/bin/cgrun
helper=$repo/bin/test/cmd_cgrun.test
export CGRUNTEST_HELPER=1
passed=0 failed=0
echo "systemd: guest kernel $(uname -r)"

# integration.sh REGEX runs only the tests whose names match; so does CGRUN_TEST_RUN (a regex)
only=${1:-${CGRUN_TEST_RUN:-.}}

run_test() { # NAME FUNCTION
  local out rc
  [[ $1 =~ $only ]] || return 0
  out=$("$2" 2>&1)
  rc=$?
  if ((rc == 0)); then
    echo "--- PASS: $1"
    passed=$((passed + 1))
  else
    echo "--- FAIL: $1"
    sed 's/^/    /' <<<"$out"
    failed=$((failed + 1))
  fi
}

fail() { echo "$*"; return 1; }

# wait_for SECONDS COMMAND...: retry COMMAND every 0.1 s until it succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# nothing_left PATTERN: no process whose command line matches, no group named like it.
nothing_left() {
  local procs groups
  procs=$(pgrep -af -- "$1" | grep -v pgrep)
  groups=$(find /sys/fs/cgroup -type d -name "*$2*" 2>/dev/null)
  [[ -z $procs ]] || fail "processes left behind: $procs"
  [[ -z $groups ]] || fail "groups left behind: $groups"
}

unit() { # NAME: write /run/systemd/system/NAME.service from stdin and reload
  cat >"/run/systemd/system/$1.service"
  systemctl daemon-reload
}

test_delegated_unit_recycles_on_oom() {
  rm -f /run/worker.jsonl
  unit cgrun-worker <<EOF
[Service]
Delegate=yes
Environment=CGRUNTEST_HELPER=1
ExecStart=$cg run --name worker --memory-max 32M --restart on-oom --thrash off --max-restarts 0 --restart-delay 100ms --events /run/worker.jsonl -- $helper leak
EOF
  systemctl start cgrun-worker || fail "systemctl start failed"
  local deadline=$((SECONDS + 90)) n=0 state
  while ((n < 3)); do
    state=$(systemctl is-active cgrun-worker)
    [[ $state == active ]] || fail "the unit went $state while its worker was recycled" || return 1
    n=$(grep -c '"event":"recycle"' /run/worker.jsonl 2>/dev/null)
    ((SECONDS < deadline)) || fail "only $n recycles in 90 s" || return 1
    sleep 0.1
  done
  local reasons
  reasons=$(grep '"event":"recycle"' /run/worker.jsonl | grep -o '"reason":"[a-z_]*"' | sort -u)
  [[ $reasons == '"reason":"oom_kill"' ]] || fail "recycle reasons: $reasons" || return 1
  local cgdir=/sys/fs/cgroup/system.slice/cgrun-worker.service
  ls "$cgdir" | grep -q '^cgrun-[0-9]*$' || fail "no cgrun leaf in the unit's group: $(ls "$cgdir")" || return 1
  ls "$cgdir" | grep -q '^worker-[0-9]*\.[0-9]*$' || fail "no generation group in the unit's group: $(ls "$cgdir")" || return 1
  systemctl stop cgrun-worker
  state=$(systemctl is-active cgrun-worker)
  [[ $state == inactive ]] || fail "after stop the unit is $state, want inactive (a clean stop): $(systemctl status cgrun-worker --no-pager)" || return 1
  nothing_left "cmd_cgrun.test leak" cgrun-worker
}

test_scope_as_root() {
  # The test runs in /system.slice/cgrun-test.service, which systemd did not delegate: cgrun
  # must ask for a scope of its own instead of writing there.
  local out desc
  out=$("$cg" run --name rootbox --memory-max 48M -- "$helper" report) || fail "cgrun failed: $out" || return 1
  [[ $out == *'"group":"/system.slice/cgrun-rootbox-'*'.scope/rootbox-'* ]] || fail "helper ran in: $out" || return 1
  [[ $out == *'"memory.max":"50331648"'* ]] || fail "limits: $out" || return 1
  [[ $(ls /sys/fs/cgroup/system.slice/cgrun-test.service) != *cgrun-* ]] || fail "cgrun wrote in the test unit's own group" || return 1
  # While one runs, systemctl shows what runs in the scope.
  "$cg" run --name showbox -- "$helper" sleep 30 &
  local pid=$!
  wait_for 10 sh -c "systemctl list-units --type=scope --no-legend | grep -q cgrun-showbox" || fail "no scope listed" || return 1
  desc=$(systemctl show -p Description --value "$(systemctl list-units --type=scope --no-legend | grep -o 'cgrun-showbox-[0-9]*\.scope')")
  [[ $desc == "cgrun: $helper sleep 30" ]] || fail "scope description: $desc" || return 1
  kill -TERM "$pid"
  wait "$pid"
  wait_for 5 sh -c "! systemctl list-units --type=scope --all --no-legend | grep -q cgrun-" || fail "scopes left: $(systemctl list-units --type=scope --all --no-legend | grep cgrun-)" || return 1
  nothing_left "cmd_cgrun.test sleep 30" cgrun-showbox
}

test_scope_description_is_utf8() {
  # D-Bus takes only valid UTF-8: a command line with invalid bytes, or one cut in the middle of
  # a character (the description holds 200 bytes of it), must still get its scope.
  # "/bin/echo " is 10 bytes, so each two-byte é starts at an even byte: a cut after byte 199
  # (what cgrun did before) keeps the first byte of the 95th é alone.
  local long out
  long=$(printf 'é%.0s' {1..150})
  out=$("$cg" run --name utf8box -- /bin/echo $'\xff\xfe' "$long" 2>&1) || fail "cgrun failed: $out" || return 1
  out=$("$cg" run --name utf8box -- /bin/echo "$long" 2>&1) || fail "cgrun failed: $out" || return 1
  nothing_left "utf8box" utf8box
}

test_scope_as_user() {
  loginctl enable-linger cgrunuser && systemctl start user@1000.service || fail "no user manager" || return 1
  local out
  out=$(systemd-run -M cgrunuser@ --user --wait --pipe --quiet -E CGRUNTEST_HELPER=1 -- \
    "$cg" run --name userbox --memory-max 40M -- "$helper" report 2>&1) || fail "cgrun as cgrunuser failed: $out" || return 1
  [[ $out == *'"group":"/user.slice/user-1000.slice/user@1000.service/'*'cgrun-userbox-'*'.scope/userbox-'* ]] || fail "helper ran in: $out" || return 1
  [[ $out == *'"memory.max":"41943040"'* ]] || fail "limits: $out" || return 1
  nothing_left "cmd_cgrun.test report" cgrun-userbox
}

test_supervisord_stop_leaves_nothing() {
  local d=/tmp/sv
  rm -rf "$d" && mkdir -p "$d"
  cat >"$d/supervisord.conf" <<EOF
[unix_http_server]
file=$d/supervisor.sock
[supervisord]
logfile=$d/supervisord.log
pidfile=$d/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$d/supervisor.sock
[program:worker]
command=$cg run --name svworker --memory-max 32M -- $helper sleep 300
environment=CGRUNTEST_HELPER="1"
stopwaitsecs=15
EOF
  supervisord -c "$d/supervisord.conf" || fail "supervisord did not start" || return 1
  wait_for 20 sh -c "supervisorctl -c $d/supervisord.conf status worker | grep -q RUNNING" || fail "worker not RUNNING: $(supervisorctl -c $d/supervisord.conf status)" || return 1
  wait_for 10 pgrep -f "^$helper sleep 300" || fail "no payload" || return 1
  local grp
  grp=$(grep -o '0::.*' "/proc/$(pgrep -f "^$helper sleep 300")/cgroup")
  [[ $grp == *cgrun-svworker-*.scope/svworker-* ]] || { supervisorctl -c "$d/supervisord.conf" shutdown; fail "payload in $grp"; } || return 1
  supervisorctl -c "$d/supervisord.conf" stop worker >/dev/null
  nothing_left "cmd_cgrun.test sleep 300" cgrun-svworker || { supervisorctl -c "$d/supervisord.conf" shutdown; return 1; }
  supervisorctl -c "$d/supervisord.conf" shutdown >/dev/null
}

test_supervisord_kill_timeout_leaves_no_orphan() {
  # Issue 14: a worker that ignores SIGTERM outlasts supervisord's stopwaitsecs, so supervisord
  # SIGKILLs cgrun. cgrun's guard must take the worker along, so that the next start does not
  # run a second worker beside an orphan.
  local d=/tmp/svk
  rm -rf "$d" && mkdir -p "$d"
  cat >"$d/supervisord.conf" <<EOF
[unix_http_server]
file=$d/supervisor.sock
[supervisord]
logfile=$d/supervisord.log
pidfile=$d/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$d/supervisor.sock
[program:worker]
command=$cg run --name svkill --stop-timeout 60 -- /bin/sh -c 'trap "" TERM; exec sleep 301'
stopwaitsecs=1
EOF
  supervisord -c "$d/supervisord.conf" || fail "supervisord did not start" || return 1
  local sv=(supervisorctl -c "$d/supervisord.conf") round
  for round in 1 2; do
    wait_for 20 sh -c "supervisorctl -c $d/supervisord.conf status worker | grep -q RUNNING" || { "${sv[@]}" shutdown; fail "worker not RUNNING"; } || return 1
    wait_for 10 pgrep -x -f "sleep 301" || { "${sv[@]}" shutdown; fail "no payload"; } || return 1
    (($(pgrep -c -x -f "sleep 301") == 1)) || { "${sv[@]}" shutdown; fail "round $round: $(pgrep -c -x -f "sleep 301") workers run"; } || return 1
    "${sv[@]}" stop worker >/dev/null
    grep -q 'terminated by SIGKILL' "$d/supervisord.log" || { "${sv[@]}" shutdown; fail "supervisord did not SIGKILL cgrun: $(tail -3 "$d/supervisord.log")"; } || return 1
    wait_for 3 sh -c '! pgrep -x -f "sleep 301"' || { "${sv[@]}" shutdown; fail "round $round: the worker outlived its SIGKILLed cgrun"; } || return 1
    if ((round == 1)); then "${sv[@]}" start worker >/dev/null; fi
  done
  "${sv[@]}" shutdown >/dev/null
  wait_for 5 nothing_left "sleep 301" cgrun-svkill || nothing_left "sleep 301" cgrun-svkill
}

test_supervisord_runs_as_user() {
  # The recommended shape: supervisord (root) runs cgrun without user=, and cgrun runs the
  # program as www-data with --user, keeping the group root's.
  local d=/tmp/svu
  rm -rf "$d" && mkdir -p "$d" && chmod 1777 "$d"
  cat >"$d/supervisord.conf" <<EOF
[unix_http_server]
file=$d/supervisor.sock
[supervisord]
logfile=$d/supervisord.log
pidfile=$d/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$d/supervisor.sock
[program:app]
command=$cg run --user www-data --name svuser --memory-max 32M -- /bin/sh -c 'id -u >$d/uid; id -G >$d/groups; echo \$HOME >$d/home; touch $d/made; exec sleep 301'
stopwaitsecs=15
EOF
  local sv="supervisorctl -c $d/supervisord.conf"
  supervisord -c "$d/supervisord.conf" || fail "supervisord did not start" || return 1
  local rc=0
  supervised_as_user "$d" "$sv" || rc=1
  $sv shutdown >/dev/null
  return $rc
}

supervised_as_user() { # DIR SUPERVISORCTL: the checks of test_supervisord_runs_as_user
  local d=$1 sv=$2 pid grp ps
  wait_for 20 sh -c "$sv status app | grep -q RUNNING" || fail "app not RUNNING: $($sv status)" || return 1
  wait_for 10 pgrep -u www-data -x sleep || fail "no payload running as www-data: $(ps -eo user,pid,args | grep 'sleep 301')" || return 1
  pid=$(pgrep -u www-data -x sleep)
  wait_for 5 test -s "$d/home" || fail "the program wrote nothing in $d" || return 1
  [[ $(<"$d/uid") == 33 && $(<"$d/groups") == "$(id -G www-data)" && $(<"$d/home") == /var/www ]] ||
    fail "the program ran as uid $(<"$d/uid"), groups $(<"$d/groups"), HOME $(<"$d/home"); want 33, $(id -G www-data), /var/www" || return 1
  [[ $(stat -c %U "$d/made") == www-data ]] || fail "its file is owned by $(stat -c %U "$d/made")" || return 1
  grp=$(grep -o '0::.*' "/proc/$pid/cgroup")
  grp=/sys/fs/cgroup${grp#0::}
  [[ $grp == *cgrun-svuser-*.scope/svuser-*/main ]] || fail "payload in $grp" || return 1
  [[ $(stat -c %U "${grp%/main}" "${grp%/main}/memory.max" "$grp/cgroup.procs" | sort -u) == root ]] ||
    fail "the group is not root's: $(stat -c '%U %n' "${grp%/main}" "${grp%/main}/memory.max" "$grp/cgroup.procs")" || return 1
  [[ $(grep NoNewPrivs "/proc/$pid/status") == *1 ]] || fail "no no_new_privs: $(grep NoNewPrivs "/proc/$pid/status")" || return 1
  ps=$(runuser -u www-data -- "$cg" ps 2>&1) || fail "cgrun ps as www-data failed: $ps" || return 1
  [[ $ps == *svuser* ]] || fail "cgrun ps as www-data does not show svuser: $ps" || return 1
  $sv stop app >/dev/null
  nothing_left "^sleep 301" cgrun-svuser
}

test_pm2_stop_leaves_nothing() {
  export PM2_HOME=/tmp/pm2
  rm -rf "$PM2_HOME"
  pm2 ping >/dev/null 2>&1 || fail "pm2 does not start" || return 1
  pm2 start "$cg" --name pm2worker --interpreter none -- run --name pm2worker --memory-max 32M -- "$helper" sleep 300 >/dev/null 2>&1 ||
    fail "pm2 start failed" || return 1
  wait_for 20 pgrep -f "^$helper sleep 300" || fail "no payload: $(pm2 jlist)" || return 1
  local grp
  grp=$(grep -o '0::.*' "/proc/$(pgrep -f "^$helper sleep 300")/cgroup")
  [[ $grp == *cgrun-pm2worker-*.scope/pm2worker-* ]] || { pm2 kill >/dev/null 2>&1; fail "payload in $grp"; } || return 1
  pm2 stop pm2worker >/dev/null 2>&1
  local rc=0
  wait_for 10 nothing_left "cmd_cgrun.test sleep 300" cgrun-pm2worker || { nothing_left "cmd_cgrun.test sleep 300" cgrun-pm2worker; rc=1; }
  pm2 kill >/dev/null 2>&1
  return $rc
}

# PM2 hands each app its IPC channel as fd 3 (NODE_CHANNEL_FD=3): through cgrun without --user
# the app has process.send (PM2's wait_ready works); with --user it is root's fd and does not
# cross, and node starts without a channel rather than failing on one (docs/security.md).
test_pm2_ipc_channel() {
  export PM2_HOME=/tmp/pm2
  rm -rf "$PM2_HOME"
  local app=/tmp/pm2ipc.js n
  echo "console.log('ipc=' + typeof process.send + ' uid=' + process.getuid()); setInterval(() => {}, 1000);" >"$app"
  chmod 644 "$app"
  pm2 ping >/dev/null 2>&1 || fail "pm2 does not start" || return 1
  for n in ipcplain ipcuser; do
    local user=()
    [[ $n == ipcuser ]] && user=(--user www-data)
    pm2 start "$cg" --name $n --interpreter none -- run --name $n "${user[@]}" -- node "$app" >/dev/null 2>&1 ||
      { pm2 kill >/dev/null 2>&1; fail "pm2 start $n failed"; } || return 1
  done
  local rc=0 out
  for want in "ipcplain ipc=function uid=0" "ipcuser ipc=undefined uid=33"; do
    n=${want%% *}
    wait_for 20 grep -q ipc= "$PM2_HOME/logs/$n-out.log"
    out=$(cat "$PM2_HOME/logs/$n-out.log" "$PM2_HOME/logs/$n-error.log" 2>/dev/null)
    [[ $out == *"${want#* }"* ]] || { fail "$n: want ${want#* }, got: $out"; rc=1; }
  done
  pm2 kill >/dev/null 2>&1
  wait_for 10 nothing_left "node $app" cgrun-ipc || { nothing_left "node $app" cgrun-ipc; rc=1; }
  rm -f "$app"
  return $rc
}

test_delegate_subgroup() {
  # What DelegateSubgroup=supervisor (systemd 254; this guest has 252) does: the unit's group is
  # delegated, and the main process starts in its leaf "supervisor". cgrun must use the unit's
  # group for its generations and leave its own leaf alone.
  cat >/run/subgroup-start.sh <<EOF
#!/bin/sh
unit=/sys/fs/cgroup/system.slice/cgrun-subgroup.service
mkdir \$unit/supervisor && echo 0 > \$unit/supervisor/cgroup.procs || exit 99
exec $cg run --name sub --memory-max 40M -- $helper sleep 300
EOF
  chmod +x /run/subgroup-start.sh
  unit cgrun-subgroup <<EOF
[Service]
Delegate=yes
Environment=CGRUNTEST_HELPER=1
ExecStart=/run/subgroup-start.sh
EOF
  systemctl start cgrun-subgroup || fail "start failed" || return 1
  wait_for 10 pgrep -f "^$helper sleep 300" || fail "no payload: $(systemctl status cgrun-subgroup --no-pager)" || return 1
  local grp kids
  grp=$(grep -o '0::.*' "/proc/$(pgrep -f "^$helper sleep 300")/cgroup")
  [[ $grp == 0::/system.slice/cgrun-subgroup.service/sub-*.1/main ]] || fail "payload in $grp" || return 1
  kids=$(ls /sys/fs/cgroup/system.slice/cgrun-subgroup.service/supervisor | grep -c '^cgrun-')
  ((kids == 0)) || fail "cgrun nested inside its DelegateSubgroup leaf" || return 1
  systemctl stop cgrun-subgroup
  [[ $(systemctl is-active cgrun-subgroup) == inactive ]] || fail "after stop: $(systemctl is-active cgrun-subgroup)" || return 1
  nothing_left "^$helper sleep 300" cgrun-subgroup
}

test_notify_ready() {
  unit cgrun-notify <<EOF
[Service]
Type=notify
Delegate=yes
Environment=CGRUNTEST_HELPER=1
TimeoutStartSec=20
ExecStart=$cg run --notify-ready --name nt -- $helper sleep 300
EOF
  systemctl start cgrun-notify || fail "start failed: $(systemctl status cgrun-notify --no-pager)" || return 1
  [[ $(systemctl is-active cgrun-notify) == active ]] || fail "not active" || return 1
  local status
  status=$(systemctl show -p StatusText --value cgrun-notify)
  [[ $status == "generation 1 running as pid "* ]] || fail "StatusText: $status" || return 1
  systemctl stop cgrun-notify
  [[ $(systemctl is-active cgrun-notify) == inactive ]] || fail "after stop: $(systemctl is-active cgrun-notify)" || return 1
  nothing_left "cmd_cgrun.test sleep 300" "nt-"
}

test_notify_passthrough() {
  # Without --notify-ready the app speaks sd_notify itself; NotifyAccess=all lets systemd hear
  # a process that is not the unit's main one.
  unit cgrun-notify2 <<EOF
[Service]
Type=notify
NotifyAccess=all
Delegate=yes
TimeoutStartSec=20
ExecStart=$cg run --name np -- /bin/sh -c 'systemd-notify --ready --status=app-ready; exec sleep 300'
EOF
  systemctl start cgrun-notify2 || fail "start failed: $(systemctl status cgrun-notify2 --no-pager)" || return 1
  [[ $(systemctl show -p StatusText --value cgrun-notify2) == app-ready ]] || fail "StatusText: $(systemctl show -p StatusText --value cgrun-notify2)" || return 1
  systemctl stop cgrun-notify2
  [[ $(systemctl is-active cgrun-notify2) == inactive ]] || fail "after stop: $(systemctl is-active cgrun-notify2)"
}

test_scope_gone_after_failure_and_bad_input() {
  # A command that fails or is killed ends its scope (CollectMode=inactive-or-failed: a failed
  # scope is collected too), and bad input (exit 125, 127 for a missing command) asks for none.
  local out rc
  out=$("$cg" run --name failbox --memory-max 48M -- sh -c 'exit 3' 2>&1)
  rc=$?
  ((rc == 3)) || fail "a command exiting 3: cgrun exited $rc: $out" || return 1
  out=$("$cg" run --name killbox -- sh -c 'kill -KILL $$' 2>&1)
  rc=$?
  ((rc == 137)) || fail "a command killed by SIGKILL: cgrun exited $rc: $out" || return 1
  out=$("$cg" run --name badbox --memory-max bogus -- /bin/true 2>&1)
  rc=$?
  ((rc == 125)) || fail "bad --memory-max: cgrun exited $rc: $out" || return 1
  out=$("$cg" run --name badbox -- /nonexistent/cmd 2>&1)
  rc=$?
  ((rc == 127)) || fail "missing command: cgrun exited $rc: $out" || return 1
  wait_for 5 sh -c "! systemctl list-units --type=scope --all --no-legend | grep -qE 'cgrun-(failbox|killbox|badbox)'" || fail "scopes left: $(systemctl list-units --type=scope --all --no-legend | grep cgrun-)" || return 1
  [[ -z $(systemctl list-units --type=scope --state=failed --no-legend | grep cgrun-) ]] || fail "failed scopes: $(systemctl list-units --type=scope --state=failed --no-legend)" || return 1
  nothing_left "failbox" failbox && nothing_left "killbox" killbox && nothing_left "badbox" badbox
}

test_scope_over_the_private_socket() {
  # As root cgrun asks for its scope over systemd's private socket, as systemd-run does: one
  # connection, no dbus-daemon. With the bus stopped, the scope must still come (the bus's way
  # would fail to connect). The bus is started again afterwards; this test runs last.
  local out
  systemctl stop dbus.socket dbus.service || fail "could not stop the bus" || return 1
  out=$("$cg" run --name privbox --memory-max 48M -- "$helper" report 2>&1)
  local rc=$?
  systemctl start dbus.socket dbus.service
  ((rc == 0)) || fail "cgrun failed without dbus-daemon: $out" || return 1
  [[ $out == *'"group":"/system.slice/cgrun-privbox-'*'.scope/privbox-'* ]] || fail "helper ran in: $out" || return 1
  wait_for 5 sh -c "! systemctl list-units --type=scope --all --no-legend | grep -q cgrun-privbox" || fail "scope left: $(systemctl list-units --type=scope --all --no-legend | grep cgrun-)" || return 1
  nothing_left "cmd_cgrun.test report" cgrun-privbox
}

[[ -x $cg && -x $helper ]] || { echo "build bin/cgrun and bin/test/cmd_cgrun.test first (scripts/test does)"; exit 1; }
systemctl is-system-running --wait >/dev/null 2>&1
# The examples as a user pastes them: scripts/examples/ with only /usr/bin/cgrun changed to the
# cgrun under test (the package test checks that the packaged ones name /usr/bin/cgrun), on this
# stock Debian root (supervisor, nodejs and pm2 installed; no php-fpm, no user www).
example_app() { # FILE: a Node worker that only waits, where the examples look for the app
  mkdir -p "$(dirname "$1")" && echo 'setInterval(() => {}, 1000); console.log("worker up")' >"$1"
}

test_example_supervisord() {
  local d=/tmp/sv-example sv
  rm -rf "$d" && mkdir -p "$d/conf.d" /var/log/supervisor && example_app /srv/app/worker.js
  rm -f /var/log/supervisor/worker.log /var/log/supervisor/php-fpm.log
  sed "s|/usr/bin/cgrun|$cg|" "$repo/scripts/examples/supervisord-vps.conf" >"$d/conf.d/vps.conf"
  cat >"$d/supervisord.conf" <<EOF
[unix_http_server]
file=$d/supervisor.sock
[supervisord]
logfile=$d/supervisord.log
pidfile=$d/supervisord.pid
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://$d/supervisor.sock
[include]
files=$d/conf.d/*.conf
EOF
  sv="supervisorctl -c $d/supervisord.conf"
  supervisord -c "$d/supervisord.conf" || fail "supervisord did not start" || return 1
  example_supervisord_checks "$d" "$sv"
  local rc=$?
  $sv shutdown >/dev/null
  wait_for 20 nothing_left "/srv/app/worker.js" cgrun-worker || { nothing_left "/srv/app/worker.js" cgrun-worker; rc=1; }
  rm -rf /srv/app "$d"
  return $rc
}

example_supervisord_checks() { # DIR SUPERVISORCTL
  local d=$1 sv=$2 pid grp
  # The worker runs as www-data, in a group of a scope cgrun asked systemd for.
  wait_for 20 sh -c "$sv status worker | grep -q RUNNING" || fail "worker not RUNNING: $($sv status); $($sv tail worker)" || return 1
  wait_for 10 pgrep -u www-data -f "^/usr/bin/node /srv/app/worker.js" || fail "no node as www-data: $(ps -eo user,pid,args | grep worker.js)" || return 1
  pid=$(pgrep -u www-data -f "^/usr/bin/node /srv/app/worker.js")
  grp=$(grep -o '0::.*' "/proc/$pid/cgroup")
  [[ $grp == *cgrun-worker-*.scope/worker-*.1/main ]] || fail "node in $grp" || return 1
  # php-fpm is not installed here: FATAL, and supervisorctl tail says why (cgrun's line).
  if [[ ! -x /usr/sbin/php-fpm8.2 ]]; then
    wait_for 30 sh -c "$sv status php-fpm | grep -q FATAL" || fail "php-fpm not FATAL: $($sv status php-fpm)" || return 1
    $sv tail php-fpm | grep -q "^cgrun: /usr/sbin/php-fpm8.2: command not found" ||
      fail "supervisorctl tail php-fpm does not say why: $($sv tail php-fpm)" || return 1
  fi
  # The same file with aaPanel's --user www, which stock Debian lacks: FATAL, and the reason in
  # supervisorctl tail, with the fix.
  sed -i 's/--user www-data /--user www /' "$d/conf.d/vps.conf"
  $sv update >/dev/null
  wait_for 30 sh -c "$sv status worker | grep -q FATAL" || fail "worker with --user www not FATAL: $($sv status worker)" || return 1
  $sv tail worker | grep -q 'cgrun: --user "www": no user "www" in /etc/passwd; create it (useradd --system --no-create-home www)' ||
    fail "supervisorctl tail worker does not say why: $($sv tail worker)" || return 1
}

test_example_pm2() {
  export PM2_HOME=/tmp/pm2-example
  local d=/tmp/pm2-example-app rc=0 pid grp
  rm -rf "$PM2_HOME" "$d" && mkdir -p "$d" && example_app /srv/app/worker.js
  sed "s|/usr/bin/cgrun|$cg|" "$repo/scripts/examples/ecosystem.config.js" >"$d/ecosystem.config.js"
  pm2 start "$d/ecosystem.config.js" >/dev/null 2>&1 || fail "pm2 start failed" || return 1
  if wait_for 20 pgrep -u www-data -f "^/usr/bin/node /srv/app/worker.js"; then
    pid=$(pgrep -u www-data -f "^/usr/bin/node /srv/app/worker.js")
    grp=$(grep -o '0::.*' "/proc/$pid/cgroup")
    [[ $grp == *cgrun-worker-*.scope/worker-*.1/main ]] || { fail "node in $grp"; rc=1; }
  else
    fail "no node as www-data: $(pm2 jlist 2>&1 | head -c 2000)"
    rc=1
  fi
  pm2 delete worker >/dev/null 2>&1
  wait_for 20 nothing_left "/srv/app/worker.js" cgrun-worker || { nothing_left "/srv/app/worker.js" cgrun-worker; rc=1; }
  # With aaPanel's --user www, absent here: `pm2 logs worker`, as the file says, shows cgrun's
  # reason. (With instances: 1 PM2 names the log file by the app's id, worker-error-1.log now.)
  sed -i "s/'--user', 'www-data'/'--user', 'www'/" "$d/ecosystem.config.js"
  pm2 start "$d/ecosystem.config.js" >/dev/null 2>&1
  pm2_err_log() { pm2 logs worker --err --nostream --lines 50 2>&1; }
  pm2_err_log_says_why() { [[ $(pm2_err_log) == *'no user "www" in /etc/passwd'* ]]; }
  wait_for 20 pm2_err_log_says_why ||
    { fail "pm2 logs worker does not say why: $(pm2_err_log | tail -5)"; rc=1; }
  pm2 kill >/dev/null 2>&1
  rm -rf /srv/app "$d" "$PM2_HOME"
  return $rc
}

test_example_aapanel() {
  # aaPanel's installer makes the user www; the start command runs as root (the project's run
  # user set to root, as the file says), here as a service of its own.
  local d=/tmp/aapanel-example rc=0 made=0 pid
  id www >/dev/null 2>&1 || { useradd --system --no-create-home --shell /usr/sbin/nologin www && made=1; }
  rm -rf "$d" && mkdir -p "$d" && example_app /www/wwwroot/myapp/app.js
  sed "s|/usr/bin/cgrun|$cg|" "$repo/scripts/examples/aapanel-node-project.sh" >"$d/start.sh" && chmod 755 "$d/start.sh"
  systemd-run --quiet --unit aapanel-myapp --collect "$d/start.sh" || { fail "systemd-run failed"; rc=1; }
  if ((rc == 0)) && wait_for 20 pgrep -u www -f "^/usr/bin/node /www/wwwroot/myapp/app.js"; then
    pid=$(pgrep -u www -f "^/usr/bin/node /www/wwwroot/myapp/app.js")
    [[ $(grep -o '0::.*' "/proc/$pid/cgroup") == *cgrun-myapp-*.scope/myapp-*.1/main ]] || { fail "node in $(grep -o '0::.*' "/proc/$pid/cgroup")"; rc=1; }
  elif ((rc == 0)); then
    fail "no node as www: $(journalctl -u aapanel-myapp --no-pager | tail -5)"
    rc=1
  fi
  systemctl stop aapanel-myapp 2>/dev/null
  wait_for 20 nothing_left "/www/wwwroot/myapp/app.js" cgrun-myapp || { nothing_left "/www/wwwroot/myapp/app.js" cgrun-myapp; rc=1; }
  ((made)) && userdel www
  rm -rf /www "$d"
  return $rc
}

run_test "SystemdDelegatedUnitRecyclesOnOOMAndStaysActive" test_delegated_unit_recycles_on_oom
run_test "SystemdScopeAsRoot" test_scope_as_root
run_test "SystemdScopeAsUserWithLinger" test_scope_as_user
run_test "SystemdScopeDescriptionIsUTF8" test_scope_description_is_utf8
run_test "SupervisordStopLeavesNothing" test_supervisord_stop_leaves_nothing
run_test "SupervisordKillTimeoutLeavesNoOrphan" test_supervisord_kill_timeout_leaves_no_orphan
run_test "SupervisordRunsAsUser" test_supervisord_runs_as_user
run_test "PM2StopLeavesNothing" test_pm2_stop_leaves_nothing
run_test "PM2IPCChannelOnlyWithoutUser" test_pm2_ipc_channel
run_test "SystemdDelegateSubgroup" test_delegate_subgroup
run_test "SystemdNotifyReady" test_notify_ready
run_test "SystemdNotifyPassthrough" test_notify_passthrough
run_test "SystemdScopeGoneAfterFailureAndBadInput" test_scope_gone_after_failure_and_bad_input
run_test "ExampleSupervisordAsPasted" test_example_supervisord
run_test "ExamplePM2AsPasted" test_example_pm2
run_test "ExampleAaPanelAsPasted" test_example_aapanel
run_test "SystemdScopeOverThePrivateSocket" test_scope_over_the_private_socket # last: it stops the bus for a moment
echo "systemd: $passed passed, $failed failed"
((failed == 0))
