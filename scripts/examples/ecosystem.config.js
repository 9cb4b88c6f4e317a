// ecosystem.config.js: the Node.js queue worker under PM2, in a cgroup v2 memory space of its
// own via cgrun. PM2 starts cgrun (interpreter 'none': cgrun is a binary), cgrun starts node in
// a fresh group with the limits, OOM-kills it there when it leaks and starts a new one.
//
//   pm2 start ecosystem.config.js && pm2 logs worker
//
// /usr/bin/cgrun is where the package installs it; /usr/local/bin/cgrun for the static binary.
// When `pm2 status` shows the app errored or restarting, `pm2 logs worker` shows why: cgrun's
// one line on stderr (a missing user, a command not found, a bad flag).
//
// PM2's max_memory_restart is left out on purpose: PM2 would sample cgrun's own RSS (a few MB),
// not the worker's, every 30 s. The kernel enforces --memory-max at once, children included.
// PM2's God daemon runs in a group systemd did not delegate (pm2-root.service, or a login
// session): cgrun then asks systemd over D-Bus for a delegated scope of its own.
//
// Run PM2 as root (`pm2 startup` as root, not `sudo -u www-data pm2 start`) and leave out
// uid/gid: either would drop to www-data before cgrun starts, and cgrun as www-data has no group
// to manage (exit 125). --user www-data makes cgrun, as root, run node as www-data with its
// groups and HOME, in a group that stays root's: node can neither raise its limit nor leave its
// group. www-data is Debian's and Ubuntu's web user, there on every install; an aaPanel host runs
// its sites as www (write 'www' there); elsewhere make a user for the app first:
//   useradd --system --no-create-home --shell /usr/sbin/nologin app   (then '--user', 'app')
// PM2's IPC channel (fd 3, NODE_CHANNEL_FD) does not cross --user (no fd of root's does): the
// worker has no process.send(), so no wait_ready; without --user and --listen it is handed on
// (docs/security.md).
module.exports = {
  apps: [
    {
      name: 'worker',
      script: '/usr/bin/cgrun',
      interpreter: 'none',
      args: [
        'run', '--name', 'worker', '--user', 'www-data',
        '--memory-max', '256M', '--restart', 'on-oom', '--max-restarts', '0',
        '--', '/usr/bin/node', '/srv/app/worker.js',
      ],
      cwd: '/srv/app',
      env: { NODE_ENV: 'production' },
      exec_mode: 'fork', // one cgrun per instance; PM2's cluster mode only works for node scripts
      instances: 1,
      autorestart: true, // backstop: cgrun restarts the worker itself after an OOM kill
      kill_timeout: 15000, // ms; more than cgrun's --stop-timeout (10s), so cgrun cleans up first
    },
  ],
};
