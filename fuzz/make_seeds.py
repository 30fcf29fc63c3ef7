#!/usr/bin/env python3
"""Writes valid inputs for each fuzz target into fuzz/seeds/<target>/, built from the
known-answer vectors and the documented layouts, so fuzzing starts past the parsers' first
checks. Usage: python3 fuzz/make_seeds.py"""
import json, os, struct

here = os.path.dirname(os.path.abspath(__file__))
kat = json.load(open(os.path.join(here, "..", "core", "tests", "vectors", "kat.json")))

def put(target, name, data):
    d = os.path.join(here, "seeds", target)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)

def pstr(s):
    b = s.encode(); return varint(len(b)) + b

for i, c in enumerate(kat["capabilities"]):
    put("capability_text", f"cap{i}", c["text"].encode())
    put("capability_text", f"link{i}", ("https://x/#" + c["text"]).encode())
for i, f in enumerate(kat["files"]):
    put("capability_text", f"file{i}", f["capability"].encode())
    put("stripe_header", f"h{i}", bytes.fromhex(f["first_stripe_header"]))

def chunk_ref(i, n):
    return bytes([i]) * 32 + bytes([255 - i]) * 32 + varint(n)

for chunks in (0, 1, 3):
    lens = [4096] * chunks
    if chunks: lens[-1] = 100
    body = varint(0) + pstr("a.txt") + pstr("text/plain") + varint(sum(lens)) + varint(4096)
    body += varint(chunks) + b"".join(chunk_ref(i, n) for i, n in enumerate(lens))
    put("data_map", f"file{chunks}", b"\x01" + body)
nested = varint(1) + varint(5000) + varint(4096) + varint(2) + chunk_ref(0, 4096) + chunk_ref(1, 904)
put("data_map", "nested", b"\x01" + nested)

def frame(body):
    return struct.pack(">I", len(body)) + body
sid = bytes(range(32))
hdr = bytes.fromhex(kat["files"][1]["first_stripe_header"])
msgs = {
    "store": varint(0) + varint(len(hdr)) + hdr + varint(5) + b"\x00" * 5,
    "fetch": varint(1) + sid,
    "holds": varint(2) + varint(2) + sid + sid,
    "stored": varint(0) + varint(3),
    "shards": varint(1) + varint(len(hdr)) + hdr + varint(1) + varint(3) + b"abc",
    "held": varint(2) + varint(1) + sid + varint(2) + b"\x00\x01",
    "error": varint(3) + varint(4) + pstr("full"),
}
for name, body in msgs.items():
    put("wire_frame", name, frame(body))
put("wire_frame", "two", frame(msgs["fetch"]) + frame(msgs["holds"]))
# body_reader: a count of piece sizes (low 4 bits), the sizes, then one frame.
for name, body in msgs.items():
    put("body_reader", name, b"\x00" + frame(body))
    put("body_reader", name + "_pieces", b"\x03" + bytes([1, 7, 200]) + frame(body))
put("decoder", "all_good", b"\x01\x00" + b"\x00" * 64)
put("decoder", "range", b"\x00\x05" + b"\x00" * 64)
put("decoder", "damage", b"\x01\x00" + bytes([0x05, 3, 0x0a, 7, 0x0f, 1]) * 10)
# ledger_codec: requests and answers of /kura/ledger/1 from the transfer vectors.
for i, t in enumerate(kat["transfers"]):
    signed = bytes.fromhex(t["encoding"]) + bytes.fromhex(t["owner_signature"])
    ack = bytes(range(32)) + bytes.fromhex(t["ack_signature"])
    put("ledger_codec", f"ack{i}", frame(varint(0) + signed))
    put("ledger_codec", f"apply{i}", frame(varint(1) + signed + varint(2) + ack + ack))
    put("ledger_codec", f"acked{i}", frame(varint(0) + ack))
    view = varint(int(t["seq"])) + varint(int(t["amount"])) + varint(1) + sid + varint(5)
    put("ledger_codec", f"view{i}", frame(varint(2) + view + varint(1) + bytes.fromhex(t["encoding"]) + b"\x00"))
    put("ledger_codec", f"cert{i}", frame(varint(3) + signed + varint(1) + ack))
    put("ledger_codec", f"certreq{i}", frame(varint(3) + bytes.fromhex(t["id"])))
put("ledger_codec", "account", frame(varint(2) + sid))
put("ledger_codec", "applied", frame(varint(1) + b"\x01\x01\x00"))
put("ledger_codec", "refused", frame(varint(4) + varint(4) + pstr("overdraft")))
# A state request, and a page of a state with two credits and one spent id (its digest is
# not the state's: the target's assembly refuses it, and mutations explore from there).
put("ledger_codec", "statereq", frame(varint(4) + sid + varint(0)))
summary = sid + varint(21) + varint(800) + bytes(32) + varint(2) + varint(1)
items = varint(2) + bytes([1]) * 32 + varint(50) + bytes([2]) * 32 + varint(7) + varint(1) + bytes([3]) * 32
put("ledger_codec", "statepage", frame(varint(5) + summary + varint(0) + items))
print("seeds written to", os.path.join(here, "seeds"))
