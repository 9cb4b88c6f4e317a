#!/usr/bin/env bash
# record.sh: record the counter traces the thrash tests replay (launch/policy/thrash_test.go).
# Run as root inside a guest with cgroup v2, from the repository root, after
#   mkdir -p bin/test && CGO_ENABLED=0 go test -c -o bin/test/cmd_cgrun.test ./cmd/cgrun
#   CGO_ENABLED=0 go build -o bin/record ./launch/policy/testdata/record
#   scripts/uml-run --mem 1536M -- launch/policy/testdata/record.sh OUTDIR [KERNEL-TAG]
# It makes a group of its own, runs one workload in it at a time, and samples it every 50 ms
# (bin/record)
#   ms memory.current memory.max max-events refault activate restore some_us full_us oom_kill anon file pgscan pgsteal file_mapped shmem
# (some_us/full_us: memory.pressure's totals, 0 without PSI) into OUTDIR/WORKLOAD-TAG.trace:
#   leak    1 MB every 100 ms, touched, under memory.max 64M, until the OOM kill (or 40 s)
#   reader  cat over a 300M file, in a loop, under 64M, 20 s
#   server  a Node server holding 60% of 256M, reading a 1M slice of a 100M file per request
#           (its page cache takes it to memory.max), under 4 clients, 20 s
set -euo pipefail
out=${1:?usage: record.sh OUTDIR [TAG]} tag=${2:-$(uname -r | cut -d. -f1,2)}
mkdir -p "$out"
root=/sys/fs/cgroup
echo +memory >$root/cgroup.subtree_control 2>/dev/null || true
# The files are written afresh in this guest (over hostfs, a file the guest has not written
# reads through no page cache of the guest's), then dropped from its page cache, which would
# serve the reads charged to the writer: so the group's reads fill its own page cache.
big=/var/tmp/cgrun-thrash-300M mid=/var/tmp/cgrun-thrash-100M
head -c 300M /dev/urandom >"$big"
head -c 100M /dev/urandom >"$mid"
uncache() { sync; echo 3 >/proc/sys/vm/drop_caches; }
ip link set lo up 2>/dev/null || true

run() { # run NAME LIMIT SECONDS COMMAND...
  local name=$1 limit=$2 secs=$3 g=$root/record-$1
  shift 3
  rmdir "$g" 2>/dev/null || true
  mkdir "$g"
  echo "$limit" >"$g/memory.max"
  echo 0 >"$g/memory.swap.max" 2>/dev/null || true
  sh -c 'echo $$ >"$1/cgroup.procs"; shift; exec "$@"' sh "$g" "$@" &
  local pid=$! line
  until read -r line <"$g/cgroup.procs"; do sleep 0.01; done
  bin/record "$g" "$secs" "$out/$name-$tag.trace"
  echo 1 >"$g/cgroup.kill" 2>/dev/null || kill -9 $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
  while [[ -n $(<"$g/cgroup.procs") ]]; do sleep 0.1; done
  rmdir "$g"
  echo "record: $name: $(wc -l <"$out/$name-$tag.trace") samples" >&2
}

CGRUNTEST_HELPER=1 run leak 64M 40 bin/test/cmd_cgrun.test drip 1 100
uncache
run reader 64M 20 sh -c "while :; do cat $big >/dev/null; done"

cat >/tmp/server.js <<'JS'
const http = require('http'), fs = require('fs');
const limit = 256 << 20, held = Buffer.alloc(0.6 * limit, 1);
const fd = fs.openSync(process.argv[2], 'r'), size = fs.fstatSync(fd).size, buf = Buffer.alloc(1 << 20);
http.createServer((req, res) => {
  const off = Math.floor(Math.random() * (size - buf.length));
  fs.readSync(fd, buf, 0, buf.length, off);
  res.end(String(buf[0] + held[0]));
}).listen(+process.argv[3], '127.0.0.1');
JS
cat >/tmp/client.js <<'JS'
const http = require('http'); let ok = 0;
const end = Date.now() + 1000 * +process.argv[3];
function one() { if (Date.now() > end) return; http.get({ host: '127.0.0.1', port: +process.argv[2], agent: false }, r => { r.resume(); r.on('end', () => { ok++; one(); }); }).on('error', () => setTimeout(one, 50)); }
for (let i = 0; i < 4; i++) one();
process.on('exit', () => console.error('client: ' + ok + ' requests'));
JS
uncache
(sleep 3; exec node /tmp/client.js 8931 24) &
run server 256M 20 node /tmp/server.js "$mid" 8931
wait

# php-fpm with opcache, 4 workers, each request reading a 4M slice of a 100M file, under 4
# clients, in 64M: its page cache is squeezed to a few MB of the data it reads.
php=/var/tmp/cgrun-thrash-php-100M
head -c 100M /dev/urandom >"$php"
cat >/tmp/read.php <<'PHP'
<?php
$f = fopen($_GET['file'], 'r');
fseek($f, mt_rand(0, filesize($_GET['file']) - (4 << 20)));
for ($i = 0; $i < 4; $i++) { fread($f, 1 << 20); }
echo "ok\n";
PHP
printf '[global]\nerror_log = /proc/self/fd/2\ndaemonize = no\n[www]\nuser = nobody\ngroup = nogroup\nlisten = /tmp/fpm.sock\npm = static\npm.max_children = 4\n' >/tmp/fpm.conf
chmod 644 "$php" /tmp/read.php
uncache
(sleep 3; end=$((SECONDS + 22)); for c in 1 2 3 4; do
  (while ((SECONDS < end)); do SCRIPT_FILENAME=/tmp/read.php REQUEST_METHOD=GET QUERY_STRING="file=$php" cgi-fcgi -bind -connect /tmp/fpm.sock >/dev/null 2>&1; done) &
done; wait) &
run php 64M 20 php-fpm8.2 -F -y /tmp/fpm.conf -d opcache.enable=1 -d opcache.memory_consumption=16
wait
