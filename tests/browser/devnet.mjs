// What the browser tests share: a `kura devnet` of relays on 127.0.0.1, and headless Chromium.
import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// The test suite's pool of relay identities that carry the join work (each new one costs a
// relay seconds of one core): relay i of every devnet here takes the i-th.
const identities = fileURLToPath(new URL('../../p2p/src/join_keys.txt', import.meta.url));

// Starts `kura devnet` with `relays` relays in `dir` (and `extra` arguments); resolves with
// the child, the page's URL and each relay's { peer, http, pid } once every relay is up.
export async function startDevnet(kuraBin, dir, relays = 6, extra = []) {
  const child = spawn(kuraBin, ['devnet', '--relays', String(relays), '--dir', dir, '--http', '127.0.0.1:0', '--base-port', '0',
    '--identities', identities, ...extra],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const up = [];
  let page;
  for await (const line of createInterface({ input: child.stdout })) {
    const m = line.match(/^relay (\d+): peer (\S+)\s+(http:\/\/\S+)\s+pid (\d+)/);
    if (m) up.push({ peer: m[2], http: m[3], pid: Number(m[4]) });
    const p = line.match(/^page:\s+(\S+)/);
    if (p) page = p[1];
    if (line.startsWith('Ctrl-C')) break;
  }
  if (!page || up.length !== relays) throw new Error('devnet did not start');
  return { child, page, relays: up };
}

// Debian's headless Chromium, as every browser test runs it.
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A step of a test that must hold: printed as it passes, thrown when it does not.
export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok - ${what}`);
}

/** Polls `f` every 250 ms until it returns a truthy value; throws after `ms`. */
export async function until(what, ms, f) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise(ok => setTimeout(ok, 250));
  }
}

// A browser test's arguments (KURA_BIN OUT_DIR, OUT_DIR made) and a fresh scratch directory
// of its own: { kuraBin, outDir, work }.
export function testSetup(name) {
  const [kuraBin, outDir] = process.argv.slice(2);
  if (!kuraBin || !outDir) throw new Error(`usage: ${name}.test.mjs KURA_BIN OUT_DIR`);
  mkdirSync(outDir, { recursive: true });
  const work = join(tmpdir(), `kura-${name}-test-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  return { kuraBin, outDir, work };
}
