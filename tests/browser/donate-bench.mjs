// Donating tabs benchmark (scripts/bench-donate.sh): a `kura devnet` of six relays and four
// donating tabs in headless Chromium, each its own profile, driven over a bare DevTools pipe
// (cdp.mjs). Prints, side by side in one run:
//   - the donating tab's store (opfs.rs) writing and reading 256 KiB shards, MB/s;
//   - the tabs' renderer CPU and memory idle before donating, idle while donating, and
//     while serving;
//   - a file of MIB (default 48) read by `kura get` after five of six relays are killed:
//     shards and MB the tabs served through relay 0 per second, and relay 0's CPU seconds
//     per MB it relayed to the reader.
// Usage: node tests/browser/donate-bench.mjs KURA_BIN [MIB]
import { launch } from './cdp.mjs';
import { startDevnet } from './devnet.mjs';
import { cpuSecs, rendererCpuSecs, rendererPssMiB } from './procs.mjs';
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, rmSync, mkdirSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [kuraBin, mibArg] = process.argv.slice(2);
const mib = Number(mibArg || 48);
const TABS = 4;
const work = join(tmpdir(), `kura-donate-bench-${process.pid}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
/** Renderer CPU (cores busy) and memory (PSS, MiB) over `secs` of waiting. */
async function idle(secs) {
  const c0 = rendererCpuSecs();
  const t0 = Date.now();
  await new Promise(ok => setTimeout(ok, secs * 1000));
  return { cores: (rendererCpuSecs() - c0) / ((Date.now() - t0) / 1000), pssMiB: rendererPssMiB() };
}
const json = async (r, path) => (await fetch(`${r.http}${path.replace(/^\//, '')}`)).json();
const stats = p => p.evaluate(`({ ...document.getElementById('donate-stats').dataset })`);

const { child: devnet, page: pageUrl, relays } = await startDevnet(kuraBin, join(work, 'net'));
const browser = await launch(['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']);
try {
  const tabs = [];
  for (let i = 0; i < TABS; i++) {
    const { browserContextId } = await browser.send('Target.createBrowserContext');
    const p = await browser.newPage(pageUrl, browserContextId);
    await p.waitFor(`document.getElementById('net').textContent.startsWith('Connected')`, 60_000);
    tabs.push(p);
  }
  const opfs = await tabs[0].evaluate('window.kuraOpfsBench(64, 262144)');
  const before = await idle(10);
  for (const p of tabs) {
    await p.evaluate(`(() => { const q = document.getElementById('donate-quota'); q.value = '512';
      q.dispatchEvent(new Event('change')); document.getElementById('donate-toggle').click(); })()`);
    await p.waitFor(`document.getElementById('donate-stats').dataset.reachable === 'yes'`, 60_000);
  }
  const donatingIdle = await idle(10);

  // A file put natively, then offered to the tabs.
  const file = join(work, 'file.bin');
  const fd = openSync(file, 'w');
  const buf = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) { randomFillSync(buf); writeSync(fd, buf); }
  closeSync(fd);
  const { addrs } = await json(relays[0], '/bootstrap');
  const tcp = addrs.find(a => a.includes('/tcp/') && !a.includes('/ws') && a.endsWith(relays[0].peer));
  const put = spawnSync(kuraBin, ['put', file, '--bootstrap', tcp], { encoding: 'utf8' });
  if (put.status !== 0) throw new Error(`kura put: ${put.stderr}`);
  const cap = put.stdout.trim();
  const stripes = (await json(relays[0], '/status')).shards;
  for (const p of tabs) await p.waitFor(`document.getElementById('donate-stats').dataset.shards === '${stripes}'`, 600_000);
  for (const r of relays.slice(1)) process.kill(r.pid, 'SIGKILL');
  for (const p of tabs) {
    await p.waitFor(`document.getElementById('donate-stats').dataset.via === '${relays[0].peer}'`, 120_000);
  }
  await new Promise(ok => setTimeout(ok, 3000)); // the tabs' announcements with their new relay

  const served0 = await Promise.all(tabs.map(stats));
  const relayCpu0 = cpuSecs(relays[0].pid);
  const tabCpu0 = rendererCpuSecs();
  let peakPss = 0;
  const sample = setInterval(() => { peakPss = Math.max(peakPss, rendererPssMiB()); }, 500);
  const t0 = Date.now();
  // Run asynchronously, so that memory is sampled while it reads.
  const status = await new Promise(ok => {
    spawn(kuraBin, ['get', cap, '--bootstrap', tcp, '-o', join(work, 'back.bin')], { stdio: 'inherit' }).on('exit', ok);
  });
  const secs = (Date.now() - t0) / 1000;
  clearInterval(sample);
  if (status !== 0) throw new Error(`kura get exited with ${status}`);
  peakPss = Math.max(peakPss, rendererPssMiB());
  const relayCpu = cpuSecs(relays[0].pid) - relayCpu0;
  const tabCpu = rendererCpuSecs() - tabCpu0;
  await new Promise(ok => setTimeout(ok, 1500)); // the tabs' figures, posted every second
  const served1 = await Promise.all(tabs.map(stats));
  const shards = served1.reduce((n, s, i) => n + Number(s.served) - Number(served0[i].served), 0);
  const shardBytes = Number(served1[0].bytes) / Number(served1[0].shards);
  const mb = shards * shardBytes / 1e6;
  const fileMB = mib * 1048576 / 1e6;
  console.log(`donating tabs, ${TABS} in one headless Chromium, ${stripes} stripes of k = 4, m = 2 (shards of ${(shardBytes / 1024).toFixed(0)} KiB)`);
  console.log(`  OPFS store (opfs.rs, 64 shards of 256 KiB): write ${opfs.writeMBs.toFixed(1)} MB/s, read ${opfs.readMBs.toFixed(1)} MB/s`);
  console.log(`  renderers idle, not donating: ${before.cores.toFixed(3)} cores, ${before.pssMiB.toFixed(0)} MiB PSS (${TABS} tabs)`);
  console.log(`  renderers idle, donating:     ${donatingIdle.cores.toFixed(3)} cores, ${donatingIdle.pssMiB.toFixed(0)} MiB PSS`);
  console.log(`  kura get of ${mib} MiB with 5 of 6 relays killed: ${secs.toFixed(1)} s, ${(fileMB / secs).toFixed(2)} MB/s of file`);
  console.log(`  the tabs served ${shards} shards, ${mb.toFixed(1)} MB: ${(shards / secs).toFixed(1)} shards/s, ${(mb / secs).toFixed(2)} MB/s (all ${TABS}), ${(mb / secs / TABS).toFixed(2)} MB/s per tab`);
  console.log(`  renderers serving: ${(tabCpu / secs).toFixed(2)} cores, peak ${peakPss.toFixed(0)} MiB PSS`);
  console.log(`  relay 0: ${(relayCpu / secs).toFixed(2)} cores, ${(relayCpu / mb).toFixed(3)} CPU s per MB the tabs served through it`);
} finally {
  await browser.close();
  devnet.kill('SIGTERM');
  await new Promise(ok => setTimeout(ok, 1500));
  rmSync(work, { recursive: true, force: true });
}
