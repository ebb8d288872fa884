#!/usr/bin/env python3
"""`courier produce` against `kcat -P` on the same file, the swap users make (issue 16).

Starts one real broker with the test kit, writes a file of `key:value` lines (a key
among 1,000, a JSON value of about 100 B, as the issue's experiment had), and runs

    courier produce -b B -t T -K: -l -z CODEC -X acks=all -X enable.idempotence=true -X linger.ms=5 FILE
    kcat      -P    -b B -t T -K: -l -z CODEC -X acks=all -X enable.idempotence=true -X linger.ms=5 FILE

alternately, each into a fresh topic, `--repeat` times per codec. Each run's wall time,
client CPU (user + system, from /usr/bin/time) and maximum RSS are recorded, and the
bytes the broker stored for the topic (the sizes of its segment files, read from the
broker's log directory). Prints a Markdown table and the courier ÷ kcat ratios of the
medians.

Usage:
    python3 perf/vs_kcat.py [--records 2000000] [--codecs lz4,zstd] [--repeat 3]
                            [--partitions 6] [--set KEY=VALUE ...] [--out FILE.json]

Needs `kcat` on the PATH (Debian/Ubuntu: `apt-get install kcat`; it prints the
librdkafka it was built with, which goes into the output).
"""

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (the side-by-side harness: build, Proc, log)

ROOT = harness.ROOT
SETTINGS = [("acks", "all"), ("enable.idempotence", "true"), ("linger.ms", "5")]


def write_file(path, n, rng):
    """`n` lines of `key:json`, keys among 1,000 customers, values ~100 B."""
    with open(path, "w") as f:
        for i in range(n):
            key = f"customer-{rng.randrange(1000)}"
            value = harness.json_record(rng, 100)
            f.write(f"{key}:{value}\n")


def stored_bytes(run_dir, topic):
    """Bytes of the topic's segment files, anywhere under the cluster's run directory."""
    total = 0
    for part in Path(run_dir).rglob(f"{topic}-*"):
        if part.is_dir():
            total += sum(f.stat().st_size for f in part.glob("*.log"))
    return total


def run_dir_of(kafka):
    """The cluster's run directory, from what courier-kafka printed."""
    for line in kafka.lines:
        if line.startswith("run dir: "):
            return line.split(": ", 1)[1].strip()
    return None


def one(client, bins, bootstrap, topic, codec, path, workdir, idx):
    args = ["-b", bootstrap, "-t", topic, "-K", ":", "-l", "-z", codec]
    for k, v in SETTINGS:
        args += ["-X", f"{k}={v}"]
    if client == "courier":
        cmd = [bins["courier"], "produce", "-q"] + args + [str(path)]
    else:
        cmd = ["kcat", "-P", "-q"] + args + [str(path)]
    timef = workdir / f"{client}-{codec}-{idx}.time"
    full = ["/usr/bin/time", "-f", "%U %S %e %M", "-o", str(timef)] + [str(c) for c in cmd]
    p = subprocess.run(full, capture_output=True, text=True, timeout=1800)
    (workdir / f"{client}-{codec}-{idx}.out").write_text(p.stdout + "\n--- stderr\n" + p.stderr)
    user, sys_, wall, rss = timef.read_text().split()[-4:]
    return {"client": client, "codec": codec, "exit": p.returncode,
            "cpu_s": float(user) + float(sys_), "wall_s": float(wall),
            "max_rss_mb": int(rss) / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--codecs", default="lz4,zstd")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more setting for both clients (e.g. batch.size=1000000, "
                         "librdkafka's default, against courier's 16384, Java's)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    for kv in a.set:
        k, _, v = kv.partition("=")
        SETTINGS.append((k, v))
    if not shutil.which("kcat"):
        sys.exit("kcat is not on the PATH (apt-get install kcat)")
    kcat_version = subprocess.run(["kcat", "-V"], capture_output=True,
                                  text=True).stdout.strip().splitlines()
    kcat_version = next((l for l in kcat_version if "librdkafka" in l), "unknown")
    bins = harness.build(["courier"])
    workdir = ROOT / "perf" / "results" / f"vs-kcat-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "records.txt"
    write_file(path, a.records, random.Random("vs-kcat"))
    kafka = harness.Proc([bins["courier-kafka"], "--brokers", "1"], "the Kafka broker",
                         until="started in")
    rows = []
    try:
        run_dir = run_dir_of(kafka)
        for codec in a.codecs.split(","):
            for r in range(a.repeat):
                # Alternate who goes first, so neither always meets a warmer broker.
                order = ["courier", "kcat"] if r % 2 == 0 else ["kcat", "courier"]
                for client in order:
                    topic = f"vs-{client}-{codec}-{time.time_ns()}"
                    subprocess.run([bins["courier"], "topic", "create", "-b", kafka.bootstrap,
                                    "--topic", topic, "--partitions", str(a.partitions),
                                    "--replication-factor", "1"], check=True,
                                   capture_output=True)
                    row = one(client, bins, kafka.bootstrap, topic, codec, path, workdir, r)
                    time.sleep(1)
                    row["stored_bytes"] = stored_bytes(run_dir, topic) if run_dir else None
                    harness.log(f"  {client:8} {codec}: {row}")
                    rows.append(row)
    finally:
        kafka.stop()

    def med(client, codec, field):
        vals = [r[field] for r in rows if r["client"] == client and r["codec"] == codec
                and r.get(field) is not None]
        return statistics.median(vals) if vals else None

    print(f"`courier produce` vs `kcat -P` ({kcat_version}), {a.records:,} lines of "
          f"key:~100 B JSON, {a.partitions} partitions, one broker, "
          + ", ".join(f"{k}={v}" for k, v in SETTINGS)
          + f"; medians of {a.repeat} alternating runs, commit {harness.git_describe()}\n")
    print("| codec | client | wall (s) | CPU (s) | max RSS (MB) | stored (MB) | runs (wall, CPU) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for codec in a.codecs.split(","):
        for client in ["courier", "kcat"]:
            runs = [r for r in rows if r["client"] == client and r["codec"] == codec]
            stored = med(client, codec, "stored_bytes")
            print(f"| {codec} | {client} | {med(client, codec, 'wall_s'):.2f} | "
                  f"{med(client, codec, 'cpu_s'):.2f} | {med(client, codec, 'max_rss_mb'):.0f} | "
                  + (f"{stored / 1e6:.1f}" if stored else "-") + " | "
                  + ", ".join(f"{r['wall_s']:.2f}/{r['cpu_s']:.2f}" for r in runs) + " |")
    print()
    for codec in a.codecs.split(","):
        w = med("courier", codec, "wall_s") / med("kcat", codec, "wall_s")
        c = med("courier", codec, "cpu_s") / med("kcat", codec, "cpu_s")
        s1, s2 = med("courier", codec, "stored_bytes"), med("kcat", codec, "stored_bytes")
        stored = f", stored {s1 / s2:.2f}x" if s1 and s2 else ""
        print(f"{codec}: courier ÷ kcat: wall {w:.2f}x, CPU {c:.2f}x{stored}")
    for r in rows:
        if r["exit"] != 0:
            print(f"WARNING: a run exited {r['exit']} (see {workdir}): {r}")
    if a.out:
        Path(a.out).write_text(json.dumps({"kcat": kcat_version, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
