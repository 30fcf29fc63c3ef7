// Browser benchmark: the page uploading and downloading a file through a local network of
// relays (`kura devnet`, release build) over WebSocket, with the tab's memory sampled
// throughout; then the client API on a page's main thread uploading over WebRTC-direct and
// over WebSocket. Usage: node tests/browser/bench.mjs KURA_BIN [MIB]   (scripts/bench-browser.sh)
// Tab memory = proportional set size (PSS: shared pages divided among their users) of
// Chromium's renderer processes (the page, its worker, JS heap and wasm memory all live
// there), sampled every 500 ms from /proc (reading smaps_rollup walks the renderer's page
// tables: at 100 ms the sampling took 8% of the machine); printed with the idle figure
// before the transfer. Tab memory as JS sees it = wasm memory + the page's JS heap + the
// worker's JS heap (each at its peak, summed).
// Chromium is driven through a bare DevTools pipe (cdp.mjs), not Playwright, whose per-frame
// WebSocket events would take a third of the machine.
import { launch } from './cdp.mjs';
import { rendererPssMiB } from './procs.mjs';
import { spawn } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { closeSync, openSync, rmSync, mkdirSync, writeSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const [kuraBin, mibArg] = process.argv.slice(2);
const mib = Number(mibArg || 512);
const work = join(tmpdir(), `kura-browser-bench-${process.pid}`);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

function sampler() {
  let peak = 0;
  const t = setInterval(() => { peak = Math.max(peak, rendererPssMiB()); }, 500);
  return () => { clearInterval(t); return Math.max(peak, rendererPssMiB()); };
}

// The JS heap of the page's worker (the Kura client runs in it), read from the worker's
// own V8 over DevTools every 500 ms: { stop() -> peak used bytes }. Wasm memory is outside
// the JS heap and reported by the page itself (kuraStats.wasmBytes).
async function workerHeap(page) {
  const attached = browser.once('Target.attachedToTarget', p => p.targetInfo.type === 'worker', page.sessionId);
  await browser.send('Target.setAutoAttach', { autoAttach: true, waitForDebuggerOnStart: false, flatten: true }, page.sessionId);
  const { sessionId } = await attached;
  let peak = 0;
  const read = async () => {
    // A worker that has gone reads as 0 (the peak so far stands).
    const { usedSize } = await browser.send('Runtime.getHeapUsage', {}, sessionId).catch(() => ({ usedSize: 0 }));
    peak = Math.max(peak, usedSize);
  };
  await read();
  const t = setInterval(read, 500);
  return { stop: async () => { clearInterval(t); await read(); return peak; } };
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

const browser = await launch(['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // e.g. KURA_CHROMIUM_ARGS=--js-flags=--perf-basic-prof to name wasm functions for `perf`.
  ...(process.env.KURA_CHROMIUM_ARGS || '').split(' ').filter(Boolean)]);
try {
  const page = await browser.newPage(pageUrl);
  await page.waitFor(`document.getElementById('net').textContent.startsWith('Connected')`, 60_000);
  const idle = rendererPssMiB();
  const heap = await workerHeap(page);
  const stopUp = sampler();
  const t0 = Date.now();
  await page.setFiles('[data-testid=file-input]', [file]);
  const share = await page.waitFor(`document.querySelector('[data-testid=share-link]')?.value`, 30 * 60_000);
  const upSecs = (Date.now() - t0) / 1000;
  const upPeak = stopUp();
  const workerHeapPeak = await heap.stop();
  const upStats = await page.evaluate('window.kuraStats');
  await browser.send('Target.closeTarget', { targetId: (await browser.send('Target.getTargetInfo', {}, page.sessionId)).targetInfo.targetId });

  // A fresh profile opens the link and downloads.
  const { browserContextId } = await browser.send('Target.createBrowserContext');
  const downloads = join(work, 'downloads');
  await browser.send('Browser.setDownloadBehavior', { behavior: 'allowAndName', browserContextId, downloadPath: downloads, eventsEnabled: true });
  const p2 = await browser.newPage(share, browserContextId);
  await p2.waitFor(`!document.querySelector('[data-testid=download]').disabled`, 120_000);
  const stopDown = sampler();
  const t1 = Date.now();
  const begun = browser.once('Browser.downloadWillBegin');
  await p2.evaluate(`document.querySelector('[data-testid=download]').click()`, { userGesture: true });
  const { guid } = await begun;
  // A streamed download starts at once and ends when the last byte is on disk.
  const done = await browser.once('Browser.downloadProgress', p => p.guid === guid && p.state !== 'inProgress');
  const downSecs = (Date.now() - t1) / 1000;
  const downPeak = stopDown();
  if (done.state !== 'completed') throw new Error(`download ${done.state}`);
  const downStats = await p2.evaluate('window.kuraStats');
  if (statSync(join(downloads, guid)).size !== size) throw new Error('download has the wrong size');

  // The client API on a page's main thread (a worker has no RTCPeerConnection), once per
  // transport: put an in-memory Blob, read it back (spot-checked): WebRTC-direct against
  // WebSocket.
  const origin = new URL(pageUrl).origin;
  const rtcMiB = Number(process.env.KURA_BENCH_RTC_MIB || Math.min(mib, 128));
  const direct = {};
  for (const transport of ['webrtc-direct', 'ws']) {
    const { browserContextId: ctx } = await browser.send('Target.createBrowserContext');
    const p = await browser.newPage(`${origin}/pkg/kura_client.js`, ctx);
    direct[transport] = await p.evaluate(`(async () => {
      const m = await import('${origin}/pkg/kura_client.js');
      await m.default();
      const { addrs } = await (await fetch('${origin}/bootstrap')).json();
      const mine = addrs.filter(a => a.includes('/${transport}/'));
      const client = await m.KuraClient.connect(mine);
      const bytes = new Uint8Array(${rtcMiB} << 20);
      for (let i = 0; i < bytes.length; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
      const blob = new Blob([bytes]);
      const t0 = performance.now();
      const cap = await client.put(blob, 'bench.bin', 'application/octet-stream', true, 4, 2, null);
      const secs = (performance.now() - t0) / 1000;
      // Read it back over the same transport (a WebRTC-only client reads shards piecewise).
      let got = 0;
      let same = true;
      const t1 = performance.now();
      await client.read(cap, 0, bytes.length, chunk => {
        if (same) for (let i = 0; i < chunk.length; i += 4099) if (chunk[i] !== bytes[got + i]) { same = false; break; }
        got += chunk.length;
      }, null);
      const readSecs = (performance.now() - t1) / 1000;
      if (got !== bytes.length || !same) throw new Error('read back ' + got + ' bytes, same: ' + same);
      return { secs, readSecs, addrs: mine.length };
    })()`);
    await browser.send('Target.disposeBrowserContext', { browserContextId: ctx });
  }

  console.log(`browser benchmark: ${mib} MiB through 6 relays on 127.0.0.1, WebSocket, page + worker in headless Chromium`);
  const mb = b => (b / 1048576).toFixed(1);
  console.log(`upload   ${(size / 1e6 / upSecs).toFixed(1)} MB/s (${upSecs.toFixed(1)} s), tab PSS peak ${upPeak.toFixed(0)} MiB (idle ${idle.toFixed(0)} MiB); wasm memory ${mb(upStats.wasmBytes)} MiB, page JS heap peak ${mb(upStats.jsHeapBytes)} MiB, worker JS heap peak ${mb(workerHeapPeak)} MiB; together ${mb(upStats.wasmBytes + upStats.jsHeapBytes + workerHeapPeak)} MiB`);
  console.log(`download ${(size / 1e6 / downSecs).toFixed(1)} MB/s (${downSecs.toFixed(1)} s, streamed to disk through the service worker), tab PSS peak ${downPeak.toFixed(0)} MiB; wasm memory ${mb(downStats.wasmBytes)} MiB, page JS heap peak ${mb(downStats.jsHeapBytes)} MiB`);
  for (const [t, r] of Object.entries(direct)) {
    const name = t === 'ws' ? 'WebSocket    ' : 'WebRTC-direct';
    const rate = secs => (rtcMiB * 1048576 / 1e6 / secs).toFixed(1);
    console.log(`page main thread over ${name}: upload ${rate(r.secs)} MB/s, download ${rate(r.readSecs)} MB/s (${rtcMiB} MiB, ${r.secs.toFixed(1)} s + ${r.readSecs.toFixed(1)} s)`);
  }
} finally {
  await browser.close();
  devnet.kill('SIGTERM');
  await new Promise(r => devnet.on('exit', r));
  rmSync(work, { recursive: true, force: true });
}
