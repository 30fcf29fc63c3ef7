// Tabs donating storage, in Debian's headless Chromium against a `kura devnet` of six relays
// (k = 4, m = 2): four tabs, each its own profile, turn "donate" on in the page's Donate
// panel; a fifth uploads a file; relays offer the tabs the file's data shards (each tab one
// shard of every stripe); a donating tab reloaded keeps its shards (the origin's private file
// system) and donates again by itself; five of the six relays are killed (relay 0, which
// serves the page and whose /bootstrap the tabs reserved through, is left); the file then reads
// back byte-exact with `kura get` and in a fresh page, served by the tabs through relay 0's
// circuits; a tab's shard damaged in OPFS is dropped unserved by the tab and the read still
// succeeds; a tab closed is forgotten by the relay once its announcements expire (the
// tabs refresh them within the expiry the relays' `/bootstrap` tells). The quota is never
// passed. Screenshots of the Donate panel go to OUT_DIR.
// Usage: node tests/browser/donate.test.mjs KURA_BIN OUT_DIR
import { test, before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDevnet, launchChromium, check, until, testSetup } from './devnet.mjs';

const { kuraBin, outDir, work } = testSetup('donate');

const TABS = 4;
const QUOTA_MIB = 64;
const TAB_TTL = 15;
let devnet;
let browser;
const deadline = setTimeout(() => {
  console.error('donate test: timed out after 8 minutes');
  if (devnet && devnet.exitCode === null) devnet.kill('SIGKILL');
  process.exit(1);
}, 8 * 60_000);
deadline.unref();

const sha256 = buf => createHash('sha256').update(buf).digest('hex');
const json = async (r, path) => (await fetch(`${r.http}${path.replace(/^\//, '')}`)).json();

async function fresh() {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 900 } });
  const page = await ctx.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`  [browser] ${m.text()}`); });
  page.on('pageerror', e => console.log(`  [page error] ${e.message}`));
  return { ctx, page };
}

/** The Donate panel's figures (app.js keeps them on the stats element's dataset). */
const stats = page => page.evaluate(() => ({ ...document.getElementById('donate-stats').dataset,
  text: document.getElementById('donate-stats').textContent }));

const net = {};

before(async () => {
  // Relays keep tabs' announcements TAB_TTL seconds; the page's tabs refresh a third of that.
  const up = await startDevnet(kuraBin, join(work, 'net'), 6, ['--tab-ttl', String(TAB_TTL)]);
  devnet = up.child;
  browser = await launchChromium();
  Object.assign(net, up);
});

after(async () => {
  if (devnet && devnet.exitCode === null) devnet.kill('SIGTERM');
  if (browser) await browser.close().catch(() => {});
  await new Promise(ok => setTimeout(ok, 1500));
  rmSync(work, { recursive: true, force: true });
});

test('four donating tabs serve a file when five of six relays are gone', async () => {
  const { page: pageUrl, relays } = net;
  // Four donating tabs.
  const tabs = [];
  for (let i = 0; i < TABS; i++) {
    const { ctx, page } = await fresh();
    await page.goto(pageUrl);
    await page.waitForFunction(() => document.getElementById('net').textContent.startsWith('Connected'), null, { timeout: 60_000 });
    // The tab's wallet (paid into for donating) is made first: a few seconds of the worker's
    // one thread, once (the account work), not to be spent while the tab reserves a relay.
    await page.waitForFunction(() => /^[0-9a-f]{64}$/.test(document.getElementById('wallet-address').textContent), null, { timeout: 60_000 });
    await page.getByTestId('donate-quota').fill(String(QUOTA_MIB));
    await page.getByTestId('donate-quota').dispatchEvent('change');
    await page.getByTestId('donate-toggle').check();
    await page.waitForFunction(() => document.getElementById('donate-stats').dataset.reachable === 'yes', null, { timeout: 60_000 });
    tabs.push({ ctx, page });
  }
  check(true, `${TABS} tabs donate, each reachable through a relay`);

  // A fifth uploads a file.
  // Enough stripes that relay 0 holds a parity shard of some (one in three), for the
  // damaged-shard step.
  const data = randomBytes(16 << 20);
  const file = join(work, 'file.bin');
  writeFileSync(file, data);
  const up = await fresh();
  await up.page.goto(pageUrl);
  await up.page.getByTestId('file-input').setInputFiles(file);
  const shareLink = up.page.getByTestId('share-link');
  await shareLink.waitFor({ timeout: 240_000 });
  const link = await shareLink.inputValue();
  await up.ctx.close();
  // Relay 0 holds one shard of each stripe (n = 6 on six relays); nothing else was put.
  const stripes = await until('relay 0 to hold the file', 30_000, async () => (await json(relays[0], '/status')).shards);
  check(stripes >= 2, `the file is ${stripes} stripes, each with a shard on every relay`);

  // Relays offer the tabs the data shards: every tab one shard of every stripe.
  await until('every tab to hold a shard of every stripe', 180_000, async () => {
    const all = await Promise.all(tabs.map(t => stats(t.page)));
    return all.every(s => Number(s.shards) === stripes);
  });
  const offered = (await Promise.all(relays.map(r => json(r, '/status')))).reduce((n, s) => n + s.tabs.offered, 0);
  check(offered === TABS * stripes, `relays offered ${offered} shards, one per tab per stripe`);
  for (const t of tabs) {
    const s = await stats(t.page);
    check(Number(s.bytes) <= Number(s.quota), `a tab holds ${s.bytes} bytes within its quota of ${s.quota}`);
  }
  await tabs[0].page.locator('#donate').screenshot({ path: join(outDir, 'donate-1-holding.png') });

  // A donating tab reloaded keeps its shards and donates again by itself.
  const before = await stats(tabs[1].page);
  await tabs[1].page.reload();
  await tabs[1].page.waitForFunction(n => {
    const d = document.getElementById('donate-stats').dataset;
    return d.reachable === 'yes' && d.shards === n;
  }, before.shards, { timeout: 60_000 });
  check(await tabs[1].page.getByTestId('donate-toggle').isChecked(), 'a reloaded tab keeps its "donate" setting');
  check(true, `a reloaded tab holds its ${before.shards} shards again and is reachable`);

  // Five of six relays killed; relay 0 (it serves the page, and the tabs reserved on it) is
  // left, and the tabs announce everything there again. (Moving to another relay when a
  // tab's relay goes is tested natively: tests/tests/donation.rs.)
  const announced = await Promise.all(tabs.map(async t => Number((await stats(t.page)).announced)));
  for (const r of relays.slice(1)) process.kill(r.pid, 'SIGKILL');
  await until('every tab to be reachable through relay 0 and announce there again', 120_000, async () => {
    const all = await Promise.all(tabs.map(t => stats(t.page)));
    return all.every((s, i) => s.via === relays[0].peer && Number(s.announced) > announced[i]);
  });
  const status = await json(relays[0], '/status');
  check(status.tabs.reserved === TABS, `relay 0 holds ${status.tabs.reserved} reservations`);
  await tabs[2].page.locator('#donate').screenshot({ path: join(outDir, 'donate-2-moved.png') });

  const served = async () => (await Promise.all(tabs.map(t => stats(t.page)))).reduce((n, s) => n + Number(s.served), 0);
  const served0 = await served();
  const relayed0 = (await json(relays[0], '/status')).tabs.served_bytes;
  // Natively.
  const { addrs } = await json(relays[0], '/bootstrap');
  const tcp = addrs.find(a => a.includes('/tcp/') && !a.includes('/ws') && a.endsWith(relays[0].peer));
  const cap = decodeURIComponent(link.slice(link.indexOf('#') + 1));
  const out = join(work, 'native.bin');
  const got = spawnSync(kuraBin, ['get', cap, '--bootstrap', tcp, '-o', out], { encoding: 'utf8', timeout: 180_000 });
  check(got.status === 0, `kura get reads the file with one relay left (${got.stderr.trim().slice(0, 300)})`);
  check(sha256(readFileSync(out)) === sha256(data), 'kura get: the same SHA-256');
  // Relay 0 has one shard of each stripe: the tabs gave at least one more of each.
  const served1 = await until('the tabs to count what they served', 10_000, async () => {
    const n = await served();
    return n - served0 >= stripes && n;
  });
  check(served1 - served0 >= stripes, `the tabs served ${served1 - served0} shards to kura get`);

  // In a fresh page.
  const reader = await fresh();
  await reader.page.goto(link);
  await reader.page.waitForFunction(() => !document.querySelector('[data-testid=download]').disabled
    || !document.getElementById('error').hidden, null, { timeout: 120_000 });
  check(await reader.page.getByTestId('error').isHidden(), 'a fresh page opens the link with one relay left');
  const [dl] = await Promise.all([reader.page.waitForEvent('download', { timeout: 240_000 }),
    reader.page.getByTestId('download').click()]);
  const path = join(work, 'page.bin');
  await dl.saveAs(path);
  check(sha256(readFileSync(path)) === sha256(data), 'a fresh page downloads the same SHA-256, from the tabs');
  await reader.ctx.close();
  const served2 = await until('the tabs to count what they served the page', 10_000, async () => {
    const n = await served();
    return n - served1 >= stripes && n;
  });
  check(served2 > served1, `the tabs served ${served2 - served1} shards to the page`);
  // Relay 0 counted the bytes the tabs sent through its circuits, and spot-checked each tab
  // when it first announced there: every check verified.
  const relayed = (await json(relays[0], '/status')).tabs.served_bytes - relayed0;
  check(relayed >= (served2 - served0) * 1000, `relay 0 counted ${relayed} bytes the tabs served through it`);
  const metrics = await (await fetch(`${relays[0].http}metrics`)).text();
  const checks = kind => Number((metrics.match(new RegExp(`kura_tab_checks_total\\{kind="${kind}"\\} (\\d+)`)) || [])[1] || 0);
  check(checks('verified') >= 1 && checks('wrong') === 0,
    `relay 0 spot-checked the tabs: ${checks('verified')} verified, ${checks('wrong')} wrong`);
  for (const t of tabs) {
    const s = await stats(t.page);
    check(Number(s.bytes) <= Number(s.quota), `still within the quota (${s.bytes} of ${s.quota} bytes)`);
  }
  await tabs[0].page.locator('#donate').screenshot({ path: join(outDir, 'donate-3-served.png') });

  // A tab's stored shard damaged in OPFS, of a stripe where relay 0 holds a parity shard (so
  // relay 0 and the other three tabs still make k = 4). The tab checks it before serving,
  // drops it and never serves it; the read succeeds from the others.
  const token = readFileSync(join(work, 'net', 'relay-0', 'operator.token'), 'utf8').trim();
  const inv = await (await fetch(`${relays[0].http}inventory`, { headers: { Authorization: `Bearer ${token}` } })).json();
  const parityOn0 = Object.entries(inv.stripes).filter(([, idx]) => idx.every(i => i >= 4)).map(([st]) => st);
  const victim = tabs[3];
  const names = await victim.page.evaluate(async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('donated');
    const out = [];
    for await (const k of dir.keys()) out.push(k);
    return out;
  });
  const damaged = names.find(n => n.endsWith('.shard') && parityOn0.includes(n.split('.')[0]));
  check(damaged !== undefined, `relay 0 holds a parity shard of ${parityOn0.length} of ${stripes} stripes; tab 3 holds ${damaged}`);
  const held0 = Number((await stats(victim.page)).shards);
  await victim.page.evaluate(async name => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('donated');
    const fh = await dir.getFileHandle(name);
    const bytes = new Uint8Array(await (await fh.getFile()).arrayBuffer());
    bytes[100] ^= 0x5a;
    // The worker holds a file open only while it reads or writes it: try again if it does.
    for (let tries = 0; ; tries++) {
      try {
        const w = await fh.createWritable();
        await w.write(bytes);
        await w.close();
        return;
      } catch (e) {
        if (tries > 50) throw e;
        await new Promise(ok => setTimeout(ok, 100));
      }
    }
  }, damaged);
  const out2 = join(work, 'native-2.bin');
  const again = spawnSync(kuraBin, ['get', cap, '--bootstrap', tcp, '-o', out2], { encoding: 'utf8', timeout: 180_000 });
  check(again.status === 0 && sha256(readFileSync(out2)) === sha256(data),
    `with a tab's shard damaged in OPFS, kura get still reads the same SHA-256 (${again.stderr.trim().slice(0, 300)})`);
  await until('the damaged tab to drop the shard', 10_000, async () => {
    const s = await stats(victim.page);
    return s.corrupt === '1' && Number(s.shards) === held0 - 1;
  });
  check(true, 'the tab found the damage before serving, dropped the shard and never served it');

  // A tab closed: relay 0 no longer names it once its announcements expire.
  await victim.ctx.close();
  await until('relay 0 to forget the closed tab', (TAB_TTL + 30) * 1000,
    async () => (await json(relays[0], '/status')).tabs.known === TABS - 1);
  check(true, `relay 0 forgot the closed tab within ${TAB_TTL} s of its last announcement; it knows ${TABS - 1} tabs`);
  for (const t of tabs.slice(0, TABS - 1)) await t.ctx.close();
});
