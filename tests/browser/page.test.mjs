// Kura's page driven like a person would, in Debian's headless Chromium: upload a 30 MiB
// random file through the page, open its share link in a fresh profile, download it and
// compare SHA-256 (the download streams through the service worker); byte ranges read through
// it; an audio file and a video (VP8 WebM, encoded by Chromium itself) seek by range reads
// without reading the whole file; a health check proves every stripe whole; proofs of
// possession verify in the page's wasm (and are timed); two tabs' wallets (keys kept in
// each profile's IndexedDB) are funded by the devnet's test mint, pay each other and keep
// their keys over a reload, and an overdraft is refused in words; a tab pays for an upload
// (refused in words while its wallet is empty), keeps it in its files over a reload, renews
// and forgets it; the same download
// (and a check that sees two shards of each stripe missing) after killing 2 of the 6 relays; a page
// that stays open while every relay is killed and started again uploads once more (its
// client re-dials them); each kind of error a person can meet (too few relays, an
// unavailable file, a damaged link, an unreachable network) is shown in its own words, told
// apart by its kind, never by its text.
// Starts its own network with `kura devnet` (6 relays on 127.0.0.1) and stops it.
// Usage: node tests/browser/page.test.mjs KURA_BIN OUT_DIR (node's test runner: each step is
// a test of its own, so one failure does not hide the rest).
// Screenshots of each step go to OUT_DIR.
import { startDevnet as startDevnetIn, launchChromium, check, testSetup } from './devnet.mjs';
import { test, before, after } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { encodeInPage, mux, secondShown } from './webm.mjs';

const { kuraBin, outDir, work } = testSetup('page');

// Past this the process is stopped, whatever the tests are doing.
const deadline = setTimeout(() => {
  console.error('page test: timed out after 10 minutes');
  for (const c of [devnet, ...restarted]) if (c && c.exitCode === null) c.kill('SIGKILL');
  process.exit(1);
}, 10 * 60_000);
deadline.unref();
let devnet;
let browser;
const restarted = []; // relays started again by this test (not the devnet's children)
async function cleanup() {
  if (devnet && devnet.exitCode === null) devnet.kill('SIGTERM');
  for (const c of restarted) if (c.exitCode === null) c.kill('SIGTERM');
  if (browser) await browser.close().catch(() => {});
  await new Promise(ok => setTimeout(ok, 1500));
  rmSync(work, { recursive: true, force: true });
}

async function startDevnet() {
  const up = await startDevnetIn(kuraBin, join(work, 'net'));
  devnet = up.child;
  return up;
}

// Kills relay `r` (SIGKILL); returns how to start it again with the same identity, data
// directory and ports (its command line, with the ports it had actually bound instead of 0).
async function killRelay(r) {
  const cmd = readFileSync(`/proc/${r.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  const { addrs } = await (await fetch(`${r.http}bootstrap`)).json();
  const listen = addrs.filter(a => a.endsWith(`/p2p/${r.peer}`))
    .map(a => a.replace(/\/certhash\/[^/]+/g, '').replace(/\/p2p\/.*$/, ''));
  const args = [];
  for (let i = 1; i < cmd.length; i++) {
    if (cmd[i] === '--listen') { i++; continue; }
    if (cmd[i] === '--http') { args.push('--http', new URL(r.http).host); i++; continue; }
    args.push(cmd[i]);
  }
  for (const l of listen) args.push('--listen', l);
  process.kill(r.pid, 'SIGKILL');
  while (existsSync(`/proc/${r.pid}/cmdline`) && !readFileSync(`/proc/${r.pid}/stat`, 'utf8').includes(') Z')) {
    await new Promise(ok => setTimeout(ok, 20));
  }
  return { r, bin: cmd[0], args, listens: listen.length };
}

// Starts a killed relay again; resolves once it answers on HTTP.
async function startAgain({ r, bin, args }) {
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'ignore'] });
  restarted.push(child);
  r.pid = child.pid;
  for (let tries = 0; ; tries++) {
    if (child.exitCode !== null) throw new Error(`relay ${r.peer} did not start again (exit ${child.exitCode})`);
    try { if ((await fetch(`${r.http}health`)).ok) return; } catch { /* not up yet */ }
    if (tries > 600) throw new Error(`relay ${r.peer} did not answer within 60 s of its restart`);
    await new Promise(ok => setTimeout(ok, 100));
  }
}

const sha256 = buf => createHash('sha256').update(buf).digest('hex');

async function fresh() {
  // A new context is a fresh profile: no storage, cache or cookies shared with the others.
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 800 } });
  const page = await ctx.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`  [browser] ${m.text()}`); });
  page.on('pageerror', e => console.log(`  [page error] ${e.message}`));
  return { ctx, page };
}

// Uploads `file` through the page at `pageUrl` in a fresh profile (after `beforeUpload(page)`, if given);
// returns its share link.
async function shareThroughPage(pageUrl, file, beforeUpload) {
  const { ctx, page } = await fresh();
  await page.goto(pageUrl);
  if (beforeUpload) await beforeUpload(page);
  await page.getByTestId('file-input').setInputFiles(file);
  const link = page.getByTestId('share-link');
  await link.waitFor({ timeout: 240_000 });
  const value = await link.inputValue();
  await ctx.close();
  return value;
}

// Opens `link` in a fresh profile and shows its preview.
async function openPreview(link) {
  const { ctx, page } = await fresh();
  await page.goto(link);
  await page.waitForFunction(() => !document.getElementById('show').disabled, null, { timeout: 120_000 });
  await page.locator('#show').click();
  return { ctx, page };
}

async function downloadViaLink(link, tag, beforeDownload) {
  const { ctx, page } = await fresh();
  await page.goto(link);
  await page.getByTestId('download').waitFor({ state: 'visible' });
  await page.waitForFunction(() => !document.querySelector('[data-testid=download]').disabled
    || !document.getElementById('error').hidden, null, { timeout: 120_000 });
  const err = await page.getByTestId('error').isVisible();
  if (err) throw new Error(`opening the link failed: ${await page.getByTestId('error').textContent()}`);
  await page.screenshot({ path: join(outDir, `${tag}-1-opened.png`) });
  if (beforeDownload) await beforeDownload(page);
  const readsBefore = await page.evaluate(() => kuraStreamReads.length);
  const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 240_000 }), page.getByTestId('download').click()]);
  const path = join(work, `${tag}.bin`);
  await dl.saveAs(path);
  await page.screenshot({ path: join(outDir, `${tag}-2-downloaded.png`) });
  const reads = await page.evaluate(() => kuraStreamReads.length);
  check(reads > readsBefore, `${tag}: the download streamed through the service worker (${reads - readsBefore} range reads)`);
  await ctx.close();
  return readFileSync(path);
}

/** Clicks "Check health" on an opened link and waits for the result. */
async function checkHealth(page) {
  await page.waitForFunction(() => !document.getElementById('check').disabled, null, { timeout: 60_000 });
  await page.getByTestId('check').click();
  await page.waitForFunction(() => document.getElementById('health').dataset.notWhole !== undefined
    || !document.getElementById('error').hidden, null, { timeout: 120_000 });
  const box = page.getByTestId('health');
  return { text: await box.textContent(), notWhole: await box.getAttribute('data-not-whole') };
}

// What the steps share: the network, the first file and its link.
const net = {};

/** The error box of `page` once shown: its words and the kind the page told them by. */
async function shownError(page, timeout) {
  await page.getByTestId('error').waitFor({ state: 'visible', timeout });
  const box = page.getByTestId('error');
  return { text: await box.textContent(), kind: await box.getAttribute('data-kind') };
}

before(async () => {
  const { page: pageUrl, relays } = await startDevnet();
  console.log(`devnet up, page ${pageUrl}`);
  browser = await launchChromium();
  const data = randomBytes(30 << 20);
  const file = join(work, 'random-30MiB.bin');
  writeFileSync(file, data);
  Object.assign(net, { pageUrl, relays, data, file });
});

after(cleanup);

test('a 30 MiB file uploads through the page and its link downloads it, with byte ranges', async () => {
  const { pageUrl, data, file } = net;
  // Upload through the page.
  const { ctx, page } = await fresh();
  await page.goto(pageUrl);
  await page.waitForFunction(() => document.getElementById('net').textContent.startsWith('Connected'), null, { timeout: 60_000 });
  await page.screenshot({ path: join(outDir, 'upload-1-connected.png') });
  await page.getByTestId('file-input').setInputFiles(file);
  await page.getByTestId('progress').first().waitFor();
  await page.screenshot({ path: join(outDir, 'upload-2-progress.png') });
  const shareLink = page.getByTestId('share-link');
  await shareLink.waitFor({ timeout: 240_000 });
  const link = await shareLink.inputValue();
  await page.screenshot({ path: join(outDir, 'upload-3-shared.png') });
  check(link.startsWith(`${pageUrl.replace(/\/$/, '')}/#kura1`), `share link carries the capability in its fragment (${link.slice(0, 60)}…)`);
  const status = await page.getByTestId('progress').first().textContent();
  console.log(`  upload: ${status}`);
  // The width follows the network's size: six relays, found whole, keep 4+2.
  const width = await page.getByTestId('width').first().textContent();
  check(width === 'stripes of 4+2 shards (a network of about 6 relays)',
    `the page says how wide its stripes are, from the relays it counted: "${width}"`);
  await ctx.close();

  // Download in a fresh profile, after reading byte ranges through the service worker.
  const back = await downloadViaLink(link, 'download', async p => {
    const ranged = await p.evaluate(async () => {
      const get = async range => {
        const r = await fetch(kuraStreamUrl, { headers: { Range: range } });
        return { status: r.status, range: r.headers.get('content-range'), bytes: Array.from(new Uint8Array(await r.arrayBuffer())) };
      };
      return [await get('bytes=1000000-1000099'), await get('bytes=-10'), await get(`bytes=${40 << 20}-`)];
    });
    const [mid, tail, past] = ranged;
    check(mid.status === 206 && mid.range === `bytes 1000000-1000099/${data.length}`
      && Buffer.from(mid.bytes).equals(data.subarray(1000000, 1000100)), 'a byte range reads the right 100 bytes (206)');
    check(tail.status === 206 && Buffer.from(tail.bytes).equals(data.subarray(data.length - 10)), 'a suffix range reads the last 10 bytes');
    check(past.status === 416, 'a range past the end is refused (416)');
    const health = await checkHealth(p);
    check(/^Healthy: all \d+ stripes proven whole/.test(health.text) && health.notWhole === '0',
      `the health check proves every stripe whole (${health.text})`);
  });
  check(back.length === data.length && sha256(back) === sha256(data), 'downloaded file has the same SHA-256');
  net.link = link;
});

test("the operator's page shows what relay 0 stores and the audits it answered", async () => {
  const { pageUrl } = net;
  const token = readFileSync(join(work, 'net', 'relay-0', 'operator.token'), 'utf8').trim();
  const { ctx, page } = await fresh();
  await page.goto(`${pageUrl.replace(/\/$/, '')}/operator`);
  // Without the token it says where to find it.
  await page.getByTestId('operator-error').waitFor({ timeout: 30_000 });
  check((await page.getByTestId('operator-error').textContent()).includes('operator.token'), 'the page asks for the operator token');
  await page.goto(`${pageUrl.replace(/\/$/, '')}/operator#token=${token}`);
  await page.reload();
  await page.waitForFunction(() => document.querySelector('[data-testid="operator-shards"]').textContent !== '–', null, { timeout: 30_000 });
  const shards = Number(await page.getByTestId('operator-shards').textContent());
  check(shards > 0, `relay 0 holds shards of the upload (${shards})`);
  check(await page.getByTestId('operator-error').isHidden(), 'the operator token opens it');
  check((await page.getByTestId('operator-earnings').textContent()).includes('rewards.key'), 'it says where the rewards go');
  check(/^\d+$/.test(await page.getByTestId('operator-earned').textContent()), 'it shows the credits earned');
  await page.screenshot({ path: join(outDir, 'operator.png'), fullPage: true });
  await ctx.close();
});

test('proofs of possession verify in Chromium, timed', async () => {
  // The page's own wasm, as a relay proving and an auditor verifying would run it.
  const { ctx, page } = await fresh();
  const origin = new URL(net.pageUrl).origin;
  await page.goto(`${origin}/pkg/kura_client.js`);
  const r = await page.evaluate(async origin => {
    const m = await import(`${origin}/pkg/kura_client.js`);
    await m.default();
    return m.proofBench(300);
  }, origin);
  console.log(`  proofs in Chromium: ${r.proofBytes} B each, prove ${r.proveMicros.toFixed(1)} µs, ` +
    `verify ${r.verifyMicros.toFixed(1)} µs (means of ${r.runs}; native: cargo run --release -p kura-core --example proof_bench)`);
  check(r.runs === 300 && r.verified === 300, `all ${r.runs} proofs verify in Chromium (${r.verified})`);
  await ctx.close();
});

test('two tabs hold wallets, pay each other, and keep their keys over a reload', async () => {
  const { pageUrl } = net;
  const open = async () => {
    const { ctx, page } = await fresh();
    await page.goto(pageUrl);
    await page.waitForFunction(() => /^[0-9a-f]{64}$/.test(document.getElementById('wallet-address').textContent), null, { timeout: 60_000 });
    return { ctx, page, account: await page.getByTestId('wallet-address').textContent() };
  };
  /** The balance the page shows, once it shows `want` (after pressing Refresh). */
  const balanceIs = async (page, want) => {
    await page.getByTestId('wallet-refresh').click();
    await page.waitForFunction(w => document.getElementById('wallet-balance').textContent === w, want, { timeout: 60_000 });
    return want;
  };
  const a = await open();
  const b = await open();
  check(a.account !== b.account, `each profile has its own account (${a.account.slice(0, 12)}…, ${b.account.slice(0, 12)}…)`);
  await balanceIs(a.page, '0');
  // The devnet's test mint funds the first tab's account (the CLI, as a person would).
  const mintKey = join(work, 'net', 'mint.key');
  const funded = spawnSync(kuraBin, ['wallet', 'send', a.account, '500', '--key', mintKey, '--bootstrap', pageUrl], { encoding: 'utf8' });
  check(funded.status === 0 && /^[0-9a-f]{64}$/.test(funded.stdout.trim()), `the test mint funds the tab's account (${funded.stderr.trim() || funded.stdout.trim().slice(0, 16)})`);
  await balanceIs(a.page, '500');
  // The first tab pays the second through its page.
  await a.page.getByTestId('wallet-to').fill(b.account);
  await a.page.getByTestId('wallet-amount').fill('120');
  await a.page.getByTestId('wallet-send').click();
  await a.page.waitForFunction(() => document.getElementById('wallet-result').dataset.certificate, null, { timeout: 60_000 });
  const cert = await a.page.getByTestId('wallet-result').getAttribute('data-certificate');
  check(/^[0-9a-f]{64}$/.test(cert), `a transfer from the page prints its certificate id (${cert.slice(0, 16)}…)`);
  await a.page.screenshot({ path: join(outDir, 'wallet-1-sent.png') });
  check(await balanceIs(a.page, '380') && await balanceIs(b.page, '120'), 'balances after the transfer: 380 and 120');
  // The key survives a reload: same account, same balance.
  await a.page.reload();
  await a.page.waitForFunction(() => /^[0-9a-f]{64}$/.test(document.getElementById('wallet-address').textContent), null, { timeout: 60_000 });
  check(await a.page.getByTestId('wallet-address').textContent() === a.account, 'the reloaded tab has the same account (its key kept in IndexedDB)');
  await balanceIs(a.page, '380');
  // Two tabs of one profile share its wallet: sends started in both at once take turns
  // (two transfers signed for one slot would get the account refused for good).
  const a2 = await a.ctx.newPage();
  await a2.goto(pageUrl);
  await a2.waitForFunction(acct => document.getElementById('wallet-address').textContent === acct, a.account, { timeout: 60_000 });
  const both = /** @type {const} */ ([[a.page, '10'], [a2, '20']]);
  for (const [p, amount] of both) {
    await p.getByTestId('wallet-to').fill(b.account);
    await p.getByTestId('wallet-amount').fill(amount);
  }
  // Both pressed at one instant of the machine's clock (the tabs share it).
  const at = Date.now() + 1000;
  await Promise.all(both.map(([p]) => p.evaluate(at => new Promise(pressed => setTimeout(() => {
    document.getElementById('wallet-send').click();
    pressed(undefined);
  }, at - Date.now())), at)));
  const sent = await Promise.all(both.map(async ([p]) => {
    await p.waitForFunction(() => document.getElementById('wallet-result').dataset.certificate
      || document.querySelector('[data-testid=error]:not([hidden])'), null, { timeout: 60_000 });
    return p.getByTestId('wallet-result').getAttribute('data-certificate');
  }));
  check(sent.every(c => /^[0-9a-f]{64}$/.test(c ?? '')), `two tabs of one wallet send at once, both land (${sent.map(c => c?.slice(0, 8)).join(', ')})`);
  check(await balanceIs(a.page, '350') && await balanceIs(b.page, '150'), 'balances after both: 350 and 150');
  await a2.close();
  // More than the balance is refused in words.
  await a.page.getByTestId('wallet-to').fill(b.account);
  await a.page.getByTestId('wallet-amount').fill('1000');
  await a.page.getByTestId('wallet-send').click();
  const shown = await shownError(a.page, 60_000);
  check(shown.kind === 'refused' && /does not cover/.test(shown.text), `an overdraft is refused in words (${shown.kind}): "${shown.text.slice(0, 90)}…"`);
  await balanceIs(a.page, '350');
  await a.ctx.close();
  await b.ctx.close();
});

test('a tab pays for an upload, keeps it in its files over a reload, renews and forgets it', async () => {
  const { pageUrl } = net;
  const { ctx, page } = await fresh();
  await page.goto(pageUrl);
  await page.waitForFunction(() => /^[0-9a-f]{64}$/.test(document.getElementById('wallet-address').textContent), null, { timeout: 60_000 });
  const account = await page.getByTestId('wallet-address').textContent();
  const progressText = () => page.evaluate(() => [...document.querySelectorAll('[data-testid=progress]')].map(e => e.textContent).join(' | '));
  const balanceIs = async want => {
    await page.getByTestId('wallet-refresh').click();
    await page.waitForFunction(w => document.getElementById('wallet-balance').textContent === w, want, { timeout: 60_000 });
  };
  await page.waitForFunction(() => document.querySelector('[data-testid=files-list]').textContent.includes('Nothing yet'), null, { timeout: 60_000 });
  // With nothing in the wallet a paid upload is refused in words, before anything is sent.
  await page.getByTestId('pay').check();
  const first = join(work, 'paid-1.bin');
  writeFileSync(first, randomBytes(3 << 20));
  await page.getByTestId('file-input').setInputFiles(first);
  await page.waitForFunction(() => /refused/.test([...document.querySelectorAll('[data-testid=progress]')].map(e => e.textContent).join(' ')), null, { timeout: 60_000 });
  const refusal = await progressText();
  check(/costs \d+ credits for 30 days of storage and the wallet holds 0/.test(refusal), `an upload the wallet cannot pay is refused in words: "${refusal.slice(0, 100)}"`);
  const quoted = Number(refusal.match(/costs (\d+) credits/)[1]);
  // Funded by the devnet's test mint, the upload pays exactly what was quoted.
  const mintKey = join(work, 'net', 'mint.key');
  const funded = spawnSync(kuraBin, ['wallet', 'send', account, '100000', '--key', mintKey, '--bootstrap', pageUrl], { encoding: 'utf8' });
  check(funded.status === 0, `the test mint funds the tab (${funded.stderr.trim().slice(0, 80)})`);
  await balanceIs('100000');
  const second = join(work, 'paid-2.bin');
  writeFileSync(second, randomBytes(3 << 20));
  await page.getByTestId('file-input').setInputFiles(second);
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid=cost]')].some(e => /^paid \d+/.test(e.textContent)), null, { timeout: 120_000 });
  const paidText = await page.evaluate(() => [...document.querySelectorAll('[data-testid=cost]')].map(e => e.textContent).find(t => /^paid/.test(t)));
  const cost = Number(paidText.match(/^paid (\d+)/)[1]);
  check(cost === quoted && cost > 0, `the upload cost what was quoted before it started (${cost} credits)`);
  await balanceIs(String(100000 - cost));
  check(await page.getByTestId('wallet-spent').textContent() === String(cost), 'the wallet shows what uploads spent');
  check(await page.getByTestId('wallet-earned').textContent() === '0', 'and what this tab earned (nothing: this tab does not donate)');
  const row = page.getByTestId('file-row').filter({ hasText: 'paid-2.bin' });
  await row.waitFor({ timeout: 60_000 });
  check(/paid \d+ credits, kept until/.test(await row.textContent()), 'the paid upload is in your files, with its expiry');
  // Kept over a reload (sealed in IndexedDB under the wallet key).
  await page.reload();
  await page.getByTestId('file-row').filter({ hasText: 'paid-2.bin' }).waitFor({ timeout: 60_000 });
  const link = await page.getByTestId('file-row').filter({ hasText: 'paid-2.bin' }).locator('input').inputValue();
  check(link.startsWith(`${new URL(pageUrl).origin}/#kura1`), 'its link is kept across a reload');
  // Renewed: paid again, the same link.
  await page.getByTestId('file-row').filter({ hasText: 'paid-2.bin' }).getByTestId('file-renew').click();
  await balanceIs(String(100000 - 2 * cost));
  await page.waitForFunction(c => document.getElementById('wallet-spent').textContent === String(c), 2 * cost, { timeout: 60_000 });
  check(true, `renewed for ${cost} more credits`);
  // A free upload is listed with the end of its free life (relays drop it then unless renewed).
  await page.getByTestId('pay').uncheck();
  const gift = join(work, 'free-1.bin');
  writeFileSync(gift, randomBytes(64 << 10));
  await page.getByTestId('file-input').setInputFiles(gift);
  const freeRow = page.getByTestId('file-row').filter({ hasText: 'free-1.bin' });
  await freeRow.waitFor({ timeout: 60_000 });
  const freeText = await freeRow.textContent();
  check(/free, kept until about/.test(freeText), `a free upload is listed with the end of its free life: "${freeText.slice(0, 90)}"`);
  await page.screenshot({ path: join(outDir, 'wallet-2-paid.png'), fullPage: true });
  await freeRow.getByTestId('file-forget').click();
  // Forgotten: gone from the list, and still gone after a reload.
  await page.getByTestId('file-row').filter({ hasText: 'paid-2.bin' }).getByTestId('file-forget').click();
  await page.waitForFunction(() => !document.querySelector('[data-testid=files-list]').textContent.includes('paid-2.bin'), null, { timeout: 30_000 });
  await page.reload();
  await page.waitForFunction(() => document.querySelector('[data-testid=files-list]').textContent.includes('Nothing yet'), null, { timeout: 60_000 });
  check(true, 'a forgotten file stays forgotten over a reload');
  await ctx.close();
});

test('audio seeks by range reads', async () => {
  const { pageUrl } = net;
  // Audio seeks by range reads: a 2-minute WAV (23 MB) plays from 100 s without reading it all.
  const seconds = 120;
  const pcm = randomBytes(seconds * 48000 * 4);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0); header.writeUInt32LE(36 + pcm.length, 4); header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16); header.writeUInt16LE(1, 20); header.writeUInt16LE(2, 22);
  header.writeUInt32LE(48000, 24); header.writeUInt32LE(48000 * 4, 28); header.writeUInt16LE(4, 32);
  header.writeUInt16LE(16, 34); header.write('data', 36); header.writeUInt32LE(pcm.length, 40);
  const wav = Buffer.concat([header, pcm]);
  const wavFile = join(work, 'noise.wav');
  writeFileSync(wavFile, wav);
  const { ctx: ca, page: pa } = await openPreview(await shareThroughPage(pageUrl, wavFile));
  const seek = await pa.evaluate(async () => {
    const a = document.querySelector('#preview audio');
    if (a.readyState < 1) await new Promise((ok, no) => { a.onloadedmetadata = ok; a.onerror = () => no(new Error(`audio error ${a.error && a.error.code}`)); });
    const before = kuraStreamReads.length;
    a.currentTime = 100;
    await new Promise(ok => { a.onseeked = ok; });
    if (a.readyState < 2) await new Promise(ok => { a.oncanplay = ok; });
    return { duration: a.duration, time: a.currentTime, reads: kuraStreamReads, after: kuraStreamReads.slice(before) };
  });
  await pa.screenshot({ path: join(outDir, 'audio-seeked.png') });
  await ca.close();
  const readTotal = seek.reads.reduce((n, r) => n + r.length, 0);
  check(Math.abs(seek.duration - seconds) < 1 && Math.abs(seek.time - 100) < 1, `audio seeked to ${seek.time.toFixed(1)} s of ${seek.duration.toFixed(1)} s`);
  check(seek.after.some(r => r.offset >= 0.8 * wav.length), `the seek read near its position (offsets ${seek.after.map(r => r.offset).join(', ')})`);
  check(readTotal < wav.length / 2, `only ${(readTotal / 1e6).toFixed(1)} MB of the ${(wav.length / 1e6).toFixed(1)} MB file were read`);
});

test('video seeks by range reads', async () => {
  const { pageUrl } = net;
  // Video seeks by range reads: a 60-second VP8 WebM that Chromium itself encodes (WebCodecs)
  // plays from 45 s, showing the frame of that second, without reading the whole file.
  const shape = { seconds: 60, fps: 10, width: 320, height: 240, bitrate: 2_000_000 };
  const videoFile = join(work, 'clip.webm');
  let video;
  const videoLink = await shareThroughPage(pageUrl, videoFile, async (pv) => {
    // Encoded in the upload page itself (a secure context), muxed here.
    video = mux(await pv.evaluate(`(${encodeInPage})(${JSON.stringify(shape)})`), { ...shape, durationMs: shape.seconds * 1000 });
    writeFileSync(videoFile, video.file);
  });
  const { ctx: cw, page: pw } = await openPreview(videoLink);
  const target = 45;
  await pw.evaluate(`window.kuraSecondShown = ${secondShown}`);
  const played = await pw.evaluate(async (at) => {
    const v = document.querySelector('#preview video');
    if (v.readyState < 1) await new Promise((ok, no) => { v.onloadedmetadata = ok; v.onerror = () => no(new Error(`video error ${v.error && v.error.code}`)); });
    const before = kuraStreamReads.length;
    v.currentTime = at + 0.5;
    await new Promise(ok => { v.onseeked = ok; });
    if (v.readyState < 2) await new Promise(ok => { v.oncanplay = ok; });
    return { duration: v.duration, time: v.currentTime, width: v.videoWidth, height: v.videoHeight, second: kuraSecondShown(v),
      reads: kuraStreamReads, after: kuraStreamReads.slice(before) };
  }, target);
  await pw.screenshot({ path: join(outDir, 'video-seeked.png') });
  await cw.close();
  const cluster = video.clusters.find(c => c.ms === target * 1000);
  const videoRead = played.reads.reduce((n, r) => n + r.length, 0);
  check(played.width === shape.width && played.height === shape.height && Math.abs(played.duration - shape.seconds) < 1
    && Math.abs(played.time - target - 0.5) < 1, `video (${played.width}x${played.height}, ${played.duration.toFixed(1)} s) seeked to ${played.time.toFixed(1)} s`);
  check(played.second === target, `the frame shown after the seek is from second ${played.second} (expected ${target})`);
  check(cluster && played.after.some(r => r.offset <= cluster.offset && cluster.offset < r.offset + r.length),
    `the seek read the cluster at byte ${cluster && cluster.offset} (reads after it: ${played.after.map(r => `${r.offset}+${r.length}`).join(', ')})`);
  check(videoRead < video.file.length / 2, `only ${(videoRead / 1e6).toFixed(1)} MB of the ${(video.file.length / 1e6).toFixed(1)} MB video were read`);
});

test('an open page uploads again after every relay restarted; meanwhile it says too few relays', async () => {
  const { pageUrl, relays } = net;
  // Reconnect: a page stays open while every relay is killed; an upload meanwhile fails in
  // words; the relays start again (same identity, data and ports) and the same page's next
  // upload must find and re-dial them.
  const { ctx: cr, page: pr } = await fresh();
  await pr.goto(pageUrl);
  await pr.waitForFunction(() => document.getElementById('net').textContent.startsWith('Connected'), null, { timeout: 60_000 });
  const before = join(work, 'before-restart.bin');
  writeFileSync(before, randomBytes(3 << 20));
  await pr.getByTestId('file-input').setInputFiles(before);
  await pr.getByTestId('share-link').first().waitFor({ timeout: 240_000 });
  const killed = [];
  for (const r of relays) killed.push(await killRelay(r));
  const during = join(work, 'during-outage.bin');
  writeFileSync(during, randomBytes(1 << 20));
  await pr.getByTestId('file-input').setInputFiles(during);
  const outage = await shownError(pr, 240_000);
  await pr.screenshot({ path: join(outDir, 'all-relays-down.png') });
  check(outage.kind === 'too-few-relays' && /^Too few relays are reachable/.test(outage.text),
    `with every relay down an upload fails in words (${outage.kind}): "${outage.text.slice(0, 90)}…"`);
  await pr.evaluate(() => { document.getElementById('error').hidden = true; });
  for (const k of killed) await startAgain(k);
  const listens = killed.reduce((n, k) => n + k.listens, 0);
  check(listens === 4 * relays.length, `all ${relays.length} relays started again on their ports (${listens} listen addresses)`);
  const after = randomBytes(3 << 20);
  const afterFile = join(work, 'after-restart.bin');
  writeFileSync(afterFile, after);
  await pr.getByTestId('file-input').setInputFiles(afterFile);
  await pr.waitForFunction(() => document.querySelectorAll('[data-testid=share-link]').length === 2
    || !document.getElementById('error').hidden, null, { timeout: 240_000 });
  if (await pr.getByTestId('error').isVisible()) {
    throw new Error(`upload after the restart failed: ${await pr.getByTestId('error').textContent()}`);
  }
  await pr.screenshot({ path: join(outDir, 'reconnected-upload.png') });
  const afterLink = await pr.getByTestId('share-link').first().inputValue(); // newest first
  await cr.close();
  const afterBack = await downloadViaLink(afterLink, 'reconnected');
  check(sha256(afterBack) === sha256(after), 'the same open page uploaded again after every relay restarted (re-dialled), same SHA-256');
});

test('with 2 of 6 relays killed the link still downloads', async () => {
  const { relays, data, link } = net;
  // Kill 2 of the 6 relays (not relay 0, which serves the page), then again.
  for (const r of [relays[2], relays[4]]) process.kill(r.pid, 'SIGKILL');
  // Before the relays' grace is over (no repair yet), the check proves two shards missing.
  const back2 = await downloadViaLink(link, 'two-dead', async p => {
    const health = await checkHealth(p);
    check(Number(health.notWhole) > 0 && /weakest 4 of 6 shards proven, 4 needed/.test(health.text),
      `the health check sees the two dead relays' shards missing (${health.text})`);
  });
  check(back2.length === data.length && sha256(back2) === sha256(data), 'with 2 of 6 relays killed, same SHA-256');
});

test('a damaged link says so, and the page fits a phone', async () => {
  const { link } = net;
  // A damaged link says so.
  const { ctx: c3, page: p3 } = await fresh();
  const i = link.indexOf('#kura1') + 20;
  const damaged = link.slice(0, i) + (link[i] === 'a' ? 'b' : 'a') + link.slice(i + 1);
  await p3.goto(damaged);
  const shown = await shownError(p3, 60_000);
  await p3.screenshot({ path: join(outDir, 'damaged-link.png') });
  check(shown.kind === 'damaged-link' && /^This link is damaged/.test(shown.text),
    `a damaged link says so (${shown.kind}): "${shown.text.slice(0, 80)}…"`);
  // At phone width the page still fits.
  await p3.setViewportSize({ width: 375, height: 740 });
  await p3.goto(link);
  await p3.getByTestId('download').waitFor({ state: 'visible' });
  await p3.screenshot({ path: join(outDir, 'phone-width.png') });
  const overflow = await p3.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, 'no horizontal overflow at 375 px');
  await c3.close();
});

test('an unreachable network says so', async () => {
  // The page's bootstrap document names one address where nothing listens.
  const { ctx, page } = await fresh();
  await page.route('**/bootstrap', route => route.fulfill({
    json: { peer_id: net.relays[0].peer, addrs: [`/ip4/127.0.0.1/tcp/9/ws/p2p/${net.relays[0].peer}`] },
  }));
  await page.goto(net.pageUrl);
  const shown = await shownError(page, 120_000);
  await page.screenshot({ path: join(outDir, 'unreachable.png') });
  check(shown.kind === 'unreachable' && /^No relay is reachable/.test(shown.text),
    `no relay reachable says so (${shown.kind}): "${shown.text.slice(0, 80)}…"`);
  await ctx.close();
});

test('an unavailable file says so', async () => {
  // Three of six relays left (relays 2 and 4 were killed above): fewer than the k = 4
  // pieces of every stripe.
  process.kill(net.relays[1].pid, 'SIGKILL');
  const { ctx, page } = await fresh();
  await page.goto(net.link);
  const shown = await shownError(page, 240_000);
  await page.screenshot({ path: join(outDir, 'unavailable.png') });
  check(shown.kind === 'unavailable' && /^This file is unavailable/.test(shown.text),
    `a file with too few pieces reachable says so (${shown.kind}): "${shown.text.slice(0, 100)}…"`);
  await ctx.close();
});
