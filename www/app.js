// The page: a drop zone and share links, talking to the client in worker.js.
import { explain, kuraError, toError, errorData } from './messages.js';

const $ = id => document.getElementById(id);
const worker = new Worker('worker.js', { type: 'module' });
let nextId = 1;
const pending = new Map();

// Peak memory seen while transfers run, for benchmarks and the curious: the worker's wasm
// memory and this page's JS heap (Chromium's performance.memory).
window.kuraStats = { wasmBytes: 0, jsHeapBytes: 0 };
worker.onmessage = ({ data: msg }) => {
  const h = pending.get(msg.id);
  if (!h) return;
  if (msg.type === 'progress') {
    kuraStats.wasmBytes = Math.max(kuraStats.wasmBytes, msg.p.wasmBytes || 0);
    if (performance.memory) kuraStats.jsHeapBytes = Math.max(kuraStats.jsHeapBytes, performance.memory.usedJSHeapSize);
  }
  if (msg.type === 'progress') h.progress && h.progress(msg.p);
  else if (msg.type === 'data') h.data && h.data(msg.bytes);
  else {
    pending.delete(msg.id);
    msg.type === 'done' ? h.resolve(msg) : h.reject(toError(msg.error));
  }
};

function call(op, args, handlers = {}) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, ...handlers });
    worker.postMessage({ id, op, ...args });
  });
}

// Errors said in words a person can act on, chosen by kind (messages.js).
function showError(e) {
  const el = $('error');
  el.textContent = explain(e);
  el.dataset.kind = errorData(e).kind;
  el.hidden = false;
}

const fmtSize = n => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(1)} KiB`
  : n < 1073741824 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1073741824).toFixed(2)} GiB`;

const connected = (async () => {
  const res = await fetch('/bootstrap');
  if (!res.ok) throw kuraError('unreachable', `/bootstrap answered ${res.status}`);
  const { addrs } = await res.json();
  const r = await call('connect', { addrs });
  $('net').textContent = `Connected to the network as ${r.peerId.slice(0, 16)}…`;
})();
connected.catch(e => { $('net').textContent = 'Not connected.'; showError(e); });

// ---- range reads for the service worker (sw.js) ----
// It serves /kura-stream/… URLs: audio and video seek by range reads, downloads stream to
// disk. It asks this page for bytes, and the page asks the client in the worker. Without a
// service worker (plain http:// from another host is not a secure context) the page falls
// back to reading the whole file into Blobs.
window.kuraStreamReads = [];
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
    console.warn(`no service worker, whole-file reads only: ${e.message || e}`);
    return false;
  }
})();
if (navigator.serviceWorker) {
  navigator.serviceWorker.addEventListener('message', async ({ data, ports }) => {
    if (!data || data.kura !== 'read' || !ports[0]) return;
    const port = ports[0];
    kuraStreamReads.push({ offset: data.offset, length: data.length });
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
const streamUrl = (cap, info) => `/kura-stream/${encodeURIComponent(info.name || 'kura-file')}` +
  `?cap=${encodeURIComponent(cap)}&size=${info.size}&type=${encodeURIComponent(info.type || '')}`;

// ---- storing files ----
function addItem(file) {
  const el = document.createElement('div');
  el.className = 'item';
  el.innerHTML = `<div class="name"></div><div class="bar"><div></div></div>
    <div class="meta" data-testid="progress">waiting for the network…</div>`;
  el.querySelector('.name').textContent = `${file.name} (${fmtSize(file.size)})`;
  $('items').prepend(el);
  return el;
}

async function store(file) {
  const el = addItem(file);
  const bar = el.querySelector('.bar > div');
  const status = el.querySelector('[data-testid=progress]');
  const start = performance.now();
  try {
    await connected;
    const { cap } = await call('put', { file, private: $('private').checked }, {
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
    const link = `${location.origin}/#${cap}`;
    const share = document.createElement('div');
    share.className = 'share';
    share.innerHTML = `<input readonly data-testid="share-link"><button class="secondary">Copy</button>`;
    share.querySelector('input').value = link;
    share.querySelector('button').onclick = async ev => {
      try { await navigator.clipboard.writeText(link); ev.target.textContent = 'Copied'; }
      catch { share.querySelector('input').select(); }
    };
    el.append(share);
  } catch (e) {
    status.textContent = 'failed';
    showError(e);
  }
}

function pick(files) { for (const f of files) store(f); }
$('file-input').addEventListener('change', ev => { pick(ev.target.files); });
const drop = $('drop');
drop.addEventListener('dragover', ev => { ev.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', ev => { ev.preventDefault(); drop.classList.remove('over'); pick(ev.dataTransfer.files); });

// ---- opening a share link ----
// Pieces are folded into Blobs every 16 MiB, so the tab never holds the file itself: the
// browser keeps Blob data out of the page's heap (on disk when large).
async function readAll(cap, info, onProgress) {
  const blobs = [];
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

async function openLink(cap) {
  $('upload-view').hidden = true;
  $('open-view').hidden = false;
  const status = $('open-progress');
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
  window.kuraStreamUrl = url;
  let streamed = 0;
  const start = performance.now();
  streamListeners.add((c, n) => {
    if (c !== cap) return;
    streamed += n;
    const secs = (performance.now() - start) / 1000;
    status.textContent = `read ${fmtSize(streamed)} of ${fmtSize(info.size)} (verified), ${(streamed / 1e6 / secs).toFixed(1)} MB/s`;
  });
  const download = $('download');
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
  const kind = (info.type || '').split('/')[0];
  const show = $('show');
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
