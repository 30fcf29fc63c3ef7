// A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`, for benchmarks.
//
// Playwright enables the Network domain on every page and worker it attaches to, so each
// WebSocket frame the page sends is copied, base64-encoded and shipped to Node as an event:
// that costs more CPU than the upload itself on a 2-core machine. Benchmarks drive Chromium
// with this client instead, which enables no domain it does not use (a person's browser has
// no DevTools attached either).
import { spawn } from 'node:child_process';

export async function launch(args = []) {
  const exe = process.env.CHROMIUM || '/usr/bin/chromium';
  const proc = spawn(exe, [...args, '--remote-debugging-pipe', 'about:blank'],
    { stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe'] });
  const toBrowser = proc.stdio[3];
  const fromBrowser = proc.stdio[4];
  let nextId = 1;
  const pending = new Map();
  const listeners = [];
  let rest = '';
  fromBrowser.setEncoding('utf8');
  fromBrowser.on('data', chunk => {
    const parts = (rest + chunk).split('\0');
    rest = parts.pop();
    for (const part of parts) {
      const msg = JSON.parse(part);
      if (msg.id !== undefined) {
        const p = pending.get(msg.id);
        pending.delete(msg.id);
        if (msg.error) p.reject(new Error(`${p.method}: ${msg.error.message}`));
        else p.resolve(msg.result);
      } else {
        for (const l of [...listeners]) l(msg);
      }
    }
  });
  const exited = new Promise(r => proc.on('exit', r));
  exited.then(() => { for (const p of pending.values()) p.reject(new Error(`chromium exited during ${p.method}`)); });

  const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject, method });
    toBrowser.write(JSON.stringify({ id, method, params, sessionId }) + '\0');
  });
  // Resolves with the params of the first event `method` (in `sessionId`, if given) that
  // satisfies `pred`.
  const once = (method, pred = () => true, sessionId) => new Promise(resolve => {
    const l = msg => {
      if (msg.method === method && (!sessionId || msg.sessionId === sessionId) && pred(msg.params)) {
        listeners.splice(listeners.indexOf(l), 1);
        resolve(msg.params);
      }
    };
    listeners.push(l);
  });

  // A page in `contextId` (the default context when undefined), attached.
  async function newPage(url, contextId) {
    const { targetId } = await send('Target.createTarget', { url: 'about:blank', browserContextId: contextId });
    const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
    await send('Page.enable', {}, sessionId);
    const loaded = once('Page.loadEventFired', () => true, sessionId);
    await send('Page.navigate', { url }, sessionId);
    await loaded;
    const evaluate = async (expression, opts = {}) => {
      const r = await send('Runtime.evaluate',
        { expression, awaitPromise: true, returnByValue: true, ...opts }, sessionId);
      if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value;
    };
    // Waits (polling in the page, every 100 ms) until `expression` is truthy; returns it.
    const waitFor = (expression, timeoutMs) => evaluate(`new Promise((resolve, reject) => {
      const t0 = Date.now();
      const f = () => { const v = (${expression}); if (v) resolve(v); else if (Date.now() - t0 > ${timeoutMs}) reject(new Error('timed out')); else setTimeout(f, 100); };
      f(); })`);
    const setFiles = async (selector, files) => {
      const { root } = await send('DOM.getDocument', {}, sessionId);
      const { nodeId } = await send('DOM.querySelector', { nodeId: root.nodeId, selector }, sessionId);
      await send('DOM.setFileInputFiles', { nodeId, files }, sessionId);
    };
    return { sessionId, evaluate, waitFor, setFiles };
  }

  const close = async () => {
    await send('Browser.close').catch(() => {});
    await exited;
  };
  return { send, once, newPage, close };
}
