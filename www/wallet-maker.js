// @ts-check
// Makes a new wallet's seed (the account work: 2^16 ed25519 keys, a few seconds of one
// thread, once per wallet) on a thread of its own, so that the client's worker (worker.js)
// keeps serving its swarm, a donation and the page meanwhile. Answers one message, the seed.
import init, { makeWalletSeed } from './pkg/kura_client.js';

init().then(() => {
  postMessage({ seed: makeWalletSeed() });
}).catch(e => {
  postMessage({ error: String(e) });
});
