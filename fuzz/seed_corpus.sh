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
