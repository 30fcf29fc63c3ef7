// @ts-check
// Kura's client runs here, off the page's thread: the wasm pipeline and the libp2p swarm.
// A Web Worker has no RTCPeerConnection, so it reaches relays over WebSocket. Checked by
// tsc against the .d.ts wasm-bindgen writes (tests/browser/tsconfig.json).
import init, { KuraClient } from './pkg/kura_client.js';
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
