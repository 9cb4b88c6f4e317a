#!/bin/bash
# The .deb of scripts/release in a real Debian with systemd: run by scripts/test inside
# scripts/uml-systemd with the package's path as $1 and its version as $2. It installs with
# dpkg -i, every packaged example starts the cgrun it installed, `cgrun check` says cgrun works
# here (as root in a unit systemd did not delegate, and as a user under its user manager: by a
# scope over D-Bus), the packaged example unit runs a limited worker and keeps running while the
# package is installed again over it, and dpkg -r leaves nothing.
#
# Prints "--- PASS: NAME" or "--- FAIL: NAME" for each step, like integration.sh.
set -u
deb=$1 version=$2
failed=0
echo "package: guest kernel $(uname -r)"
step() { # NAME COMMAND...
  local out
  if out=$("${@:2}" 2>&1); then
    echo "--- PASS: package $1"
  else
    echo "--- FAIL: package $1"
    sed 's/^/    /' <<<"$out"
    failed=1
  fi
}
fail() { echo "$*"; return 1; }

install() {
  dpkg -i "$deb" || return 1
  [[ $(command -v cgrun) == /usr/bin/cgrun ]] || fail "cgrun is $(command -v cgrun), want /usr/bin/cgrun" || return 1
  [[ $(cgrun version) == "cgrun $version "* ]] || fail "cgrun version: $(cgrun version)" || return 1
  for f in /usr/share/man/man1/cgrun.1.gz /usr/share/bash-completion/completions/cgrun \
    /usr/share/zsh/vendor-completions/_cgrun /usr/share/fish/vendor_completions.d/cgrun.fish \
    /usr/share/doc/cgrun/examples/example-worker.service /usr/share/doc/cgrun/copyright \
    /usr/share/doc/cgrun/changelog.Debian.gz /usr/share/doc/cgrun/docs/install.md; do
    [[ -s $f ]] || fail "missing: $f" || return 1
  done
}

# Every cgrun a packaged example starts (ExecStart= of a unit, command= of supervisord, script: of
# PM2, exec of a shell start command) is the one the package installed: a user copies them as
# they are. (The Dockerfile and the Kubernetes pod copy the static binary into their image.)
example_paths() {
  local f p n=0
  for f in /usr/share/doc/cgrun/examples/*; do
    while IFS= read -r p; do
      n=$((n + 1))
      [[ -x $p ]] || fail "${f##*/} starts $p, which the package did not install (it installs /usr/bin/cgrun)" || return 1
    done < <(grep -hE '^(ExecStart=|command=|exec |[[:space:]]*script:)' "$f" | grep -oE "/[^ '\",]*/cgrun\b")
  done
  ((n >= 9)) || fail "found $n cgrun paths in the packaged examples, want the 9 of the units, supervisord, PM2 and aaPanel"
}

check() {
  local out
  out=$(cgrun check) || fail "cgrun check exited $?: $out" || return 1
  sed 's/^/    /' <<<"$out" >&2  # shown in the log
  [[ $out == *"cgrun run can work here: as root, cgrun asks the systemd system manager for a scope"* ]] || fail "verdict: $out" || return 1
}

check_as_user() {
  # An ordinary user with a user manager (a login session, or lingering): a scope from it.
  loginctl enable-linger cgrunuser && systemctl start user@1000.service || fail "no user manager" || return 1
  local out
  out=$(systemd-run -M cgrunuser@ --user --wait --pipe --quiet -- cgrun check) || fail "cgrun check as cgrunuser exited $?: $out" || return 1
  [[ $out == *"cgrun run can work here: as uid 1000 (not root), cgrun asks the systemd user manager for a scope"* ]] ||
    fail "verdict: $out" || return 1
  sed 's/^/    /' <<<"$out" >&2
}

example_unit() {
  cp /usr/share/doc/cgrun/examples/example-worker.service /etc/systemd/system/ &&
    systemctl daemon-reload && systemctl start example-worker || fail "start: $(systemctl status example-worker --no-pager)" || return 1
  # Type=notify: start returned once the worker runs.
  local ps group
  ps=$(cgrun ps)
  [[ $ps == *example-worker* ]] || fail "cgrun ps: $ps" || return 1
  group=$(cgrun status --json example-worker | sed -n 's/.*"group": *"\([^"]*\)".*/\1/p' | head -n 1)
  [[ $group == /system.slice/example-worker.service/example-worker-*.1 ]] || fail "group: $group" || return 1
  [[ $(cat "/sys/fs/cgroup$group/memory.max") == 67108864 && $(cat "/sys/fs/cgroup$group/pids.max") == 64 ]] ||
    fail "limits: memory.max $(cat "/sys/fs/cgroup$group/memory.max"), pids.max $(cat "/sys/fs/cgroup$group/pids.max")" || return 1
  # README's upgrade: the package installed again over itself while the unit runs (dpkg
  # replaces /usr/bin/cgrun as it would for a newer version): the running cgrun runs on, and a
  # restart of the unit runs the binary now installed.
  local pid
  pid=$(systemctl show -P MainPID example-worker)
  dpkg -i "$deb" >/dev/null || fail "dpkg -i over the running unit failed" || return 1
  [[ $(systemctl show -P MainPID example-worker) == "$pid" && $(systemctl is-active example-worker) == active ]] ||
    fail "after the reinstall: $(systemctl status example-worker --no-pager)" || return 1
  [[ $(cgrun ps) == *example-worker* ]] || fail "cgrun ps after the reinstall: $(cgrun ps)" || return 1
  systemctl restart example-worker || fail "restart after the reinstall: $(systemctl status example-worker --no-pager)" || return 1
  [[ $(readlink "/proc/$(systemctl show -P MainPID example-worker)/exe") == /usr/bin/cgrun ]] ||
    fail "the restarted unit runs $(readlink "/proc/$(systemctl show -P MainPID example-worker)/exe")" || return 1
  systemctl stop example-worker
  [[ $(systemctl is-active example-worker) == inactive ]] || fail "after stop: $(systemctl status example-worker --no-pager)" || return 1
  rm /etc/systemd/system/example-worker.service && systemctl daemon-reload
}

remove() {
  dpkg -r cgrun || return 1
  [[ ! -e /usr/bin/cgrun && ! -e /usr/share/doc/cgrun ]] || fail "left behind: $(ls -d /usr/bin/cgrun /usr/share/doc/cgrun 2>/dev/null)"
}

step "dpkg -i" install
step "examples name the installed cgrun" example_paths
step "cgrun check" check
step "cgrun check as a user" check_as_user
step "example unit" example_unit
step "dpkg -r" remove
exit $failed
