// Kura's client runs here, off the page's thread: the wasm pipeline and the libp2p swarm.
// A Web Worker has no RTCPeerConnection, so it reaches relays over WebSocket.
import init, { KuraClient } from './pkg/kura_client.js';

let client = null;
let wasm = null;
const ready = init().then(exports => { wasm = exports; });
// Bytes of wasm linear memory (it only grows), reported with progress.
const wasmBytes = () => (wasm ? wasm.memory.buffer.byteLength : 0);

function fail(id, e) {
  postMessage({ id, type: 'error', message: String(e && e.message ? e.message : e) });
}

onmessage = async ({ data: msg }) => {
  const { id, op } = msg;
  try {
    await ready;
    if (op === 'connect') {
      client = await KuraClient.connect(msg.addrs);
      postMessage({ id, type: 'done', peerId: client.peerId() });
    } else if (op === 'put') {
      const progress = p => postMessage({ id, type: 'progress', p: { ...p, wasmBytes: wasmBytes() } });
      const cap = await client.put(msg.file, msg.file.name, msg.file.type, msg.private, 4, 2, progress);
      postMessage({ id, type: 'done', cap });
    } else if (op === 'open') {
      const info = await client.open(msg.cap);
      postMessage({ id, type: 'done', info });
    } else if (op === 'read') {
      const data = bytes => postMessage({ id, type: 'data', bytes }, [bytes.buffer]);
      const progress = p => postMessage({ id, type: 'progress', p: { ...p, wasmBytes: wasmBytes() } });
      await client.read(msg.cap, msg.offset, msg.length, data, progress);
      postMessage({ id, type: 'done' });
    } else if (op === 'readBlob') {
      // A range as one Blob: its bytes go to the browser's blob store from here, and the
      // pieces are garbage of this worker's heap, which collects them.
      const parts = [];
      const progress = p => postMessage({ id, type: 'progress', p: { ...p, wasmBytes: wasmBytes() } });
      await client.read(msg.cap, msg.offset, msg.length, bytes => parts.push(bytes), progress);
      postMessage({ id, type: 'done', blob: new Blob(parts) });
    } else {
      fail(id, `unknown operation ${op}`);
    }
  } catch (e) {
    fail(id, e);
  }
};
