// worker.js: a Node.js queue worker with a leak, for scripts/demo.
//
// It "processes jobs" from an in-memory queue and, by mistake, keeps every job's payload in a
// global array that is never cleared. The payloads are Buffers, which live outside V8's heap,
// so V8's heap limit (--max-old-space-size) never stops the leak: it grows until the kernel
// says no — the cgroup's memory.max under cgrun, the whole machine without it.
//
//   node worker.js            env: LEAK_MB (MB per job, default 2), JOB_MS (ms between jobs,
//                             default 50), LOG_EVERY (log every N jobs, default 5)
'use strict';

const LEAK_MB = Number(process.env.LEAK_MB || 2);
const JOB_MS = Number(process.env.JOB_MS || 50);
const LOG_EVERY = Number(process.env.LOG_EVERY || 5);
const MB = 1024 * 1024;

const processed = []; // the leak: "cache" of every job payload ever processed
let job = 0;
const started = Date.now();

function log(msg) {
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`worker[${process.pid}] +${secs}s ${msg}\n`);
}

function work() {
  job++;
  // allocUnsafe + fill: the pages are really touched, so they count against memory.current
  // (Buffer.alloc's zeroed pages might stay untouched on some allocators).
  const payload = Buffer.allocUnsafe(LEAK_MB * MB).fill(job & 0xff);
  processed.push(payload);
  if (job % LOG_EVERY === 0) {
    const rss = Math.round(process.memoryUsage().rss / MB);
    log(`job ${job}: holding ${processed.length * LEAK_MB} MB of payloads, rss ${rss} MB`);
  }
  setTimeout(work, JOB_MS);
}

process.on('SIGTERM', () => { log(`SIGTERM after ${job} jobs, exiting`); process.exit(0); });
log(`started: leaking ${LEAK_MB} MB every ${JOB_MS} ms`);
work();
