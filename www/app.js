// @ts-check
// The page: a drop zone and share links, talking to the client in worker.js. Checked by tsc
// with the DOM's types (tests/browser/tsconfig.page.json).
import { explain, kuraError, toError, errorData } from './messages.js';

/** @typedef {import('./messages.js').ErrorData} ErrorData */
/** @typedef {{ name: string, type: string, size: number }} FileInfo  What `open` tells of a file (web.rs). */
/**
 * What `check` proved of a file (web.rs): stripes, those not whole, the weakest, proof bytes,
 * claims not proven and the reports of them the relays took.
 * @typedef {{ stripes: number, notWhole: number, proofBytes: number, unproven: number, reported: number,
 *   weakest: { stripe: string, proven: number, n: number, k: number } | null }} Health
 */
/**
 * The client's progress counters (web.rs), with the worker's wasm memory in bytes.
 * @typedef {{ phase: string, total: number, encoded: number, sent: number, confirmed: number,
 *   received: number, delivered: number, retries: number, wasmBytes: number }} Progress
 */
/**
 * The worker's operations (worker.js): what a call sends, and what its answer carries.
 * @typedef {{
 *   connect: { args: { addrs: string[], keepKey: boolean }, done: { peerId: string } },
 *   donate: { args: { quota: number, refresh: number }, done: object },
 *   stopDonating: { args: {}, done: object },
 *   opfsBench: { args: { shards: number, len: number }, done: { result: { writeMBs: number, readMBs: number } } },
 *   put: { args: { file: File, private: boolean, pay: Pay | null, freeUntil: number, width: Width }, done: { cap: string, cost: string, paidUntil: number } },
 *   quote: { args: { size: number, pay: Pay }, done: { cost: string, shardBytes: number, paidUntil: number, width: Width } },
 *   files: { args: {}, done: { files: KeptFile[] } },
 *   forget: { args: { fileId: string }, done: object },
 *   renew: { args: { fileId: string, pay: Pay }, done: { cost: string, paidUntil: number } },
 *   open: { args: { cap: string }, done: { info: FileInfo } },
 *   check: { args: { cap: string }, done: { health: Health } },
 *   walletAccount: { args: {}, done: { account: string } },
 *   walletBalance: { args: {}, done: { balance: string } },
 *   walletSend: { args: { to: string, amount: string, memo: string }, done: { certificate: string } },
 *   walletCredits: { args: { known: string[] }, done: { listed: string[], fresh: { id: string, amount: string, reward: boolean }[] } },
 *   read: { args: { cap: string, offset: number, length: number }, done: object },
 *   readBlob: { args: { cap: string, offset: number, length: number }, done: { blob: Blob } },
 * }} Ops
 */
/**
 * How an upload is paid: epochs of the relays' length at their price (credits per GiB of
 * shard bytes per epoch).
 * @typedef {{ epochs: number, price: number, epochSecs: number }} Pay
 */
/**
 * How wide an upload's stripes are (`k` data and `m` parity shards), from the network's size
 * (`relays`, estimated by lookups; web.rs `stripeWidth`).
 * @typedef {{ k: number, m: number, relays: number }} Width
 */
/**
 * An upload this tab keeps (worker.js seals it in IndexedDB): paidUntil 0 when unpaid, and
 * then freeUntil the end of its free life (0 in lists kept before free files ended).
 * @typedef {{ id: string, name: string, size: number, cap: string, cost: string, paidUntil: number, freeUntil?: number }} KeptFile
 */
/**
 * What the worker posts back about a call, by its id.
 * @typedef {{ id: number, type: 'progress', p: Progress }
 *   | { id: number, type: 'data', bytes: Uint8Array<ArrayBuffer> }
 *   | { id: number, type: 'donation', stats: DonorStats }
 *   | { id: number, type: 'done' }
 *   | { id: number, type: 'error', error: ErrorData }} Reply
 */
/**
 * What a donating tab holds and served (donor.rs), posted every second while it donates.
 * @typedef {{ peer: string, quota: number, shards: number, bytes: number, served_requests: number,
 *   served_bytes: number, corrupt: number, misses: number, announced: number, via: string | null,
 *   address: string | null, refused: string | null }} DonorStats
 */
/**
 * Called as the worker reports on a call.
 * @typedef {{ progress?: (p: Progress) => void, data?: (bytes: Uint8Array<ArrayBuffer>) => void,
 *   donation?: (s: DonorStats) => void }} Handlers
 */
/** @typedef {Handlers & { resolve: (reply: object) => void, reject: (e: Error) => void }} Pending */
/**
 * What the service worker (sw.js) asks this page for: bytes of the file behind `cap`.
 * @typedef {{ kura: 'read', cap: string, offset: number, length: number }} ReadRequest
 */
/**
 * What the page keeps on `window` for tests and benchmarks (tests/browser).
 * @typedef {object} Hooks
 * @property {{ wasmBytes: number, jsHeapBytes: number }} kuraStats peak memory seen
 * @property {{ offset: number, length: number }[]} kuraStreamReads the service worker's reads
 * @property {string} [kuraStreamUrl] the open file's stream address
 * @property {(shards: number, len: number) => Promise<{ writeMBs: number, readMBs: number }>} kuraOpfsBench
 *   the donating tab's store timed in the worker (scripts/bench-donate.sh)
 */
const hooks = /** @type {Window & typeof globalThis & Hooks} */ (window);
// Chromium's non-standard performance.memory (absent elsewhere).
const perf = /** @type {Performance & { memory?: { usedJSHeapSize: number } }} */ (performance);

/**
 * The page's element with this id (index.html has every one asked for here).
 * @param {string} id
 * @returns {HTMLElement}
 */
const $ = id => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
};
const worker = new Worker('worker.js', { type: 'module' });
let nextId = 1;
/** @type {Map<number, Pending>} */
const pending = new Map();

// Peak memory seen while transfers run, for benchmarks and the curious: the worker's wasm
// memory and this page's JS heap (Chromium's performance.memory).
hooks.kuraStats = { wasmBytes: 0, jsHeapBytes: 0 };
worker.onmessage = (/** @type {MessageEvent<Reply>} */ { data: msg }) => {
  const h = pending.get(msg.id);
  if (!h) return;
  if (msg.type === 'progress') {
    hooks.kuraStats.wasmBytes = Math.max(hooks.kuraStats.wasmBytes, msg.p.wasmBytes || 0);
    if (perf.memory) hooks.kuraStats.jsHeapBytes = Math.max(hooks.kuraStats.jsHeapBytes, perf.memory.usedJSHeapSize);
  }
  if (msg.type === 'progress') h.progress && h.progress(msg.p);
  else if (msg.type === 'data') h.data && h.data(msg.bytes);
  else if (msg.type === 'donation') h.donation && h.donation(msg.stats);
  else {
    pending.delete(msg.id);
    msg.type === 'done' ? h.resolve(msg) : h.reject(toError(msg.error));
  }
};

/**
 * Asks the worker to do `op`; resolves with its answer.
 * @template {keyof Ops} K
 * @param {K} op
 * @param {Ops[K]['args']} args
 * @param {Handlers} [handlers]
 * @returns {Promise<Ops[K]['done']>}
 */
function call(op, args, handlers = {}) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve: /** @type {(reply: object) => void} */ (resolve), reject, ...handlers });
    worker.postMessage({ id, op, ...args });
  });
}

// Errors said in words a person can act on, chosen by kind (messages.js).
/** @param {unknown} e */
function showError(e) {
  const el = $('error');
  el.textContent = explain(e);
  el.dataset.kind = errorData(e).kind;
  el.hidden = false;
}

/** @param {number} n @returns {string} */
const fmtSize = n => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB`
  : n < 1073741824 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1073741824).toFixed(2)} GiB`;

// ---- donating storage ----
// The setting ({ on, quotaMiB }) is kept in localStorage, so a reloaded tab donates again
// with what it held (the shards stay in the origin's private file system).
const DONATE_KEY = 'kura-donate';
/** @type {{ on: boolean, quotaMiB: number, refresh?: number }} */
const donation = (() => {
  try {
    const kept = JSON.parse(localStorage.getItem(DONATE_KEY) || 'null');
    if (kept && typeof kept.on === 'boolean' && kept.quotaMiB > 0) return { on: kept.on, quotaMiB: kept.quotaMiB };
  } catch { /* a damaged setting: the default */ }
  return { on: false, quotaMiB: 256 };
})();
const connected = (async () => {
  const res = await fetch('/bootstrap');
  if (!res.ok) throw kuraError('unreachable', `/bootstrap answered ${res.status}`);
  const { addrs, tab_ttl_secs: tabTtl } = await res.json();
  // A donating tab announces what it holds three times within the relay's expiry.
  if (tabTtl > 0) donation.refresh = Math.max(1, Math.floor(tabTtl / 3));
  // A donating tab keeps its peer id across reloads (the relays know it by it).
  const r = await call('connect', { addrs, keepKey: donation.on });
  $('net').textContent = `Connected to the network as ${r.peerId.slice(0, 16)}…`;
})();
connected.catch(e => { $('net').textContent = 'Not connected.'; showError(e); });

const donateToggle = /** @type {HTMLInputElement} */ ($('donate-toggle'));
const donateQuota = /** @type {HTMLInputElement} */ ($('donate-quota'));
donateToggle.checked = donation.on;
donateQuota.value = String(donation.quotaMiB);
const keepDonation = () => localStorage.setItem(DONATE_KEY, JSON.stringify({ on: donation.on, quotaMiB: donation.quotaMiB }));

/** @param {DonorStats} s */
function showDonation(s) {
  const reach = s.via ? `reachable through relay ${s.via.slice(0, 16)}…` : 'reconnecting…';
  $('donate-stats').textContent = `Holds ${s.shards} shards (${fmtSize(s.bytes)} of ${fmtSize(s.quota)}) · `
    + `served ${s.served_requests} requests (${fmtSize(s.served_bytes)}) · ${reach}`;
  $('donate-stats').dataset.shards = String(s.shards);
  $('donate-stats').dataset.bytes = String(s.bytes);
  $('donate-stats').dataset.served = String(s.served_requests);
  $('donate-stats').dataset.reachable = s.via ? 'yes' : 'no';
  $('donate-stats').dataset.via = s.via || '';
  $('donate-stats').dataset.announced = String(s.announced);
  $('donate-stats').dataset.quota = String(s.quota);
  $('donate-stats').dataset.corrupt = String(s.corrupt);
}

async function startDonating() {
  await connected;
  $('donate-stats').textContent = 'Starting…';
  // Relays pay donating tabs at each epoch's end: the wallet is looked at once an epoch.
  const every = Math.max(10, (await farming).epochSecs) * 1000;
  const timer = setInterval(() => { refreshWallet().catch(() => {}); }, every);
  try {
    await call('donate', { quota: donation.quotaMiB * 1048576, refresh: donation.refresh || 0 }, { donation: showDonation });
    $('donate-stats').textContent = 'Not donating.';
  } catch (e) {
    $('donate-stats').textContent = 'Not donating.';
    showError(e);
  } finally {
    clearInterval(timer);
  }
}
donateToggle.addEventListener('change', () => {
  donation.on = donateToggle.checked;
  keepDonation();
  if (donation.on) startDonating();
  else call('stopDonating', {}).catch(showError);
});
donateQuota.addEventListener('change', () => {
  const mib = Math.floor(Number(donateQuota.value));
  if (!(mib > 0)) { donateQuota.value = String(donation.quotaMiB); return; }
  donation.quotaMiB = mib;
  keepDonation();
  // The new quota applies from the next start.
  if (donation.on) call('stopDonating', {}).then(() => startDonating()).catch(showError);
});
if (donation.on) startDonating();
/** @param {number} shards @param {number} len */
hooks.kuraOpfsBench = async (shards, len) => (await call('opfsBench', { shards, len })).result;

// ---- the tab's wallet ----
// Its key lives in the worker (kept in IndexedDB there) and signs there; this page sees the
// account id, the balance and certificate ids only.
const walletInput = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));
// What relays paid this tab for donating: the wallet's unspent credits whose transfers say
// so (a relay's "tab reward" memo, bound to the credit's id), each counted once. The ids
// counted are kept while they stay unspent; a credit spent before the page looked is not
// counted, so the wallet is looked at before every payment and each epoch while donating.
let earnedChain = Promise.resolve();
function countEarned() {
  earnedChain = earnedChain.catch(() => {}).then(async () => {
    const known = /** @type {string[]} */ (JSON.parse(localStorage.getItem('kura-credits-counted') || '[]'));
    const { listed, fresh } = await call('walletCredits', { known });
    let earned = BigInt(localStorage.getItem('kura-earned') || '0');
    for (const c of fresh) if (c.reward) earned += BigInt(c.amount);
    const counted = new Set([...known, ...fresh.map(c => c.id)]);
    localStorage.setItem('kura-earned', String(earned));
    localStorage.setItem('kura-credits-counted', JSON.stringify(listed.filter(id => counted.has(id))));
    $('wallet-earned').textContent = String(earned);
  });
  return earnedChain;
}
async function refreshWallet() {
  await connected;
  await countEarned();
  const { balance } = await call('walletBalance', {});
  $('wallet-balance').textContent = balance;
  $('wallet-spent').textContent = localStorage.getItem('kura-spent') || '0';
  const f = await farming;
  $('wallet-free').textContent = fmtSize(Math.max(0, f.freePerPeer - freeUsed()));
  $('wallet-price').textContent = `${f.price} credits per GiB of shards per ${f.epochSecs} s epoch`;
  return BigInt(balance);
}

// ---- paying for storage ----
// The relays' prices and free allowance, from the relay that served this page.
const farming = fetch('/status').then(r => r.json()).then(s => ({
  price: Number(s.farming.price), epochSecs: Number(s.farming.epoch_secs),
  freePerPeer: Number(s.farming.free_bytes_per_peer),
  // Epochs a free file is kept (relays drop it then unless it was paid for).
  freeEpochs: Number(s.farming.free_epochs) || 168,
}));
/** When a file stored free now ends: its life counts from the relays' current epoch. */
const freeUntil = async () => {
  const f = await farming;
  return (Math.floor(Date.now() / 1000 / f.epochSecs) + f.freeEpochs) * f.epochSecs;
};
/** Days a paid upload is kept for: what the person chose, 30 unless they said otherwise. */
const paidDays = () => {
  const d = Number(/** @type {HTMLInputElement} */ ($('pay-days')).value);
  return d > 0 && Number.isFinite(d) ? d : 30;
};
/** @returns {Promise<Pay>} */
const payTerms = async () => {
  const f = await farming;
  return { epochs: Math.max(1, Math.ceil(paidDays() * 86400 / f.epochSecs)), price: f.price, epochSecs: f.epochSecs };
};
/** Shard bytes of a file at 4 + 2 (what the free allowance counts). @param {number} size */
/** Shard bytes a file of `size` bytes takes in stripes `w` wide. @param {number} size @param {Width} w */
const shardBytes = (size, w) => Math.ceil(size * (w.k + w.m) / w.k);
// Unpaid shard bytes this tab stored this hour (the relays' allowance is per peer, per hour).
const hour = () => Math.floor(Date.now() / 3_600_000);
function freeUsed() {
  const u = JSON.parse(localStorage.getItem('kura-free') || '{"hour":0,"bytes":0}');
  return u.hour === hour() ? u.bytes : 0;
}
/** @param {number} bytes */
const useFree = bytes => localStorage.setItem('kura-free', JSON.stringify({ hour: hour(), bytes: freeUsed() + bytes }));
/** @param {string} cost */
const spend = cost => localStorage.setItem('kura-spent', String(BigInt(localStorage.getItem('kura-spent') || '0') + BigInt(cost)));

// ---- your files ----
/** @param {number} t Unix seconds */
const fmtDate = t => new Date(t * 1000).toLocaleString();
async function showFiles() {
  const { files } = await call('files', {});
  const list = $('files-list');
  list.replaceChildren();
  if (!files.length) list.textContent = 'Nothing yet.';
  for (const f of files.sort((a, b) => a.name.localeCompare(b.name))) {
    const row = document.createElement('div');
    row.dataset.testid = 'file-row';
    row.innerHTML = `<div class="meta"></div><div class="share"><input readonly>
      <button class="secondary" data-testid="file-renew">Renew</button>
      <button class="secondary" data-testid="file-forget">Forget</button></div>`;
    const meta = /** @type {HTMLElement} */ (row.querySelector('.meta'));
    meta.textContent = `${f.name} (${fmtSize(f.size)}): ` +
      (f.paidUntil ? `paid ${f.cost} credits, kept until ${fmtDate(f.paidUntil)}`
        : f.freeUntil ? `free, kept until about ${fmtDate(f.freeUntil)} (renew to pay for longer)` : 'free');
    /** @type {HTMLInputElement} */ (row.querySelector('input')).value = `${location.origin}/#${f.cap}`;
    const [renew, forget] = /** @type {NodeListOf<HTMLButtonElement>} */ (row.querySelectorAll('button'));
    // A free file is renewed too: paying for it keeps it past its free life.
    renew.onclick = async () => {
      renew.disabled = true;
      try {
        const r = await call('renew', { fileId: f.id, pay: await payTerms() });
        spend(r.cost);
        await Promise.all([showFiles(), refreshWallet()]);
      } catch (e) { showError(e); } finally { renew.disabled = false; }
    };
    forget.onclick = async () => { await call('forget', { fileId: f.id }); await showFiles(); };
    list.append(row);
  }
}
showFiles().catch(showError);
$('wallet-earned').textContent = localStorage.getItem('kura-earned') || '0';
call('walletAccount', {}).then(({ account }) => {
  $('wallet-address').textContent = account;
  refreshWallet().catch(showError);
}).catch(showError);
$('wallet-refresh').addEventListener('click', () => { refreshWallet().catch(showError); });
$('wallet-form').addEventListener('submit', async ev => {
  ev.preventDefault();
  const result = $('wallet-result');
  const button = /** @type {HTMLButtonElement} */ ($('wallet-send'));
  button.disabled = true;
  result.textContent = 'sending…';
  try {
    await connected;
    const args = { to: walletInput('wallet-to').value.trim(), amount: walletInput('wallet-amount').value.trim(), memo: '' };
    const { certificate } = await call('walletSend', args);
    result.textContent = `Sent ${args.amount}: certificate ${certificate}`;
    result.dataset.certificate = certificate;
    await refreshWallet();
  } catch (e) {
    result.textContent = '';
    showError(e);
  } finally {
    button.disabled = false;
  }
});

// ---- range reads for the service worker (sw.js) ----
// It serves /kura-stream/… URLs: audio and video seek by range reads, downloads stream to
// disk. It asks this page for bytes, and the page asks the client in the worker. Without a
// service worker (plain http:// from another host is not a secure context) the page falls
// back to reading the whole file into Blobs.
hooks.kuraStreamReads = [];
/** @type {Set<(cap: string, bytes: number) => void>} */
const streamListeners = new Set();
const streaming = (async () => {
  const sw = navigator.serviceWorker;
  if (!sw) return false;
  try {
    await sw.register('/sw.js', { type: 'module' });
    await sw.ready;
    if (sw.controller) return true;
    return await new Promise(resolve => {
      sw.addEventListener('controllerchange', () => resolve(true), { once: true });
      setTimeout(() => resolve(Boolean(sw.controller)), 5000);
    });
  } catch (e) {
    console.warn(`no service worker, whole-file reads only: ${/** @type {Error} */ (e).message || e}`);
    return false;
  }
})();
if (navigator.serviceWorker) {
  navigator.serviceWorker.addEventListener('message', async (/** @type {MessageEvent<ReadRequest | null>} */ { data, ports }) => {
    if (!data || data.kura !== 'read' || !ports[0]) return;
    const port = ports[0];
    hooks.kuraStreamReads.push({ offset: data.offset, length: data.length });
    try {
      await connected;
      // The worker answers with a Blob: the bytes reach the service worker through the
      // browser's blob store, not as buffers passed from heap to heap (which left hundreds
      // of MiB of garbage no heap felt responsible for, measured).
      const { blob } = await call('readBlob', { cap: data.cap, offset: data.offset, length: data.length });
      for (const f of streamListeners) f(data.cap, blob.size);
      port.postMessage({ blob, done: true });
    } catch (e) {
      port.postMessage({ error: errorData(e) });
    }
  });
  navigator.serviceWorker.startMessages();
}
/** @param {string} cap @param {FileInfo} info @returns {string} */
const streamUrl = (cap, info) => `/kura-stream/${encodeURIComponent(info.name || 'kura-file')}` +
  `?cap=${encodeURIComponent(cap)}&size=${info.size}&type=${encodeURIComponent(info.type || '')}`;

// ---- storing files ----
/** @param {File} file @returns {HTMLDivElement} */
function addItem(file) {
  const el = document.createElement('div');
  el.className = 'item';
  el.innerHTML = `<div class="name"></div><div class="bar"><div></div></div>
    <div class="meta" data-testid="progress">waiting for the network…</div>`;
  /** @type {HTMLElement} */ (el.querySelector('.name')).textContent = `${file.name} (${fmtSize(file.size)})`;
  $('items').prepend(el);
  return el;
}

/** @param {File} file */
async function store(file) {
  const el = addItem(file);
  const bar = /** @type {HTMLElement} */ (el.querySelector('.bar > div'));
  const status = /** @type {HTMLElement} */ (el.querySelector('[data-testid=progress]'));
  const start = performance.now();
  try {
    await connected;
    // What it costs, said before anything is sent; refused in words when neither the wallet
    // nor the free allowance covers it.
    const days = paidDays();
    const pay = await payTerms();
    const quote = await call('quote', { size: file.size, pay });
    const paying = /** @type {HTMLInputElement} */ ($('pay')).checked;
    const cost = document.createElement('div');
    cost.className = 'meta';
    cost.dataset.testid = 'cost';
    cost.textContent = paying ? `costs ${quote.cost} credits for ${days} days` : `free (${fmtSize(shardBytes(file.size, quote.width))} of the allowance); paid, it would cost ${quote.cost} credits for ${days} days`;
    el.append(cost);
    const width = document.createElement('div');
    width.className = 'meta';
    width.dataset.testid = 'width';
    width.textContent = `stripes of ${quote.width.k}+${quote.width.m} shards (a network of about ${quote.width.relays} relays)`;
    el.append(width);
    if (paying) {
      const balance = await refreshWallet();
      if (balance < BigInt(quote.cost)) {
        throw kuraError('unpaid', `This file costs ${quote.cost} credits for ${days} days of storage and the wallet holds ${balance}.`);
      }
    } else if (shardBytes(file.size, quote.width) > (await farming).freePerPeer - freeUsed()) {
      throw kuraError('unpaid', `This file needs ${fmtSize(shardBytes(file.size, quote.width))} of storage and about ${fmtSize(Math.max(0, (await farming).freePerPeer - freeUsed()))} of the free allowance is left this hour: pay from the wallet (${quote.cost} credits for ${days} days).`);
    }
    const { cap, cost: paid } = await call('put', { file, private: /** @type {HTMLInputElement} */ ($('private')).checked, pay: paying ? pay : null, freeUntil: paying ? 0 : await freeUntil(), width: quote.width }, {
      progress: p => {
        const secs = (performance.now() - start) / 1000;
        const sentShare = p.sent ? p.confirmed / p.sent : 0;
        const done = p.total ? p.encoded / p.total : 1;
        const phase = done < 1 ? 'encrypting and uploading' : 'uploading';
        bar.style.width = `${Math.round(100 * done * (0.5 + 0.5 * sentShare))}%`;
        status.textContent = `${phase}: ${fmtSize(p.encoded)} of ${fmtSize(p.total)} encoded, ` +
          `${fmtSize(p.confirmed)} stored, ${(p.encoded / 1e6 / secs).toFixed(1)} MB/s`;
      },
    });
    const secs = (performance.now() - start) / 1000;
    bar.style.width = '100%';
    status.textContent = `stored in ${secs.toFixed(1)} s (${(file.size / 1e6 / secs).toFixed(1)} MB/s)`;
    if (paying) {
      spend(paid);
      cost.textContent = `paid ${paid} credits for ${days} days`;
    } else {
      useFree(shardBytes(file.size, quote.width));
    }
    Promise.all([showFiles(), refreshWallet()]).catch(showError);
    const link = `${location.origin}/#${cap}`;
    const share = document.createElement('div');
    share.className = 'share';
    share.innerHTML = `<input readonly data-testid="share-link"><button class="secondary">Copy</button>`;
    const input = /** @type {HTMLInputElement} */ (share.querySelector('input'));
    input.value = link;
    /** @type {HTMLButtonElement} */ (share.querySelector('button')).onclick = async ev => {
      try { await navigator.clipboard.writeText(link); /** @type {HTMLButtonElement} */ (ev.target).textContent = 'Copied'; }
      catch { input.select(); }
    };
    el.append(share);
  } catch (e) {
    const d = errorData(e);
    status.textContent = d.kind === 'unpaid' ? `refused: ${d.message}` : 'failed';
    showError(e);
  }
}

/** @param {FileList} files */
function pick(files) { for (const f of files) store(f); }
// A file input's `files` and a drop's `dataTransfer` are never null.
$('file-input').addEventListener('change', ev => {
  pick(/** @type {FileList} */ (/** @type {HTMLInputElement} */ (ev.target).files));
});
const drop = $('drop');
drop.addEventListener('dragover', ev => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', ev => { ev.preventDefault(); drop.classList.remove('over'); pick(/** @type {DataTransfer} */ (ev.dataTransfer).files); });

// ---- opening a share link ----
// Pieces are folded into Blobs every 16 MiB, so the tab never holds the file itself: the
// browser keeps Blob data out of the page's heap (on disk when large).
/**
 * @param {string} cap
 * @param {FileInfo} info
 * @param {(delivered: number, secs: number) => void} onProgress
 * @returns {Promise<Blob>}
 */
async function readAll(cap, info, onProgress) {
  /** @type {Blob[]} */
  const blobs = [];
  /** @type {Uint8Array<ArrayBuffer>[]} */
  let parts = [];
  let held = 0;
  const start = performance.now();
  await call('read', { cap, offset: 0, length: info.size }, {
    data: b => {
      parts.push(b);
      held += b.length;
      if (held >= 16 << 20) { blobs.push(new Blob(parts)); parts = []; held = 0; }
    },
    progress: p => onProgress(p.delivered, (performance.now() - start) / 1000),
  });
  blobs.push(new Blob(parts));
  return new Blob(blobs, { type: info.type || 'application/octet-stream' });
}

/** @param {string} cap */
async function openLink(cap) {
  $('upload-view').hidden = true;
  $('open-view').hidden = false;
  const status = $('open-progress');
  /** @type {FileInfo} */
  let info;
  try {
    await connected;
    info = (await call('open', { cap })).info;
  } catch (e) {
    $('open-name').textContent = 'This file cannot be opened.';
    showError(e);
    return;
  }
  $('open-name').textContent = info.name || '(unnamed file)';
  $('open-meta').textContent = `${fmtSize(info.size)} · ${info.type || 'unknown type'}`;
  /** @type {Blob | null} */
  let blob = null;
  const fetchBlob = async () => {
    if (blob) return blob;
    $('open-bar-wrap').hidden = false;
    blob = await readAll(cap, info, (done, secs) => {
      $('open-bar').style.width = `${info.size ? Math.round(100 * done / info.size) : 100}%`;
      status.textContent = `downloading: ${fmtSize(done)} of ${fmtSize(info.size)}, ${(done / 1e6 / secs).toFixed(1)} MB/s`;
    });
    $('open-bar').style.width = '100%';
    status.textContent = `downloaded and verified: ${fmtSize(info.size)}`;
    return blob;
  };
  const url = streamUrl(cap, info);
  hooks.kuraStreamUrl = url;
  let streamed = 0;
  const start = performance.now();
  streamListeners.add((c, n) => {
    if (c !== cap) return;
    streamed += n;
    const secs = (performance.now() - start) / 1000;
    status.textContent = `read ${fmtSize(streamed)} of ${fmtSize(info.size)} (verified), ${(streamed / 1e6 / secs).toFixed(1)} MB/s`;
  });
  const download = /** @type {HTMLButtonElement} */ ($('download'));
  download.disabled = false;
  download.onclick = async () => {
    download.disabled = true;
    try {
      if (await streaming) {
        // Streamed to disk through the service worker: a hidden frame navigates to the
        // stream, whose answer is an attachment (a link's download attribute would bypass
        // the service worker).
        const f = document.createElement('iframe');
        f.hidden = true;
        f.src = url;
        document.body.append(f);
        setTimeout(() => f.remove(), 60_000);
      } else {
        const a = document.createElement('a');
        a.href = URL.createObjectURL(await fetchBlob());
        a.download = info.name || 'kura-file';
        document.body.append(a);
        a.click();
        a.remove();
      }
    } catch (e) { showError(e); }
    download.disabled = false;
  };
  const checkButton = /** @type {HTMLButtonElement} */ ($('check'));
  checkButton.disabled = false;
  checkButton.onclick = async () => {
    checkButton.disabled = true;
    const out = $('health');
    out.textContent = 'Checking: asking the relays to prove they hold each shard…';
    try {
      const { health: h } = await call('check', { cap });
      const proofs = `${fmtSize(h.proofBytes)} of proofs`;
      const w = h.weakest;
      out.textContent = h.notWhole === 0
        ? `Healthy: all ${h.stripes} stripes proven whole (${proofs}).`
        : `${h.notWhole} of ${h.stripes} stripes not whole; weakest ${w ? `${w.proven} of ${w.n} shards proven, ${w.k} needed` : 'unknown'} (${proofs}).`
          + (h.unproven > 0 ? ` ${h.unproven} claims failed their proof; the relays were told.` : '');
      out.dataset.notWhole = String(h.notWhole);
    } catch (e) {
      out.textContent = '';
      showError(e);
    }
    checkButton.disabled = false;
  };
  const kind = (info.type || '').split('/')[0];
  const show = /** @type {HTMLButtonElement} */ ($('show'));
  if (['image', 'audio', 'video', 'text'].includes(kind) || info.type === 'application/json') {
    show.disabled = false;
    show.onclick = async () => {
      show.disabled = true;
      try {
        const p = $('preview');
        p.textContent = '';
        if (kind === 'audio' || kind === 'video') {
          // Seekable by range reads through the service worker: only what plays is read.
          const m = document.createElement(kind);
          m.controls = true;
          m.src = (await streaming) ? url : URL.createObjectURL(await fetchBlob());
          p.append(m);
        } else if (kind === 'image') {
          const i = new Image(); i.src = URL.createObjectURL(await fetchBlob()); i.alt = info.name; p.append(i);
        } else {
          const pre = document.createElement('pre'); pre.textContent = await (await fetchBlob()).slice(0, 1 << 20).text(); p.append(pre);
        }
      } catch (e) { showError(e); }
    };
  }
}

if (location.hash.length > 1) openLink(decodeURIComponent(location.hash.slice(1)));
window.addEventListener('hashchange', () => location.reload());
