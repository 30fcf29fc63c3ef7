// A donating tab earns, and pays for an upload with what it earned, in Debian's headless
// Chromium against a `kura devnet` of six relays with 6-second epochs, storage at 10,000,000
// credits per GiB of shards per epoch, and each tab spot-checked at most once a second. An
// uploader funded by the devnet's test mint stores a paid file with `kura put` (the relays
// holding it earn each epoch); one tab, funded by nobody, turns "donate" on, is offered shards
// of that file, and is paid by the relays out of their rewards: the wallet panel's "earned by
// this tab" counts those payments (never more than the relays say they paid tabs), and the
// tab then uploads a file paid from its earnings alone. Screenshots of the wallet panel go to
// OUT_DIR.
// Usage: node tests/browser/earn.test.mjs KURA_BIN OUT_DIR
import { test, before, after } from 'node:test';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDevnet, launchChromium, check, until, testSetup } from './devnet.mjs';

const { kuraBin, outDir, work } = testSetup('earn');

const EPOCH = 6;
const PRICE = 10_000_000;
let devnet;
let browser;
const deadline = setTimeout(() => {
  console.error('earn test: timed out after 8 minutes');
  if (devnet && devnet.exitCode === null) devnet.kill('SIGKILL');
  process.exit(1);
}, 8 * 60_000);
deadline.unref();


/** The sum over live relays of a counter in /metrics. */
async function metricSum(relays, name) {
  let sum = 0;
  for (const r of relays) {
    const text = await (await fetch(`${r.http}metrics`)).text();
    const m = text.match(new RegExp(`^${name} (\\d+)`, 'm'));
    if (m) sum += Number(m[1]);
  }
  return sum;
}

/** Runs `f`; when it throws, first prints what each relay's epochs did (its farming status
 * and its last lines about claims, rewards and tab payments), so a failed wait says why. */
async function explained(relays, f) {
  try {
    return await f();
  } catch (e) {
    for (const [i, r] of relays.entries()) {
      const status = await fetch(`${r.http}status`).then(x => x.json()).catch(() => ({}));
      console.log(`# relay ${i}: ${JSON.stringify(status.farming?.earnings ?? null)}`);
      const log = readFileSync(join(work, 'net', `relay-${i}.log`), 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
      const lines = log.split('\n').filter(l => /epoch|claim|deposit|donating tab|draw/.test(l));
      for (const l of lines.slice(-12)) console.log(`#   ${l.slice(0, 240)}`);
    }
    throw e;
  }
}

const kura = (...args) => spawnSync(kuraBin, args, { encoding: 'utf8', timeout: 240_000 });
const net = {};

before(async () => {
  const up = await startDevnet(kuraBin, join(work, 'net'), 6,
    ['--epoch', String(EPOCH), '--price', String(PRICE), '--tab-check', '1', '--tab-ttl', '15']);
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

test('a donating tab earns from the relays and pays for an upload with it', async () => {
  const { page: pageUrl, relays } = net;
  // An uploader, funded by the devnet's test mint, stores a paid file: the relays earn.
  const key = join(work, 'uploader.key');
  const made = kura('wallet', 'new', '--key', key);
  check(made.status === 0, `a wallet for the uploader (${made.stderr.trim()})`);
  const funded = kura('wallet', 'send', made.stdout.trim(), '100000000', '--key', join(work, 'net', 'mint.key'), '--bootstrap', pageUrl);
  check(funded.status === 0, `the test mint funds the uploader (${funded.stderr.trim()})`);
  const file = join(work, 'file.bin');
  writeFileSync(file, randomBytes(12 << 20));
  const put = kura('put', file, '--bootstrap', pageUrl, '--key', key, '--epochs', '50', '--epoch', String(EPOCH),
    '--price', String(PRICE), '--files', join(work, 'files.jsonl'));
  check(put.status === 0, `a paid kura put (${put.stderr.trim().split('\n').pop()})`);

  // A tab nobody funds turns "donate" on.
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 1000 } });
  const page = await ctx.newPage();
  page.on('console', m => { if (m.type() === 'error') console.log(`  [browser] ${m.text()}`); });
  page.on('pageerror', e => console.log(`  [page error] ${e.message}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => /^[0-9a-f]{64}$/.test(document.getElementById('wallet-address').textContent), null, { timeout: 60_000 });
  await page.waitForFunction(() => document.getElementById('wallet-balance').textContent === '0', null, { timeout: 60_000 });
  check(await page.getByTestId('wallet-earned').textContent() === '0', 'a new tab holds nothing and has earned nothing');
  await page.getByTestId('donate-quota').fill('64');
  await page.getByTestId('donate-quota').dispatchEvent('change');
  await page.getByTestId('donate-toggle').check();
  const shards = await until('the tab to hold shards', 120_000, async () => {
    const n = Number(await page.evaluate(() => document.getElementById('donate-stats').dataset.shards));
    return n > 0 && n;
  });
  check(shards > 0, `the donating tab holds ${shards} shards`);

  // Relays pay it each epoch; the page looks at its wallet once an epoch while donating.
  const earned = await explained(relays, () => until('the page to count what the tab earned', 180_000, async () => {
    const e = BigInt(await page.getByTestId('wallet-earned').textContent());
    return e > 0n && e;
  }));
  // A relay counts a payment once its transfer is applied everywhere, a moment after the
  // tab's replicas hold it: waited for, not raced.
  const paidTabs = await until('the relays to count what they paid', 30_000, async () => {
    const p = await metricSum(relays, 'kura_tab_credits_paid_total');
    return BigInt(p) >= earned && p;
  });
  check(earned <= BigInt(paidTabs), `the tab counts ${earned} earned; the relays paid tabs ${paidTabs}`);
  await page.locator('#wallet').screenshot({ path: join(outDir, 'earn-1-earned.png') });

  // An upload paid from those earnings alone (the tab was funded by nobody else). A batch
  // pays for whole stripes (a small file's data stripe and its manifest's, each at the
  // largest stripe's shard bytes), so the term is one epoch (0.00005 days: 4.3 s, rounded up
  // to one 6 s epoch), which under a minute of donating pays for.
  await page.getByTestId('pay').check();
  await page.getByTestId('pay-days').fill('0.00005');
  const small = join(work, 'small.bin');
  writeFileSync(small, randomBytes(16 << 10));
  const farming = (await (await fetch(`${relays[0].http}status`)).json()).farming;
  check(Number(farming.price) === PRICE && Number(farming.epoch_secs) === EPOCH, `the relays' price and epoch: ${JSON.stringify(farming)}`);
  // Waits for the balance to cover a bound of the cost (two stripes of 1,572,888 shard bytes
  // for one epoch at the price: 29,299), then uploads; the page says what it cost and pays it.
  const balance = await explained(relays, () => until('the earnings to cover the upload', 180_000, async () => {
    await page.getByTestId('wallet-refresh').click();
    const b = BigInt(await page.getByTestId('wallet-balance').textContent().catch(() => '0'));
    return b >= 40_000n && b;
  }));
  await page.getByTestId('file-input').setInputFiles(small);
  await page.waitForFunction(() => document.querySelector('[data-testid=share-link]')
    || !document.getElementById('error').hidden, null, { timeout: 120_000 });
  check(await page.getByTestId('error').isHidden(),
    `the paid upload went through (${await page.getByTestId('error').textContent()}; ${await page.getByTestId('cost').last().textContent()})`);
  const costText = await page.getByTestId('cost').last().textContent();
  const m = costText.match(/paid (\d+) credits for 0\.00005 days/);
  check(m !== null, `the page says what the upload cost: "${costText}"`);
  const cost = BigInt(m[1]);
  check(cost > 0n && cost <= balance, `the upload cost ${cost} of a balance of ${balance}, all of it earned`);
  await until('the wallet to show what was spent', 30_000, async () =>
    (await page.getByTestId('wallet-spent').textContent()) === String(cost));
  const after = await until('the balance to be read again', 30_000, async () => {
    await page.getByTestId('wallet-refresh').click();
    const t = await page.getByTestId('wallet-balance').textContent();
    return /^\d+$/.test(t) && BigInt(t) + cost >= balance && t;
  });
  check(BigInt(after) + cost >= balance, `the balance after the upload (${after}) is what was earned less ${cost}, plus any pay since`);
  await page.locator('#wallet').screenshot({ path: join(outDir, 'earn-2-paid-upload.png') });
  const totalEarned = BigInt(await page.getByTestId('wallet-earned').textContent());
  const paidAll = await until('the relays to count what they paid', 30_000, async () => {
    const p = await metricSum(relays, 'kura_tab_credits_paid_total');
    return BigInt(p) >= totalEarned && p;
  });
  check(totalEarned >= earned && totalEarned <= BigInt(paidAll),
    `earned by this tab: ${totalEarned}, within what the relays paid tabs (${paidAll})`);
  await ctx.close();
});
