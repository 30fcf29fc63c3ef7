// @ts-check
// Kura's service worker. It serves /kura-stream/NAME?cap=…&size=…&type=… from byte-range
// reads made by the page's client (worker.js, through app.js), so that audio and video seek
// by range reads and a download streams to disk instead of being held whole in the tab.
// Nothing is cached; everything else goes to the network as usual. Checked by tsc against
// the webworker lib (tests/browser/tsconfig.json).
import { explain, toError } from './messages.js';

/** @typedef {import('./messages.js').ErrorData} ErrorData */
/**
 * The page's answer to a read (app.js): the bytes as one Blob, or why not.
 * @typedef {{ blob: Blob, done: true, error?: undefined }
 *   | { error: ErrorData, blob?: undefined, done?: undefined }} ReadReply
 */

// This module runs as a service worker (the webworker lib's `self` is a plain worker's).
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));

// A ranged answer carries at most this much (media elements ask again for the rest).
const MEDIA_PIECE = 2 << 20;
// A download is read this much at a time, as the browser takes it (back-pressure).
const DOWNLOAD_PIECE = 8 << 20;

sw.addEventListener('install', () => sw.skipWaiting());
sw.addEventListener('activate', /** @param {ExtendableEvent} event */ event => event.waitUntil(sw.clients.claim()));

sw.addEventListener('fetch', /** @param {FetchEvent} event */ event => {
  const url = new URL(event.request.url);
  if (url.origin !== sw.location.origin || !url.pathname.startsWith('/kura-stream/')) return;
  event.respondWith(serve(event, url).catch(e => new Response(`Kura: ${explain(e)}`, { status: 502 })));
});

// The page that reads for us: the one that asked, or (for a download) any open Kura page.
/**
 * @param {FetchEvent} event
 * @returns {Promise<Client | null>}
 */
async function pageFor(event) {
  const own = event.clientId ? await sw.clients.get(event.clientId) : null;
  if (own) return own;
  const all = await sw.clients.matchAll({ type: 'window' });
  return all[0] || null;
}

// Asks the page to read [offset, offset + length) of the file; resolves with it as one Blob.
/**
 * @param {Client} page
 * @param {string} cap
 * @param {number} offset
 * @param {number} length
 * @returns {Promise<Blob>}
 */
function readVia(page, cap, offset, length) {
  return new Promise((resolve, reject) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = (/** @type {MessageEvent<ReadReply>} */ { data }) => {
      if (data.error) reject(toError(data.error));
      else if (data.done) resolve(data.blob);
    };
    page.postMessage({ kura: 'read', cap, offset, length }, [ch.port2]);
  });
}

// `Range: bytes=…` as [start, end] (inclusive), null when absent, 'bad' when unsatisfiable.
/**
 * @param {string | null} header
 * @param {number} size
 * @returns {[number, number] | 'bad' | null}
 */
function parseRange(header, size) {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'bad';
  let start;
  let end;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start < size && start <= end ? [start, end] : 'bad';
}

/**
 * @param {FetchEvent} event
 * @param {URL} url
 * @returns {Promise<Response>}
 */
async function serve(event, url) {
  const cap = url.searchParams.get('cap');
  const size = Number(url.searchParams.get('size'));
  const type = url.searchParams.get('type') || 'application/octet-stream';
  const name = decodeURIComponent(url.pathname.slice('/kura-stream/'.length)) || 'kura-file';
  const page = await pageFor(event);
  if (!cap || !Number.isSafeInteger(size) || size < 0) return new Response('bad stream address', { status: 400 });
  if (!page) return new Response('no Kura page is open to read through', { status: 503 });
  const range = parseRange(event.request.headers.get('range'), size);
  if (range === 'bad') {
    return new Response('', { status: 416, headers: { 'content-range': `bytes */${size}` } });
  }
  if (range) {
    const [start, last] = range;
    const end = Math.min(last, start + MEDIA_PIECE - 1);
    const blob = await readVia(page, cap, start, end - start + 1);
    return new Response(blob, {
      status: 206,
      headers: {
        'content-type': type,
        'content-range': `bytes ${start}-${end}/${size}`,
        'content-length': String(end - start + 1),
        'accept-ranges': 'bytes',
      },
    });
  }
  let offset = 0;
  /** @type {ReadableStream<Uint8Array<ArrayBuffer>>} */
  const body = new ReadableStream({
    async pull(controller) {
      if (offset >= size) {
        controller.close();
        return;
      }
      const length = Math.min(DOWNLOAD_PIECE, size - offset);
      const blob = await readVia(page, cap, offset, length);
      offset += length;
      controller.enqueue(new Uint8Array(await blob.arrayBuffer()));
      if (offset >= size) controller.close();
    },
  }, { highWaterMark: 0 });
  return new Response(body, {
    headers: {
      'content-type': type,
      'content-length': String(size),
      'accept-ranges': 'bytes',
      'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(name)}`,
    },
  });
}
