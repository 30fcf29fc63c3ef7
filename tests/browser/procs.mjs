// What benchmarks read of Chromium's renderer processes from /proc: their ids, memory and CPU.

import { readFileSync, readdirSync } from 'node:fs';

// Renderer process ids, listed again at most once a second (listing /proc is not free).
let renderers = [];
let listedAt = 0;

export function rendererPids() {
  if (Date.now() - listedAt < 1000) return renderers;
  listedAt = Date.now();
  renderers = readdirSync('/proc').filter(p => /^\d+$/.test(p)).filter(pid => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      return cmd.includes('chrom') && cmd.includes('--type=renderer');
    } catch { return false; }
  });
  return renderers;
}

/** The renderers' proportional set size (shared pages divided among their users), MiB. */
export function rendererPssMiB() {
  let total = 0;
  for (const pid of rendererPids()) {
    try {
      const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/Pss:\s+(\d+)/);
      if (m) total += Number(m[1]) / 1024;
    } catch { /* the process ended */ }
  }
  return total;
}

/** CPU seconds (user + system) a process has used so far (0 once it is gone). */
export function cpuSecs(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // clock ticks of 10 ms
  } catch { return 0; }
}

/** CPU seconds the renderers have used so far. */
export const rendererCpuSecs = () => rendererPids().reduce((s, p) => s + cpuSecs(p), 0);
