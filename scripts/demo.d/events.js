// events.js: read a cgrun --events file (JSON Lines) for scripts/demo and vps-test.
//
//   node events.js shell FILE      KEY=VALUE lines for a shell's eval (numbers, simple words)
//   node events.js recycles FILE   one readable line per recycle, then the last generation
'use strict';
const fs = require('fs');

const [mode, file] = process.argv.slice(2);
if (!['shell', 'recycles'].includes(mode) || !file) {
  console.error('usage: node events.js shell|recycles FILE');
  process.exit(2);
}

const events = [];
let bad = 0;
for (const line of (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '').split('\n')) {
  if (!line.trim()) continue;
  try { events.push(JSON.parse(line)); } catch { bad++; }
}
const of = (kind) => events.filter((e) => e.event === kind);
const mb = (b) => (b / 1048576).toFixed(1) + 'M';

const starts = of('start');
const exits = of('exit');
const recycles = of('recycle');
const sum = (kind) => of(kind).reduce((n, e) => n + (e.delta || 0), 0);

if (mode === 'shell') {
  const reasons = [...new Set(recycles.map((r) => r.reason || 'none'))];
  const peaks = events.map((e) => e.memory_peak || e.old_memory_peak || 0);
  const last = exits[exits.length - 1] || {};
  const out = {
    bad_lines: bad,
    starts: starts.length,
    exits: exits.length,
    recycles: recycles.length,
    recycles_oom_kill: recycles.filter((r) => r.reason === 'oom_kill').length,
    recycles_thrash: recycles.filter((r) => r.reason === 'thrash').length,
    recycle_reasons: reasons.join(',') || 'none',
    // recycles whose new_pid/old_pid do not chain start to start
    recycle_pid_mismatch: recycles.filter((r, i) =>
      !starts[i] || !starts[i + 1] || r.old_pid !== starts[i].pid || r.new_pid !== starts[i + 1].pid).length,
    start_pids: starts.map((s) => s.pid).join(' '),
    first_pid: starts.length ? starts[0].pid : 0,
    group: starts.length ? starts[0].group : '',
    groups: starts.map((s) => s.group).join(' '),
    // exits of generations that the OOM killer ended
    exits_oom_killed: exits.filter((e) => (e.oom_kills || 0) > 0).length,
    oom_kill_events: of('oom_kill').length,
    oom_kill_total: sum('oom_kill'),
    oom_group_kill_total: sum('oom_group_kill'),
    max_events_total: sum('max'),
    high_events_total: sum('high'),
    max_peak: Math.max(0, ...peaks),
    last_peak: last.memory_peak || 0,
    last_exit_code: last.exit_code ?? '',
    last_signal: last.signal || '',
  };
  for (const [k, v] of Object.entries(out)) {
    console.log(`${k}='${String(v).replace(/'/g, '')}'`);
  }
} else {
  recycles.forEach((r) => {
    console.log(`    generation ${r.generation - 1} (pid ${r.old_pid}) -> ${r.generation} (pid ${r.new_pid}): ` +
      `${r.reason} after ${(r.uptime_seconds || 0).toFixed(1)} s, peak ${mb(r.old_memory_peak || 0)}`);
  });
  const last = exits[exits.length - 1];
  if (last) {
    const how = last.signal ? `killed by ${last.signal}` : `exit ${last.exit_code}`;
    const why = (last.oom_kills || 0) > 0 ? 'OOM-killed; cgrun was stopped before its restart'
      : last.reason ? `recycled (${last.reason})` : 'stopped with cgrun';
    console.log(`    generation ${last.generation} (pid ${last.pid}): ${how} after ` +
      `${(last.uptime_seconds || 0).toFixed(1)} s, ${why}; peak ${mb(last.memory_peak || 0)}`);
  }
}
