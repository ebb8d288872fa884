#!/usr/bin/env bash
# Seeds fuzz/corpus/decode_batch with real batches: the Java-written fixtures (each codec,
# split into single batches) behind steering bytes 0x01 (re-sign) and 0x00, plus each
# batch's compressed section alone for the direct decompressor path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/corpus/decode_batch"
mkdir -p "$out"
python3 - "$here/../crates/courier-core/tests/fixtures/java" "$out" <<'PY'
import os, struct, sys
src, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    if not name.endswith(".bin"):
        continue
    data = open(os.path.join(src, name), "rb").read()
    pos, n = 0, 0
    while pos + 12 <= len(data):
        total = struct.unpack(">i", data[pos + 8:pos + 12])[0] + 12
        batch = data[pos:pos + total]
        codec = batch[22] & 7
        for steer in (0x01, 0x00):
            open(os.path.join(out, f"{name}-{n}-{steer:02x}"), "wb").write(bytes([steer]) + batch)
        # Direct decompressor seed: the compressed section alone, codec in bits 1-3.
        open(os.path.join(out, f"{name}-{n}-raw"), "wb").write(bytes([codec << 1]) + batch[61:])
        pos += total
        n += 1
PY
ls "$out" | wc -l

# Wire decoder targets: the real Kafka 4.3.1 replies of crates/courier-core/tests/fixtures/wire
# with their response header stripped, behind the selector byte that picks their version
# (version - the target's lowest version), plus hand-made SASL bodies (no SASL broker in
# the test kit).
python3 - "$here/../crates/courier-core/tests/fixtures/wire" "$here/corpus" <<'PY'
import os, struct, sys
src, out = sys.argv[1], sys.argv[2]
# file prefix -> (target, lowest version, first flexible version or None)
targets = {
    "api_versions": ("decode_api_versions", 0, None),  # header v0 always (KIP-511)
    "metadata": ("decode_metadata", 4, 9),
    "produce": ("decode_produce", 3, 9),
    "init_producer_id": ("decode_init_producer_id", 0, 2),
    "describe_configs": ("decode_describe_configs", 1, 4),
}
def seed(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    open(os.path.join(out, target, name), "wb").write(data)
for name in sorted(os.listdir(src)):
    if not name.endswith(".bin"):
        continue
    for prefix, (target, lowest, flexible) in targets.items():
        if name.startswith(prefix + "_v"):
            version = int(name[len(prefix) + 2:].split("_")[0].split(".")[0])
            frame = open(os.path.join(src, name), "rb").read()
            header = 5 if flexible is not None and version >= flexible else 4
            seed(target, name, bytes([version - lowest]) + frame[header:])
def s16(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b
handshake = struct.pack(">hi", 0, 2) + s16("PLAIN") + s16("SCRAM-SHA-512")
seed("decode_sasl", "handshake_v0", bytes([0]) + handshake)
seed("decode_sasl", "handshake_v1", bytes([1]) + handshake)
auth_classic = struct.pack(">h", 0) + struct.pack(">h", -1) + struct.pack(">i", 3) + b"abc"
seed("decode_sasl", "authenticate_v0", bytes([0x80]) + auth_classic)
seed("decode_sasl", "authenticate_v1", bytes([0x81]) + auth_classic + struct.pack(">q", 3600000))
auth_v2 = struct.pack(">h", 58) + bytes([6]) + b"nope!" + bytes([4]) + b"xyz" + struct.pack(">q", 0) + bytes([0])
seed("decode_sasl", "authenticate_v2", bytes([0x82]) + auth_v2)
PY
for t in decode_api_versions decode_metadata decode_produce decode_init_producer_id decode_describe_configs decode_sasl; do
    echo "$t: $(ls "$here/corpus/$t" | wc -l) seeds"
done
