// @ts-check
// Kura's client runs here, off the page's thread: the wasm pipeline and the libp2p swarm.
// A Web Worker has no RTCPeerConnection, so it reaches relays over WebSocket. Checked by
// tsc against the .d.ts wasm-bindgen writes (tests/browser/tsconfig.json).
import init, { KuraClient, walletAccount } from './pkg/kura_client.js';
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
    const req = indexedDB.open(WALLET_DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore('keys');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** @type {Promise<Uint8Array> | null} */
let seedPromise = null;
/** The wallet's seed: read from IndexedDB, or made and kept there the first time. */
function walletSeed() {
  seedPromise ??= (async () => {
    const db = await walletDb();
    /** @type {(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest) => Promise<any>} */
    const run = (mode, f) => new Promise((resolve, reject) => {
      const req = f(db.transaction('keys', mode).objectStore('keys'));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    const kept = await run('readonly', s => s.get('seed'));
    if (kept instanceof Uint8Array && kept.length === 32) return kept;
    const seed = crypto.getRandomValues(new Uint8Array(32));
    await run('readwrite', s => s.put(seed, 'seed'));
    return seed;
  })();
  seedPromise.catch(() => { seedPromise = null; });
  return seedPromise;
}

/** @param {number} id @returns {(p: object) => void} */
const reporter = id => p => postMessage({ id, type: 'progress', p: { ...p, wasmBytes: wasmBytes() } });

onmessage = async ({ data: msg }) => {
  const { id, op } = msg;
  try {
    await ready;
    if (op === 'connect') {
      client = /** @type {KuraClient} */ (await KuraClient.connect(msg.addrs));
      postMessage({ id, type: 'done', peerId: client.peerId() });
    } else if (op === 'put') {
      const cap = await connected().put(msg.file, msg.file.name, msg.file.type, msg.private, 4, 2, reporter(id));
      postMessage({ id, type: 'done', cap });
    } else if (op === 'open') {
      const info = await connected().open(msg.cap);
      postMessage({ id, type: 'done', info });
    } else if (op === 'walletAccount') {
      postMessage({ id, type: 'done', account: walletAccount(await walletSeed()) });
    } else if (op === 'walletBalance') {
      const balance = await connected().balance(walletAccount(await walletSeed()));
      postMessage({ id, type: 'done', balance });
    } else if (op === 'walletSend') {
      const certificate = await connected().send(await walletSeed(), msg.to, msg.amount, msg.memo);
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
