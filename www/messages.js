// @ts-check
// What the page (app.js), the client's worker (worker.js) and the service worker (sw.js) say
// to each other about failures, written and read here only. The client rejects with an
// Error that carries `kind` and `details` (kura-core's ErrorKind, see web.rs); an Error's
// own fields do not survive postMessage, so errors cross as plain data and become Errors
// again on the other side. Words for people are chosen by kind, never by reading the text.

/** @typedef {'too-few-relays' | 'unavailable' | 'damaged-link' | 'unreachable' | 'quota-full'
 *   | 'busy' | 'unpaid' | 'refused' | 'corrupt' | 'bad-request' | 'internal'} ErrorKind */
/** @typedef {{ found?: number, needed?: number, stripes?: string[], relayCode?: number }} ErrorDetails */
/** @typedef {{ kind: ErrorKind, message: string, details: ErrorDetails }} ErrorData */
/** @typedef {Error & { kind: ErrorKind, details: ErrorDetails }} KuraError */

/** @type {ReadonlyArray<ErrorKind>} */
export const KINDS = ['too-few-relays', 'unavailable', 'damaged-link', 'unreachable', 'quota-full',
  'busy', 'unpaid', 'refused', 'corrupt', 'bad-request', 'internal'];

/**
 * A failure as data that can cross postMessage. An error without a kind (a bug in the
 * page, a browser failure) is `internal`.
 * @param {unknown} e
 * @returns {ErrorData}
 */
export function errorData(e) {
  const any = /** @type {{ kind?: unknown, message?: unknown, details?: unknown }} */ (e ?? {});
  const kind = KINDS.find(k => k === any.kind) ?? 'internal';
  const message = typeof any.message === 'string' ? any.message : String(e);
  const details = any.details && typeof any.details === 'object' ? /** @type {ErrorDetails} */ (any.details) : {};
  return { kind, message, details };
}

/**
 * An Error again, from data made by `errorData`.
 * @param {ErrorData} data
 * @returns {KuraError}
 */
export function toError(data) {
  return Object.assign(new Error(data.message), { kind: data.kind, details: data.details });
}

/**
 * An error of a kind, made here (for failures the page itself finds).
 * @param {ErrorKind} kind
 * @param {string} message
 * @returns {KuraError}
 */
export function kuraError(kind, message) {
  return toError({ kind, message, details: {} });
}

/**
 * Words a person can act on, chosen by the error's kind; its own message follows in
 * parentheses for whoever needs the detail.
 * @param {unknown} e
 * @returns {string}
 */
export function explain(e) {
  const { kind, message, details } = errorData(e);
  const of = details.found !== undefined && details.needed !== undefined
    ? ` (${details.found} of the ${details.needed} needed)` : '';
  switch (kind) {
    case 'too-few-relays':
      return `Too few relays are reachable to store this safely right now${of}. Try again in a moment.`;
    case 'unavailable':
      return `This file is unavailable: too few of its pieces are reachable${of}. Try again later. (${message})`;
    case 'damaged-link':
      return `This link is damaged: part of it is missing or changed. Ask for the link again. (${message})`;
    case 'unreachable':
      return `No relay is reachable right now. Check your connection and try again. (${message})`;
    case 'quota-full':
      return `The relays are full and cannot store more right now. (${message})`;
    case 'busy':
      return `The relays are busy. Try again in a moment. (${message})`;
    case 'unpaid':
      return `The relays store this much only when it is paid for: the free allowance is used. (${message})`;
    case 'refused':
      return `The relays refused this. (${message})`;
    case 'corrupt':
      return `The file's data does not check out: it may be damaged. (${message})`;
    case 'bad-request':
      return `This cannot be done: ${message}`;
    default:
      return `Something went wrong in Kura: ${message}`;
  }
}
