// Browser benchmark: the page uploading and downloading a file through a local network of
// relays (`kura devnet`, release build) over WebSocket, with the tab's memory sampled
// throughout. Usage: node tests/browser/bench.mjs KURA_BIN [MIB]   (scripts/bench-browser.sh)
// Tab memory = proportional set size (PSS: shared pages divided among their users) of
// Chromium's renderer processes (the page, its worker, JS heap and wasm memory all live
// there), sampled every 100 ms from /proc; printed with the idle figure before the transfer.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync, rmSync, mkdirSync, writeSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [kuraBin, mibArg] = process.argv.slice(2);
const mib = Number(mibArg || 512);
const work = join(tmpdir(), `kura-browser-bench-${process.pid}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

function rendererRssMiB() {
  let total = 0;
  for (const pid of readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('chrom') || !cmd.includes('--type=renderer')) continue;
      const m = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/Pss:\s+(\d+)/);
      if (m) total += Number(m[1]) / 1024;
    } catch { /* the process ended */ }
  }
  return total;
}

function sampler() {
  let peak = 0;
  const t = setInterval(() => { peak = Math.max(peak, rendererRssMiB()); }, 100);
  return () => { clearInterval(t); return Math.max(peak, rendererRssMiB()); };
}

const devnet = spawn(kuraBin, ['devnet', '--relays', '6', '--dir', join(work, 'net'), '--http', '127.0.0.1:0', '--base-port', '0'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
let pageUrl;
for await (const line of createInterface({ input: devnet.stdout })) {
  const p = line.match(/^page:\s+(\S+)/);
  if (p) pageUrl = p[1];
  if (line.startsWith('Ctrl-C')) break;
}

const file = join(work, `random-${mib}MiB.bin`);
const fd = openSync(file, 'w');
const buf = Buffer.alloc(1 << 20);
for (let i = 0; i < mib; i++) { randomFillSync(buf); writeSync(fd, buf); }
closeSync(fd);
const size = statSync(file).size;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const ctx = await browser.newContext({ acceptDownloads: true });
  const page = await ctx.newPage();
  await page.goto(pageUrl);
  await page.waitForFunction(() => document.getElementById('net').textContent.startsWith('Connected'), null, { timeout: 60_000 });
  const idle = rendererRssMiB();
  const stopUp = sampler();
  const t0 = Date.now();
  await page.getByTestId('file-input').setInputFiles(file);
  const link = page.getByTestId('share-link');
  await link.waitFor({ timeout: 30 * 60_000 });
  const upSecs = (Date.now() - t0) / 1000;
  const upPeak = stopUp();
  const share = await link.inputValue();
  const upStats = await page.evaluate(() => window.kuraStats);
  await ctx.close();

  const ctx2 = await browser.newContext({ acceptDownloads: true });
  const p2 = await ctx2.newPage();
  await p2.goto(share);
  await p2.waitForFunction(() => !document.querySelector('[data-testid=download]').disabled, null, { timeout: 120_000 });
  const stopDown = sampler();
  const t1 = Date.now();
  const [dl] = await Promise.all([p2.waitForEvent('download', { timeout: 30 * 60_000 }), p2.getByTestId('download').click()]);
  // A streamed download starts at once and ends when the last byte is on disk.
  await dl.path();
  const downSecs = (Date.now() - t1) / 1000;
  const downPeak = stopDown();
  const downStats = await p2.evaluate(() => window.kuraStats);
  const out = join(work, 'back.bin');
  await dl.saveAs(out);
  if (statSync(out).size !== size) throw new Error('download has the wrong size');
  await ctx2.close();

  console.log(`browser benchmark: ${mib} MiB through 6 relays on 127.0.0.1, WebSocket, page + worker in headless Chromium`);
  const mb = b => (b / 1048576).toFixed(1);
  console.log(`upload   ${(size / 1e6 / upSecs).toFixed(1)} MB/s (${upSecs.toFixed(1)} s), tab PSS peak ${upPeak.toFixed(0)} MiB (idle ${idle.toFixed(0)} MiB); wasm memory ${mb(upStats.wasmBytes)} MiB, page JS heap peak ${mb(upStats.jsHeapBytes)} MiB`);
  console.log(`download ${(size / 1e6 / downSecs).toFixed(1)} MB/s (${downSecs.toFixed(1)} s, streamed to disk through the service worker), tab PSS peak ${downPeak.toFixed(0)} MiB; wasm memory ${mb(downStats.wasmBytes)} MiB, page JS heap peak ${mb(downStats.jsHeapBytes)} MiB`);
} finally {
  await browser.close();
  devnet.kill('SIGTERM');
  await new Promise(r => devnet.on('exit', r));
  rmSync(work, { recursive: true, force: true });
}
