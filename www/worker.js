// @ts-check
// Kura's client runs here, off the page's thread: the wasm pipeline and the libp2p swarm.
// A Web Worker has no RTCPeerConnection, so it reaches relays over WebSocket. Checked by
// tsc against the .d.ts wasm-bindgen writes (tests/browser/tsconfig.json).
import init, { KuraClient, walletAccount, makeWalletSeed, walletHasWork, uploadCost, opfsBench } from './pkg/kura_client.js';
import { errorData, kuraError } from './messages.js';

/** @type {KuraClient | null} */
let client = null;
/** @type {{ memory: WebAssembly.Memory } | null} */
let wasm = null;
const ready = init().then(exports => { wasm = exports; });
// Bytes of wasm linear memory (it only grows), reported with progress.
const wasmBytes = () => (wasm ? wasm.memory.buffer.byteLength : 0);

/** @param {number} id @param {unknown} e */
function fail(id, e) {
  postMessage({ id, type: 'error', error: errorData(e) });
}

/** The connected client, or an error a person can understand. */
function connected() {
  if (!client) throw kuraError('unreachable', 'not connected to the network yet');
  return client;
}

// ---- the tab's wallet ----
// Its key (a 32-byte ed25519 seed) is made here on first use and kept in this origin's
// IndexedDB; it is read and used here only: it never goes to the page, a relay or anyone.
const WALLET_DB = 'kura-wallet';

/** @returns {Promise<IDBDatabase>} */
function walletDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(WALLET_DB, 2);
    req.onupgradeneeded = () => {
      const names = req.result.objectStoreNames;
      if (!names.contains('keys')) req.result.createObjectStore('keys');
      // The tab's uploads ("your files"), each sealed under a key derived from the seed.
      if (!names.contains('files')) req.result.createObjectStore('files');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * A 32-byte seed kept under `name` in IndexedDB, made the first time by `make` (random
 * bytes unless told), and made again when `good` refuses the one kept.
 * @param {string} name
 * @param {() => Promise<Uint8Array>} [make]
 * @param {(seed: Uint8Array) => boolean} [good]
 * @returns {Promise<Uint8Array>}
 */
async function keptSeed(name, make = async () => crypto.getRandomValues(new Uint8Array(32)), good = () => true) {
  const db = await walletDb();
  /** @type {(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest) => Promise<any>} */
  const run = (mode, f) => new Promise((resolve, reject) => {
    const req = f(db.transaction('keys', mode).objectStore('keys'));
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const kept = await run('readonly', s => s.get(name));
  if (kept instanceof Uint8Array && kept.length === 32 && good(kept)) return kept;
  const seed = await make();
  await run('readwrite', s => s.put(seed, name));
  return seed;
}

/**
 * A new wallet's seed, made by a worker of its own (wallet-maker.js): the account work takes
 * a few seconds of a thread, and this worker's one thread runs the swarm and a donation.
 * Made here instead when this browser cannot start a worker from a worker.
 * @returns {Promise<Uint8Array>}
 */
function madeApart() {
  if (typeof Worker === 'undefined') return Promise.resolve(makeWalletSeed());
  return new Promise((resolve, reject) => {
    const maker = new Worker(new URL('./wallet-maker.js', import.meta.url), { type: 'module' });
    maker.onmessage = ({ data }) => {
      maker.terminate();
      if (data.seed instanceof Uint8Array && data.seed.length === 32) resolve(data.seed);
      else reject(kuraError('internal', `the wallet could not be made: ${data.error}`));
    };
    maker.onerror = e => {
      maker.terminate();
      reject(kuraError('internal', `the wallet could not be made: ${e.message}`));
    };
  });
}

/** @type {Promise<Uint8Array> | null} */
let seedPromise = null;
/** The wallet's seed: read from IndexedDB, or made and kept there the first time. */
function walletSeed() {
  // A wallet carries the account work (a few seconds, once); a seed kept from before the
  // rule is replaced, since replicas credit nothing to its account.
  // Made under a lock: two tabs of the site opened at once share one wallet, not the last made.
  seedPromise ??= ready.then(async () => {
    /** @type {Uint8Array | undefined} */
    let seed;
    await navigator.locks.request('kura-wallet-seed', async () => {
      seed = await keptSeed('seed', madeApart, s => walletHasWork(s));
    });
    if (!seed) throw kuraError('internal', 'the wallet could not be read');
    return seed;
  });
  seedPromise.catch(() => { seedPromise = null; });
  return seedPromise;
}

/**
 * Runs `spend` holding this site's wallet lock: the tabs of one site share one wallet key,
 * and two transfers signed for one slot of the account (two uploads paid at once, in one tab
 * or two) are the owner cheating to its replicas, which refuse the account for good. A paid
 * upload holds the lock until it is stored, so paid uploads of one site take turns.
 * @template T @param {() => Promise<T>} spend @returns {Promise<T>}
 */
async function spending(spend) {
  /** @type {T | undefined} */
  let out;
  await navigator.locks.request('kura-wallet', async () => { out = await spend(); });
  return /** @type {T} */ (out);
}

/**
 * Runs one request on a store of the wallet's database.
 * @param {string} store @param {IDBTransactionMode} mode @param {(s: IDBObjectStore) => IDBRequest} f
 * @returns {Promise<any>}
 */
async function inStore(store, mode, f) {
  const db = await walletDb();
  return new Promise((resolve, reject) => {
    const req = f(db.transaction(store, mode).objectStore(store));
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

// ---- your files: what this tab uploaded, its links sealed under the wallet key ----
// Each entry ({ name, size, link, cost, paidUntil, freeUntil }) is kept as AES-GCM ciphertext under a
// key derived from the wallet seed (HKDF-SHA-256), so the links (read access to the files)
// are not in IndexedDB in the clear.

/** @type {Promise<CryptoKey> | null} */
let filesKey = null;
function sealingKey() {
  filesKey ??= (async () => {
    const base = await crypto.subtle.importKey('raw', new Uint8Array(await walletSeed()), 'HKDF', false, ['deriveKey']);
    const info = new TextEncoder().encode('kura/files/v1');
    return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info },
      base, { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']);
  })();
  return filesKey;
}

/** @param {string} id @param {object} entry */
async function keepFile(id, entry) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, await sealingKey(),
    new TextEncoder().encode(JSON.stringify(entry)));
  await inStore('files', 'readwrite', s => s.put({ iv, sealed }, id));
}

/** @typedef {{ id: string, name: string, size: number, cap: string, cost: string, paidUntil: number, freeUntil?: number }} KeptFile */
/** Every kept upload, opened, with its id. @returns {Promise<KeptFile[]>} */
async function listFiles() {
  const key = await sealingKey();
  /** @type {IDBValidKey[]} */
  const ids = await inStore('files', 'readonly', s => s.getAllKeys());
  const out = [];
  for (const id of ids) {
    const { iv, sealed } = await inStore('files', 'readonly', s => s.get(id));
    try {
      const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, sealed);
      out.push({ id, ...JSON.parse(new TextDecoder().decode(plain)) });
    } catch {
      // Sealed under another wallet's key: not this wallet's to show.
    }
  }
  return out;
}

/** @param {number} id @returns {(p: object) => void} */
const reporter = id => p => postMessage({ id, type: 'progress', p: { ...p, wasmBytes: wasmBytes() } });

onmessage = async ({ data: msg }) => {
  const { id, op } = msg;
  try {
    await ready;
    if (op === 'connect') {
      // A donating tab's peer id is kept (its own key, not the wallet's).
      const seed = msg.keepKey ? await keptSeed('peer-seed') : undefined;
      client = /** @type {KuraClient} */ (await KuraClient.connectAs(msg.addrs, seed));
      postMessage({ id, type: 'done', peerId: client.peerId() });
    } else if (op === 'donate') {
      const c = connected();
      // One donating tab per site: they would share one directory of shards.
      await navigator.locks.request('kura-donate', { ifAvailable: true }, async lock => {
        if (!lock) throw kuraError('busy', 'another tab of this site is donating already');
        /** @param {object} stats */
        const report = stats => postMessage({ id, type: 'donation', stats });
        // What the relays pay for the shards it holds goes to this tab's wallet.
        await c.donate(msg.quota, msg.refresh, walletAccount(await walletSeed()), report);
      });
      postMessage({ id, type: 'done' });
    } else if (op === 'opfsBench') {
      // The donating tab's store timed (scripts/bench-donate.sh).
      postMessage({ id, type: 'done', result: await opfsBench(msg.shards, msg.len) });
    } else if (op === 'stopDonating') {
      connected().stopDonating();
      postMessage({ id, type: 'done' });
    } else if (op === 'put') {
      const { file, pay } = msg;
      // The width the quote was made for, so that what is charged is what was quoted.
      const { k, m } = msg.width || await connected().stripeWidth();
      const entry = { name: file.name, size: file.size, cost: '0', paidUntil: 0, freeUntil: msg.freeUntil || 0, cap: '' };
      if (pay) {
        const seed = await walletSeed();
        const r = await spending(() => connected().putPaid(file, file.name, file.type, msg.private, k, m,
          reporter(id), seed, pay.epochs, pay.price, pay.epochSecs));
        Object.assign(entry, { cap: r.cap, cost: r.cost, paidUntil: r.paidUntil });
      } else {
        entry.cap = await connected().put(file, file.name, file.type, msg.private, k, m, reporter(id));
      }
      const fileId = Array.from(crypto.getRandomValues(new Uint8Array(8)), b => b.toString(16).padStart(2, '0')).join('');
      await keepFile(fileId, entry);
      postMessage({ id, type: 'done', cap: entry.cap, cost: entry.cost, paidUntil: entry.paidUntil });
    } else if (op === 'quote') {
      // Stripes as wide as the network's size calls for (4+2 on a few dozen relays).
      const w = /** @type {{ k: number, m: number, relays: number }} */ (await connected().stripeWidth());
      const q = /** @type {{ cost: string, shardBytes: number, paidUntil: number }} */ (
        uploadCost(msg.size, w.k, w.m, msg.pay.epochs, msg.pay.price, msg.pay.epochSecs));
      postMessage({ id, type: 'done', cost: q.cost, shardBytes: q.shardBytes, paidUntil: q.paidUntil, width: w });
    } else if (op === 'files') {
      postMessage({ id, type: 'done', files: await listFiles() });
    } else if (op === 'forget') {
      await inStore('files', 'readwrite', s => s.delete(msg.fileId));
      postMessage({ id, type: 'done' });
    } else if (op === 'renew') {
      const [entry] = (await listFiles()).filter(f => f.id === msg.fileId);
      if (!entry) throw kuraError('bad-request', 'that file is not in your list');
      const seed = await walletSeed();
      const r = await spending(() => connected().renew(entry.cap, seed, msg.pay.epochs, msg.pay.price, msg.pay.epochSecs));
      const { id: fileId, ...kept } = entry;
      await keepFile(fileId, { ...kept, cost: String(BigInt(kept.cost) + BigInt(r.cost)), paidUntil: r.paidUntil });
      postMessage({ id, type: 'done', cost: r.cost, paidUntil: r.paidUntil });
    } else if (op === 'open') {
      const info = await connected().open(msg.cap);
      postMessage({ id, type: 'done', info });
    } else if (op === 'walletAccount') {
      postMessage({ id, type: 'done', account: walletAccount(await walletSeed()) });
    } else if (op === 'walletBalance') {
      const balance = await connected().balance(walletAccount(await walletSeed()));
      postMessage({ id, type: 'done', balance });
    } else if (op === 'walletCredits') {
      const { listed, fresh } = await connected().credits(walletAccount(await walletSeed()), msg.known);
      postMessage({ id, type: 'done', listed, fresh });
    } else if (op === 'walletSend') {
      const seed = await walletSeed();
      const certificate = await spending(() => connected().send(seed, msg.to, msg.amount, msg.memo));
      postMessage({ id, type: 'done', certificate });
    } else if (op === 'check') {
      const health = await connected().check(msg.cap);
      postMessage({ id, type: 'done', health });
    } else if (op === 'read') {
      /** @param {Uint8Array} bytes */
      const data = bytes => postMessage({ id, type: 'data', bytes }, [bytes.buffer]);
      await connected().read(msg.cap, msg.offset, msg.length, data, reporter(id));
      postMessage({ id, type: 'done' });
    } else if (op === 'readBlob') {
      // A range as one Blob: its bytes go to the browser's blob store from here, and the
      // pieces are garbage of this worker's heap, which collects them.
      /** @type {Uint8Array<ArrayBuffer>[]} */
      const parts = [];
      /** @param {Uint8Array<ArrayBuffer>} bytes */
      const keep = bytes => { parts.push(bytes); };
      await connected().read(msg.cap, msg.offset, msg.length, keep, reporter(id));
      postMessage({ id, type: 'done', blob: new Blob(parts) });
    } else {
      fail(id, kuraError('internal', `unknown operation ${op}`));
    }
  } catch (e) {
    fail(id, e);
  }
};
