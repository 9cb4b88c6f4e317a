#!/bin/bash
# setup-root.sh: run by scripts/uml-systemd with chroot inside a freshly
# debootstrapped Debian root, once, before the root is cached. Makes the root
# boot quickly and quietly as a systemd guest under User-Mode-Linux.
# Its text is part of the cache key: editing it rebuilds the root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

echo uml >/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 uml\n::1 localhost ip6-localhost\n' >/etc/hosts
: >/etc/fstab  # the guest's / is an overlay set up before systemd starts
# A fixed machine id: no "first boot" (systemd-firstboot would prompt).
rm -f /etc/machine-id /var/lib/dbus/machine-id
systemd-machine-id-setup >/dev/null
mkdir -p /var/lib/dbus && ln -sf /etc/machine-id /var/lib/dbus/machine-id
mkdir -p /lib/modules  # the host's UML modules get mounted here

# An ordinary user for user-manager / lingering tests.
useradd --create-home --uid 1000 --user-group --shell /bin/bash cgrunuser

# Units that are slow, pointless or noisy in UML (each costs boot time on
# UML's single CPU). The gettys would write a login prompt onto /dev/tty1,
# which is the caller's stderr.
systemctl mask --quiet \
  getty.target getty@.service serial-getty@.service console-getty.service \
  autovt@.service container-getty@.service \
  systemd-networkd-wait-online.service systemd-timesyncd.service \
  systemd-firstboot.service \
  apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
  e2scrub_all.timer e2scrub_reap.service fstrim.timer man-db.timer \
  proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
  sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
  sys-fs-fuse-connections.mount dev-hugepages.mount \
  modprobe@.service kmod-static-nodes.service systemd-modules-load.service \
  systemd-remount-fs.service \
  systemd-sysusers.service systemd-random-seed.service systemd-pstore.service \
  systemd-journal-flush.service systemd-journald-audit.socket ldconfig.service \
  systemd-update-utmp.service systemd-update-utmp-runlevel.service
# Tests start supervisord themselves.
systemctl disable --quiet supervisor.service 2>/dev/null || true
systemctl set-default --quiet multi-user.target

mkdir -p /etc/systemd/system.conf.d /etc/systemd/journald.conf.d /etc/systemd/logind.conf.d
cat >/etc/systemd/system.conf.d/cgrun.conf <<'CONF'
[Manager]
ShowStatus=no
DefaultTimeoutStartSec=60s
DefaultTimeoutStopSec=10s
DefaultMemoryAccounting=yes
DefaultTasksAccounting=yes
CONF
cat >/etc/systemd/journald.conf.d/cgrun.conf <<'CONF'
[Journal]
Storage=volatile
RuntimeMaxUse=32M
ForwardToConsole=no
ForwardToWall=no
CONF
cat >/etc/systemd/logind.conf.d/cgrun.conf <<'CONF'
[Login]
NAutoVTs=0
ReserveVT=0
CONF

# Smaller root: no package lists, caches, docs.
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log \
  /usr/share/doc/* /usr/share/man/* /usr/share/info/*
