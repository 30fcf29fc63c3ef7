#!/usr/bin/env python3
"""An independent implementation of Kura's v1 data format, written from
docs/architecture.md alone, checked against core/tests/vectors/kat.json: chunk keys,
ChaCha20-Poly1305, the stripe header, Reed-Solomon parity (GF(2^8), x^8+x^4+x^3+x^2+1,
systematic Vandermonde matrix), shard addresses, data maps (postcard, nested) and the
capability text, proofs of possession (BLAKE3 chaining values computed here from the
BLAKE3 paper's compression function), and ledger transfers (postcard encoded here, ids,
ed25519 signatures by OpenSSL through `cryptography`). Needs the `blake3` and
`cryptography` Python packages."""
import json, struct, os, sys
import blake3
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.exceptions import InvalidSignature

KAT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "core", "tests", "vectors", "kat.json")

# GF(2^8)
EXP, LOG = [0] * 512, [0] * 256
x = 1
for i in range(255):
    EXP[i] = x; LOG[x] = i
    x <<= 1
    if x & 0x100: x ^= 0x11D
for i in range(255, 512): EXP[i] = EXP[i - 255]
def gmul(a, b): return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]
def gpow(a, n): return 1 if n == 0 else (0 if a == 0 else EXP[(LOG[a] * n) % 255])
def ginv(a): return EXP[255 - LOG[a]]

def mat_inv(m):
    n = len(m); a = [row[:] + [int(i == j) for j in range(n)] for i, row in enumerate(m)]
    for c in range(n):
        p = next(r for r in range(c, n) if a[r][c])
        a[c], a[p] = a[p], a[c]
        iv = ginv(a[c][c]); a[c] = [gmul(v, iv) for v in a[c]]
        for r in range(n):
            if r != c and a[r][c]:
                f = a[r][c]; a[r] = [v ^ gmul(f, w) for v, w in zip(a[r], a[c])]
    return [row[n:] for row in a]

def parity_rows(k, m):
    """Rows k..n of V * inverse(V[:k]), V the (k+m) x k Vandermonde matrix V[r][c] = r^c."""
    vand = [[gpow(r, c) for c in range(k)] for r in range(k + m)]
    top = mat_inv(vand[:k])
    rows = []
    for r in range(k, k + m):
        row = []
        for c in range(k):
            v = 0
            for t in range(k): v ^= gmul(vand[r][t], top[t][c])
            row.append(v)
        rows.append(row)
    return rows

def stripe(plaintext, secret, k, m):
    key = blake3.blake3(secret + blake3.blake3(plaintext).digest(), derive_key_context="kura chunk key v1").digest()
    ct = ChaCha20Poly1305(key).encrypt(b"\0" * 12, plaintext, None)
    L = -(-len(ct) // k)
    padded = ct + b"\0" * (L * k - len(ct))
    data = [padded[i * L:(i + 1) * L] for i in range(k)]
    par = []
    for row in parity_rows(k, m):
        out = bytearray(L)
        for c, d in zip(row, data):
            if c:
                for i, b in enumerate(d): out[i] ^= gmul(c, b)
        par.append(bytes(out))
    shards = data + par
    header = bytes([1, k, m, 0]) + L.to_bytes(4, "little") + len(ct).to_bytes(4, "little")
    header += b"".join(blake3.blake3(s).digest() for s in shards)
    return blake3.blake3(header).digest(), key, header, shards

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7; out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)
def pstr(s): b = s.encode(); return varint(len(b)) + b
def refs(rs): return varint(len(rs)) + b"".join(i + k + varint(n) for i, k, n in rs)

def encode_file(data, secret, k, m, cs, name, media):
    stripes, chunk_refs = [], []
    for off in range(0, len(data), cs):
        pt = data[off:off + cs]
        sid, key, header, shards = stripe(pt, secret, k, m)
        stripes.append((sid, header, shards)); chunk_refs.append((sid, key, len(pt)))
    level = b"\x01" + varint(0) + pstr(name) + pstr(media) + varint(len(data)) + varint(cs) + refs(chunk_refs)
    while len(level) > cs:
        lrefs = []
        for off in range(0, len(level), cs):
            pt = level[off:off + cs]
            sid, key, header, shards = stripe(pt, secret, k, m)
            stripes.append((sid, header, shards)); lrefs.append((sid, key, len(pt)))
        level = b"\x01" + varint(1) + varint(len(level)) + varint(cs) + refs(lrefs)
    sid, key, header, shards = stripe(level, secret, k, m)
    stripes.append((sid, header, shards))
    return stripes, sid, key

B32 = "abcdefghijklmnopqrstuvwxyz234567"
# BLAKE3's compression function and tree, from the BLAKE3 paper (the Python package only
# gives whole hashes; proofs need chaining values of subtrees).
B3_IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
B3_PERM = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
M32 = 0xFFFFFFFF

def b3_compress(cv, block, counter, block_len, flags):
    rotr = lambda x, n: ((x >> n) | (x << (32 - n))) & M32
    m = list(struct.unpack("<16I", block.ljust(64, b"\0")))
    v = cv[:] + B3_IV[:4] + [counter & M32, counter >> 32, block_len, flags]
    def g(a, b, c, d, x, y):
        v[a] = (v[a] + v[b] + x) & M32; v[d] = rotr(v[d] ^ v[a], 16)
        v[c] = (v[c] + v[d]) & M32; v[b] = rotr(v[b] ^ v[c], 12)
        v[a] = (v[a] + v[b] + y) & M32; v[d] = rotr(v[d] ^ v[a], 8)
        v[c] = (v[c] + v[d]) & M32; v[b] = rotr(v[b] ^ v[c], 7)
    for r in range(7):
        g(0, 4, 8, 12, m[0], m[1]); g(1, 5, 9, 13, m[2], m[3]); g(2, 6, 10, 14, m[4], m[5]); g(3, 7, 11, 15, m[6], m[7])
        g(0, 5, 10, 15, m[8], m[9]); g(1, 6, 11, 12, m[10], m[11]); g(2, 7, 8, 13, m[12], m[13]); g(3, 4, 9, 14, m[14], m[15])
        if r < 6: m = [m[i] for i in B3_PERM]
    return [v[i] ^ v[i + 8] for i in range(8)]

def b3_chunk_cv(data, index, root=False):
    cv, blocks = B3_IV[:], [data[i:i + 64] for i in range(0, len(data), 64)] or [b""]
    for j, blk in enumerate(blocks):
        last = j == len(blocks) - 1
        flags = (CHUNK_START if j == 0 else 0) | (CHUNK_END if last else 0) | (ROOT if root and last else 0)
        cv = b3_compress(cv, blk, index, len(blk), flags)
    return cv

def b3_parent(left, right, root=False):
    return b3_compress(B3_IV[:], struct.pack("<16I", *(left + right)), 0, 64, PARENT | (ROOT if root else 0))

def b3_left_len(n):  # bytes in the left subtree of n > 1024 bytes: the largest power-of-two chunks below n
    chunks = (n - 1) // 1024
    return 1024 * (1 << (chunks.bit_length() - 1))

def b3_subtree_cv(data, offset):
    if len(data) <= 1024: return b3_chunk_cv(data, offset // 1024)
    left = b3_left_len(len(data))
    return b3_parent(b3_subtree_cv(data[:left], offset), b3_subtree_cv(data[left:], offset + left))

def cv_bytes(cv): return struct.pack("<8I", *cv)
def cv_words(b): return list(struct.unpack("<8I", b))

def challenged_chunk(domain, nonce, holder, address, length):
    h = blake3.blake3(domain + nonce + struct.pack("<Q", len(holder)) + holder + address).digest()
    return struct.unpack("<Q", h[:8])[0] % max(1, -(-length // 1024))

def prove(shard, chunk):
    """The chunk and the sibling chaining values (top first) on its path, as Kura proves."""
    target, siblings, start, size = min(chunk * 1024, len(shard)), [], 0, len(shard)
    while size > 1024:
        left = b3_left_len(size)
        if target < start + left:
            siblings.append(cv_bytes(b3_subtree_cv(shard[start + left:start + size], start + left))); size = left
        else:
            siblings.append(cv_bytes(b3_subtree_cv(shard[start:start + left], start))); start += left; size -= left
    return shard[start:start + size], siblings, start

def verify(address, length, chunk, chunk_bytes, siblings):
    target, path, start, size = min(chunk * 1024, length), [], 0, length
    while size > 1024:
        left = b3_left_len(size); goes_left = target < start + left; path.append(goes_left)
        if goes_left: size = left
        else: start += left; size -= left
    if len(chunk_bytes) != size or len(siblings) != len(path): return False
    if not path: return blake3.blake3(chunk_bytes).digest() == address
    cv = b3_chunk_cv(chunk_bytes, start // 1024)
    for level in range(len(path) - 1, -1, -1):
        sib = cv_words(siblings[level])
        l, r = (cv, sib) if path[level] else (sib, cv)
        cv = b3_parent(l, r, root=(level == 0))
    return cv_bytes(cv) == address

def encode_transfer(t):
    """postcard: fixed arrays as raw bytes, integers as varints, sequences length-first."""
    deps = [bytes.fromhex(d) for d in t["deps"]]
    memo = bytes.fromhex(t["memo"])
    return (bytes.fromhex(t["owner_key"]) + varint(t["seq"]) + bytes.fromhex(t["to"]) + varint(int(t["amount"]))
            + varint(len(deps)) + b"".join(deps) + varint(len(memo)) + memo)

def ed25519_ok(key, sig, msg):
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(sig, msg)
        return True
    except InvalidSignature:
        return False

def cap_text(root, key):
    raw = root + key
    raw += blake3.blake3(raw, derive_key_context="kura capability checksum v1").digest()[:4]
    bits = "".join(f"{b:08b}" for b in raw); bits += "0" * (-len(bits) % 5)
    return "kura1" + "".join(B32[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))

def main():
    kat = json.load(open(KAT)); fails = 0
    def check(what, got, want):
        nonlocal fails
        if got != want: fails += 1; print(f"MISMATCH {what}: {got!r} != {want!r}")
    pattern = lambda n: bytes((i * 31 + 7) % 251 for i in range(n))
    for c in kat["chunk_keys"]:
        secret = bytes.fromhex(c["secret"]) if c["secret"] else b""
        key = blake3.blake3(secret + blake3.blake3(pattern(c["plaintext_len"])).digest(),
                            derive_key_context=kat["chunk_key_context"]).hexdigest()
        check(f"chunk key {c['plaintext_len']}", key, c["key"])
    for c in kat["capabilities"]:
        check("capability", cap_text(bytes.fromhex(c["root"]), bytes.fromhex(c["key"])), c["text"])
    for f in kat["files"]:
        secret = bytes.fromhex(f["secret"]) if f["secret"] else b""
        stripes, root, key = encode_file(pattern(f["size"]), secret, f["k"], f["m"], f["chunk_size"], f["name"], f["media_type"])
        tag = f"file size={f['size']} k={f['k']} m={f['m']}"
        check(tag + " stripes", len(stripes), f["stripe_count"])
        sid, header, shards = stripes[0]
        check(tag + " first stripe", sid.hex(), f["first_stripe"])
        check(tag + " first header", header.hex(), f["first_stripe_header"])
        check(tag + " shards", [blake3.blake3(s).hexdigest() for s in shards], f["first_stripe_shards"])
        check(tag + " last stripe", stripes[-1][0].hex(), f["last_stripe"])
        check(tag + " capability", cap_text(root, key), f["capability"])
    for p in kat["proofs"]:
        shard, tag = pattern(p["shard_len"]), f"proof of a {p['shard_len']}-byte shard"
        address = blake3.blake3(shard).digest()
        check(tag + " address", address.hex(), p["address"])
        chunk = challenged_chunk(kat["proof_domain"].encode(), bytes.fromhex(p["nonce"]), bytes.fromhex(p["holder"]), address, len(shard))
        check(tag + " chunk", chunk, p["chunk"])
        got, siblings, _ = prove(shard, chunk)
        check(tag + " chunk bytes", got.hex(), p["chunk_bytes"])
        check(tag + " siblings", [x.hex() for x in siblings], p["siblings"])
        check(tag + " verifies", verify(address, len(shard), chunk, got, siblings), True)
        if siblings:
            bad = bytearray(siblings[-1]); bad[0] ^= 1
            check(tag + " a flipped bit fails", verify(address, len(shard), chunk, got, siblings[:-1] + [bytes(bad)]), False)
    for t in kat["transfers"]:
        tag = f"transfer seq {t['seq']}"
        owner = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(t["owner_seed"]))
        key = owner.public_key().public_bytes_raw()
        check(tag + " owner key", key.hex(), t["owner_key"])
        enc = encode_transfer(t)
        check(tag + " encoding", enc.hex(), t["encoding"])
        tid = blake3.blake3(kat["transfer_domain"].encode() + enc).digest()
        check(tag + " id", tid.hex(), t["id"])
        # Ed25519 signatures are deterministic: the same key and message, the same bytes.
        check(tag + " owner signature", owner.sign(tid).hex(), t["owner_signature"])
        check(tag + " owner signature verifies", ed25519_ok(key, bytes.fromhex(t["owner_signature"]), tid), True)
        ack = kat["ack_domain"].encode() + key + struct.pack("<Q", t["seq"]) + tid
        check(tag + " ack message", ack.hex(), t["ack_message"])
        replica = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(t["replica_seed"]))
        check(tag + " ack signature", replica.sign(ack).hex(), t["ack_signature"])
        bad = bytearray(ack); bad[-1] ^= 1
        check(tag + " a changed ack fails", ed25519_ok(replica.public_key().public_bytes_raw(), bytes.fromhex(t["ack_signature"]), bytes(bad)), False)
    n = len(kat["chunk_keys"]) + len(kat["capabilities"]) + len(kat["files"]) + len(kat["proofs"]) + len(kat["transfers"])
    print(f"{n} vectors checked by the Python implementation: {'all match' if not fails else f'{fails} mismatches'}")
    sys.exit(1 if fails else 0)

main()
