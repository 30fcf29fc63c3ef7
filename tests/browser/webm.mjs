// A real, seekable VP8 video for the page test, made without any video tool installed:
// Chromium encodes the frames (WebCodecs `VideoEncoder`, in the page), and `mux` below
// writes them into a WebM file with a duration, one cluster per key frame and cues, so a
// player can jump to any second by reading only the bytes around it.

// Runs in a page (a secure context: WebCodecs needs one). Draws `seconds * fps` frames of
// `width` x `height`: random noise (so the file has some size) under a band of six black or
// white blocks that spell the second in binary (block b is white when bit b is set: robust
// to lossy coding and to the colour-range conversions a player makes), encodes them as VP8 with a
// key frame every second, and returns { chunks: [{ key, ms, b64 }] }.
export const encodeInPage = async ({ seconds, fps, width, height, bitrate }) => {
  const canvas = new OffscreenCanvas(width, height);
  const g = canvas.getContext('2d');
  const chunks = [];
  let failed = null;
  const enc = new VideoEncoder({
    output: (chunk) => {
      const bytes = new Uint8Array(chunk.byteLength);
      chunk.copyTo(bytes);
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      chunks.push({ key: chunk.type === 'key', ms: Math.round(chunk.timestamp / 1000), b64: btoa(bin) });
    },
    error: (e) => { failed = e; },
  });
  enc.configure({ codec: 'vp8', width, height, bitrate, framerate: fps });
  const noise = g.createImageData(width, height);
  let x = 0x9e3779b9;
  for (let f = 0; f < seconds * fps; f++) {
    for (let i = 0; i < noise.data.length; i += 4) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      noise.data[i] = x & 255; noise.data[i + 1] = (x >>> 8) & 255; noise.data[i + 2] = (x >>> 16) & 255;
      noise.data[i + 3] = 255;
    }
    g.putImageData(noise, 0, 0);
    const second = Math.floor(f / fps);
    for (let b = 0; b < 6; b++) {
      g.fillStyle = (second >> b) & 1 ? '#fff' : '#000';
      g.fillRect((b * width) / 6, 0, width / 6, height / 2);
    }
    const frame = new VideoFrame(canvas, { timestamp: Math.round((f * 1e6) / fps) });
    enc.encode(frame, { keyFrame: f % fps === 0 });
    frame.close();
    if (enc.encodeQueueSize > 8) await new Promise(ok => enc.addEventListener('dequeue', ok, { once: true }));
    if (failed) throw failed;
  }
  await enc.flush();
  enc.close();
  if (failed) throw failed;
  return { chunks };
};

// Runs in a page: the second spelled by the blocks of the frame `video` shows.
export const secondShown = (video) => {
  const c = document.createElement('canvas');
  c.width = video.videoWidth; c.height = video.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(video, 0, 0);
  let second = 0;
  for (let b = 0; b < 6; b++) {
    const px = g.getImageData(((b + 0.5) * c.width) / 6 - 12, c.height / 4 - 12, 24, 24).data;
    let sum = 0;
    for (let i = 0; i < px.length; i += 4) sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
    if (sum / (px.length / 4) > 128) second |= 1 << b;
  }
  return second;
};

// EBML: an element is its id, its size as a variable-length integer, then its body.
function vint(n) {
  for (let len = 1; len <= 8; len++) {
    if (n < 2 ** (7 * len) - 1) {
      const b = Buffer.alloc(len);
      let v = n;
      for (let i = len - 1; i >= 0; i--) { b[i] = v % 256; v = Math.floor(v / 256); }
      b[0] |= 0x80 >> (len - 1);
      return b;
    }
  }
  throw new Error(`EBML size too large: ${n}`);
}
function idBytes(id) {
  const hex = id.toString(16);
  return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
}
function el(id, ...body) {
  const data = Buffer.concat(body);
  return Buffer.concat([idBytes(id), vint(data.length), data]);
}
function uint(id, v, width) {
  let w = width ?? 1;
  while (!width && v >= 2 ** (8 * w)) w++;
  const b = Buffer.alloc(w);
  let x = v;
  for (let i = w - 1; i >= 0; i--) { b[i] = x % 256; x = Math.floor(x / 256); }
  return el(id, b);
}
const str = (id, s) => el(id, Buffer.from(s, 'utf8'));
function float(id, v) {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  return el(id, b);
}

// Muxes encoded VP8 chunks (from `encodeInPage`) into a WebM file. Returns the file and,
// for each second, the byte offset of the cluster that starts there.
export function mux({ chunks }, { width, height, durationMs }) {
  if (!chunks.length || !chunks[0].key) throw new Error('the first chunk must be a key frame');
  const head = el(0x1a45dfa3, uint(0x4286, 1), uint(0x42f7, 1), uint(0x42f2, 4), uint(0x42f3, 8),
    str(0x4282, 'webm'), uint(0x4287, 2), uint(0x4285, 2));
  const info = el(0x1549a966, uint(0x2ad7b1, 1_000_000), float(0x4489, durationMs),
    str(0x4d80, 'kura-page-test'), str(0x5741, 'kura-page-test'));
  const tracks = el(0x1654ae6b, el(0xae, uint(0xd7, 1), uint(0x73c5, 1), uint(0x83, 1), str(0x86, 'V_VP8'),
    el(0xe0, uint(0xb0, width), uint(0xba, height))));
  // One cluster per key frame.
  const clusters = [];
  for (const c of chunks) {
    if (c.key || !clusters.length) clusters.push({ ms: c.ms, blocks: [] });
    const cl = clusters[clusters.length - 1];
    const hdr = Buffer.alloc(4);
    hdr[0] = 0x81; // track 1
    hdr.writeInt16BE(c.ms - cl.ms, 1);
    hdr[3] = c.key ? 0x80 : 0;
    cl.blocks.push(el(0xa3, hdr, Buffer.from(c.b64, 'base64')));
  }
  const clusterBytes = clusters.map(cl => el(0x1f43b675, uint(0xe7, cl.ms), ...cl.blocks));
  // The seek head has a fixed size (8-byte positions), so every offset is known up front.
  const seekHead = (infoPos, tracksPos, cuesPos) => el(0x114d9b74,
    ...[[0x1549a966, infoPos], [0x1654ae6b, tracksPos], [0x1c53bb6b, cuesPos]]
      .map(([id, at]) => el(0x4dbb, el(0x53ab, idBytes(id)), uint(0x53ac, at, 8))));
  const infoPos = seekHead(0, 0, 0).length;
  const tracksPos = infoPos + info.length;
  let pos = tracksPos + tracks.length;
  const clusterPos = clusterBytes.map(b => { const p = pos; pos += b.length; return p; });
  const cuesPos = pos;
  const cues = el(0x1c53bb6b, ...clusters.map((cl, i) =>
    el(0xbb, uint(0xb3, cl.ms), el(0xb7, uint(0xf7, 1), uint(0xf1, clusterPos[i])))));
  const seek = seekHead(infoPos, tracksPos, cuesPos);
  const body = Buffer.concat([seek, info, tracks, ...clusterBytes, cues]);
  const segment = Buffer.concat([idBytes(0x18538067), vint(body.length), body]);
  const segmentData = head.length + segment.length - body.length;
  const secondAt = clusters.map((cl, i) => ({ ms: cl.ms, offset: segmentData + clusterPos[i] }));
  return { file: Buffer.concat([head, segment]), clusters: secondAt };
}
