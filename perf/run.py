#!/usr/bin/env python3
"""Side-by-side producer benchmark: courier against librdkafka, the Java producer,
franz-go, krafka and confluent-kafka, one after another, on the same local broker,
topic layout and payloads, with the same producer settings.

    python3 perf/run.py                       # the full matrix (30-40 minutes)
    python3 perf/run.py --quick               # a smoke run with small counts
    python3 perf/run.py --clients courier,librdkafka --modes blackhole --sizes 100
    python3 perf/run.py --clients courier,librdkafka --modes broker \
        --security plaintext,ssl,sasl_ssl         # what TLS and SASL cost
    python3 perf/run.py --keys 1000 --owned \
        --clients courier,librdkafka,java-keyed,franz-go,krafka,confluent-kafka \
        --sizes 100 --payloads json --partitions 6   # keyed records, built per record

What it does:

1. Builds the clients: `courier` (this workspace, release; COURIER_BIN=path uses a
   given binary instead), perf/rdkafka-perf and
   perf/krafka-perf (each its own cargo workspace), perf/franz-go-perf (go build);
   perf/confluent-kafka-perf (cargo, the `confluent-kafka` crate); the Java producer
   is Kafka's own `kafka-producer-perf-test` (org.apache.kafka.tools.ProducerPerformance)
   from the test kit's jars, and `java-keyed` is perf/java-keyed/KeyedPerf.java, our
   program on the same jars (compiled once with javac: Java's source-file mode would
   count 2.3 CPU s of compiling per run as the client's).
2. Writes payload files (perf/payloads/): random alphanumeric records (LZ4 cannot
   shrink them) and JSON-like records (it can), 100 B and 1 KiB, 10,000 distinct
   records each; every client picks a random one per record.
3. Starts one real Kafka broker with the test kit (`courier-kafka --brokers 1`) and,
   per partition count, a blackhole broker (`courier blackhole`), each in its own
   process so only the client's CPU is measured.
4. For each case and client: creates a fresh topic (real broker), runs the client
   under `/usr/bin/time` (user + system CPU of the client process), deletes the
   topic, and records records/s, MB/s, p50/p99 latency and CPU-seconds per million
   records.
   With `--security ssl,sasl_ssl` the broker also has the test kit's secured
   listeners (`courier-kafka --secure`) and each case runs over each protocol asked
   for: `ssl` is TLS with a client certificate (the listener requires one),
   `sasl_ssl` is SCRAM-SHA-512 over TLS; both verify the broker's certificate
   against the kit's CA. Topics are created over PLAINTEXT on the same broker.
5. Prints Markdown tables (also written to perf/results/<stamp>/results.md, raw
   rows to results.jsonl).

Settings held equal: acks=all, idempotence on, LZ4, linger.ms=5, batch.size=16384,
a 32 MiB send buffer, unlimited rate (--throughput -1). A fixed-rate case
(--latency-rate records/s) compares latency when no client is saturated.

Records are unkeyed and share the loaded payloads unless asked otherwise: `--keys N`
gives every client keys `key-0` .. `key-{N-1}` in turn (each placed by murmur2;
the librdkafka and confluent-kafka programs choose their murmur2 partitioners), and `--owned` makes every client build
each record's key and value into fresh buffers, as after serializing (`courier perf`'s
flags of the same names). Kafka's `kafka-producer-perf-test` has neither, so with
either flag the `java` client is left out; `java-keyed` runs the Java producer instead.

`--transaction-records N` runs transactional producers: every client gets a
`transactional.id` of its own per run and commits every N records (`courier perf
--transaction-records`, KeyedPerf's flag of the same name); only courier and
java-keyed have it:

    python3 perf/run.py --modes broker --clients courier,java-keyed --sizes 100 \
        --payloads random --partitions 6 --keys 1000 --latency-rate 0 \
        --transaction-records 1000 --repeat 3

Kafka 4.3 finalizes `transaction.version=2`, which the Java client follows (KIP-890);
courier runs version 1 until it selects version 2. `--transaction-version 1` sets the
broker's feature to 1 first (`kafka-features downgrade`), so both speak version 1.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PERF = ROOT / "perf"
JAVA_LIBS = Path(os.environ.get("COURIER_KAFKA_LIBS",
                                Path.home() / ".cache/courier/kafka-4.3.1/libs"))

COMMON = {
    "acks": "all",
    "enable.idempotence": "true",
    "compression.type": "lz4",
    "linger.ms": "5",
    "batch.size": "16384",
}
BUFFER = 32 * 1024 * 1024
SECURITIES = ["plaintext", "ssl", "sasl_ssl"]

# Each client's spelling of the common settings.
PROPS = {
    "courier": {**COMMON, "buffer.memory": str(BUFFER)},
    "java": {**COMMON, "buffer.memory": str(BUFFER)},
    "franz-go": {**COMMON, "buffer.memory": str(BUFFER)},
    "krafka": {**COMMON, "buffer.memory": str(BUFFER)},
    "java-keyed": {**COMMON, "buffer.memory": str(BUFFER)},
    "confluent-kafka": {**COMMON, "buffer.memory": str(BUFFER)},
    # librdkafka bounds its queue by KiB and by message count; lift the count so
    # the byte bound is the one that holds, as for the others.
    "librdkafka": {**COMMON, "queue.buffering.max.kbytes": str(BUFFER // 1024),
                   "queue.buffering.max.messages": "10000000"},
}

ALL_CLIENTS = ["courier", "librdkafka", "java", "franz-go", "krafka", "java-keyed",
               "confluent-kafka"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- building

def build(clients):
    bins = {}
    run(["cargo", "build", "--release", "-q", "-p", "courier-cli",
         "-p", "courier-testkit"], cwd=ROOT)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    bins["courier"] = Path(os.environ.get("COURIER_BIN", target / "release" / "courier"))
    bins["courier-kafka"] = target / "release" / "courier-kafka"
    if "librdkafka" in clients:
        run(["cargo", "build", "--release", "-q"], cwd=PERF / "rdkafka-perf")
        bins["librdkafka"] = PERF / "rdkafka-perf/target/release/rdkafka-perf"
    if "krafka" in clients:
        run(["cargo", "build", "--release", "-q"], cwd=PERF / "krafka-perf")
        bins["krafka"] = PERF / "krafka-perf/target/release/krafka-perf"
    if "franz-go" in clients:
        run(["go", "build", "-o", "franz-go-perf", "."], cwd=PERF / "franz-go-perf")
        bins["franz-go"] = PERF / "franz-go-perf/franz-go-perf"
    if "confluent-kafka" in clients:
        run(["cargo", "build", "--release", "-q"], cwd=PERF / "confluent-kafka-perf")
        bins["confluent-kafka"] = PERF / "confluent-kafka-perf/target/release/confluent-kafka-perf"
    if ({"java", "java-keyed"} & set(clients)
            and not (JAVA_LIBS / "kafka-tools-4.3.1.jar").exists()):
        sys.exit(f"the Kafka jars are not in {JAVA_LIBS}: run "
                 "`cargo run -p courier-testkit --bin courier-kafka -- --check` once "
                 "to fetch them (or set COURIER_KAFKA_LIBS)")
    if "java-keyed" in clients:
        # KeyedPerf.java also runs as it is (`java -cp ... KeyedPerf.java`), but the
        # source-file launcher compiles it at every start: 2.3 CPU s here, which would
        # be counted as the client's. Compiled once, the runs measure the producer.
        run(["javac", "-cp", f"{JAVA_LIBS}/*", "-d", str(PERF / "java-keyed/classes"),
             str(PERF / "java-keyed/KeyedPerf.java")])
    return bins


# ---------------------------------------------------------------- payloads

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
WORDS = ["created", "paid", "shipped", "delivered", "returned", "EUR", "USD",
         "standard", "express", "berlin", "lisbon", "oslo", "warehouse-3"]


def json_record(rng, size):
    doc = {
        "order_id": f"ord-{rng.randrange(10**9):09d}",
        "customer": f"customer-{rng.randrange(100000)}",
        "status": rng.choice(WORDS[:5]),
        "currency": rng.choice(WORDS[5:7]),
        "amount": round(rng.uniform(1, 5000), 2),
        "shipping": rng.choice(WORDS[7:9]),
        "city": rng.choice(WORDS[9:]),
        "items": [],
    }
    while True:
        item = {"sku": f"SKU-{rng.randrange(99999):05d}", "qty": rng.randrange(1, 9),
                "price": round(rng.uniform(1, 500), 2)}
        doc["items"].append(item)
        if len(json.dumps(doc, separators=(",", ":"))) > size - 20:
            doc["items"].pop()
            break
    text = json.dumps(doc, separators=(",", ":"))
    pad = size - len(text) - len(',"note":""')
    if pad >= 0:
        doc["note"] = "".join(rng.choice(WORDS) + " " for _ in range(pad))[:pad]
        text = json.dumps(doc, separators=(",", ":"))
    return text[:size] if len(text) > size else text


def payload_files(sizes, kinds):
    out = {}
    d = PERF / "payloads"
    d.mkdir(exist_ok=True)
    for size in sizes:
        for kind in kinds:
            path = d / f"{kind}-{size}.txt"
            if not path.exists():
                rng = random.Random(f"{kind}-{size}")
                with open(path, "w") as f:
                    for _ in range(10000):
                        if kind == "random":
                            f.write("".join(rng.choice(ALNUM) for _ in range(size)))
                        else:
                            f.write(json_record(rng, size))
                        f.write("\n")
            out[(size, kind)] = path
    return out


# ---------------------------------------------------------------- brokers

class Proc:
    """A background process that prints `bootstrap: host:port` when ready."""

    def __init__(self, cmd, what, until="bootstrap: "):
        log("$ " + " ".join(str(c) for c in cmd))
        self.what = what
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, start_new_session=True)
        self.bootstrap = None
        # Every line up to the one starting with `until` (courier-kafka --secure
        # prints its listeners, users and certificate files after the bootstrap).
        self.lines = []
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("bootstrap: "):
                self.bootstrap = line.split(": ", 1)[1].strip()
            if line.startswith(until):
                break
        if not self.bootstrap:
            sys.exit(f"{what} did not start")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()


def security_settings(kafka_lines):
    """Per security protocol: the bootstrap address of its listener and each client's
    settings for it, from what `courier-kafka --secure` printed."""
    listeners, files, users = {}, {}, []
    for line in kafka_lines:
        m = re.match(r"listener (\w+): (\S+) ", line)
        if m:
            listeners[m.group(1)] = m.group(2)
        elif line.startswith("users: "):
            users = [u.split("/", 1) for u in line.split()[1:]]
        elif line.startswith("ca: "):
            files["ca"] = line.split(": ", 1)[1]
        elif line.startswith("client cert: "):
            m = re.match(r"client cert: (\S+) key: (\S+)", line)
            files["cert"], files["key"] = m.group(1), m.group(2)
    if not (listeners.get("SSL") and listeners.get("SASL_SSL") and users and files):
        sys.exit("courier-kafka --secure did not print its listeners and files:\n"
                 + "\n".join(kafka_lines))
    tls_dir = Path(files["ca"]).parent
    user, password = users[0]
    rd_ssl = {"security.protocol": "ssl", "ssl.ca.location": files["ca"],
              "ssl.certificate.location": files["cert"], "ssl.key.location": files["key"]}
    rd_sasl = {"security.protocol": "sasl_ssl", "ssl.ca.location": files["ca"],
               "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user,
               "sasl.password": password}
    # Java takes PEM trust and key stores; its SASL settings hold a JAAS line with
    # `=` inside, so they go in a --command-config file, not on the command line.
    java_ssl = {"security.protocol": "SSL", "ssl.truststore.type": "PEM",
                "ssl.truststore.location": files["ca"], "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(tls_dir / "client-keystore.pem")}
    java_sasl = {"security.protocol": "SASL_SSL", "ssl.truststore.type": "PEM",
                 "ssl.truststore.location": files["ca"], "sasl.mechanism": "SCRAM-SHA-512",
                 "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule"
                 f' required username="{user}" password="{password}";'}
    out = {}
    for sec, listener, rd, jv in [("ssl", "SSL", rd_ssl, java_ssl),
                                  ("sasl_ssl", "SASL_SSL", rd_sasl, java_sasl)]:
        out[sec] = {"bootstrap": listeners[listener],
                    "props": {"courier": rd, "librdkafka": rd, "java": jv}}
    return out


# ---------------------------------------------------------------- clients

def command(client, bins, bootstrap, topic, n, payload, rate, security=None, workdir=None,
            shape=None):
    """The client's command line; `security` is the extra settings of a secured run,
    `shape` the `--keys` / `--owned` flags given to every client but Java's own tool."""
    base = client.split("+")[0]
    settings = dict(PROPS[base])
    if "--transaction-records" in (shape or []):
        # One id per run: a run must not fence or wait for another's transactions.
        settings["transactional.id"] = f"perf-{re.sub(r'[^a-zA-Z0-9._-]', '-', client)}-{time.time_ns()}"
    extra = (security or {}).get(base, {})
    args = ["--topic", topic, "--num-records", str(n), "--payload-file", str(payload),
            "--throughput", str(rate), "--bootstrap-server", bootstrap] + (shape or [])
    if client == "java":
        cmd = (["java", "-Xms1g", "-Xmx1g", "-cp", f"{JAVA_LIBS}/*",
                "org.apache.kafka.tools.ProducerPerformance"] + args
               + ["--command-property"] + [f"{k}={v}" for k, v in settings.items()])
        if extra:
            conf = Path(workdir) / "java-security.properties"
            conf.write_text("".join(f"{k}={v}\n" for k, v in extra.items()))
            cmd += ["--command-config", str(conf)]
        return cmd
    if client == "java-keyed":
        return (["java", "-Xms1g", "-Xmx1g", "-cp",
                 f"{JAVA_LIBS}/*:{PERF / 'java-keyed/classes'}", "KeyedPerf"] + args
                + ["--producer-props"] + [f"{k}={v}" for k, v in settings.items()])
    settings.update(extra)
    props = [f"{k}={v}" for k, v in settings.items()]
    if client == "courier" or client.startswith("courier+"):
        return [bins[client], "perf"] + args + ["--producer-props"] + props + [
            "--summary", "json"]
    return [bins[client]] + args + ["--producer-props"] + props


JAVA_FINAL = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg "
    r"latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th")


def measure(client, cmd, workdir):
    # One file per repeat (client.out, client.2.out, ...): with --repeat the later runs
    # used to overwrite the earlier ones' output.
    n = 1
    while (workdir / (f"{client}.out" if n == 1 else f"{client}.{n}.out")).exists():
        n += 1
    stem = client if n == 1 else f"{client}.{n}"
    timef = workdir / f"{stem}.time.txt"
    full = ["/usr/bin/time", "-f", "%U %S %e %M", "-o", str(timef)] + [str(c) for c in cmd]
    p = subprocess.run(full, capture_output=True, text=True, timeout=1800)
    (workdir / f"{stem}.out").write_text(p.stdout + "\n--- stderr\n" + p.stderr)
    user, sys_, wall, rss = timef.read_text().split()[-4:]
    row = {"exit": p.returncode, "cpu_s": float(user) + float(sys_), "wall_s": float(wall),
           "max_rss_mb": int(rss) / 1024}
    js = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if js:
        s = json.loads(js[-1])
        row.update(delivered=s["delivered"], records_per_s=s["records_per_s"],
                   mb_per_s=s["mb_per_s"], p50_ms=s["latency_ms"]["p50"],
                   p99_ms=s["latency_ms"]["p99"])
        if "transactions" in s:
            row["transactions"] = s["transactions"]
    else:
        m = JAVA_FINAL.findall(p.stdout + p.stderr)
        if not m:
            raise RuntimeError(f"{client}: no result line; see {workdir}/{client}.out")
        sent, rps, mbps, _avg, _max, p50, _p95, p99 = m[-1]
        row.update(delivered=int(sent), records_per_s=float(rps), mb_per_s=float(mbps),
                   p50_ms=float(p50), p99_ms=float(p99))
    return row


# ---------------------------------------------------------------- tables

def fmt_table(rows, title):
    lines = [f"### {title}", ""]
    cases = []
    for r in rows:
        key = (r["size"], r["payload"], r["partitions"])
        if key not in cases:
            cases.append(key)
    lines.append("| case | client | records/s | MB/s | p50 ms | p99 ms | CPU s / M records "
                 "| vs best peer: records/s | vs best peer: CPU/rec |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        rs = [r for r in rows if (r["size"], r["payload"], r["partitions"]) == case]
        peers = [r for r in rs if not r["client"].startswith("courier") and r.get("ok")]
        best_rps = max((r["records_per_s"] for r in peers), default=None)
        best_cpu = min((r["cpu_per_m"] for r in peers), default=None)
        for r in rs:
            name = f"{case[0]} B {case[1]}, {case[2]} part."
            if not r.get("ok"):
                lines.append(f"| {name} | {r['client']} | failed: {r.get('error', '')} "
                             "| | | | | | |")
                continue
            vs_rps = vs_cpu = ""
            if r["client"].startswith("courier") and best_rps:
                vs_rps = f"{r['records_per_s'] / best_rps:.2f}x"
                vs_cpu = f"{r['cpu_per_m'] / best_cpu:.2f}x"
            lines.append(
                f"| {name} | {r['client']} | {r['records_per_s']:,.0f} | {r['mb_per_s']:.1f} "
                f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['cpu_per_m']:.2f} "
                f"| {vs_rps} | {vs_cpu} |")
    return "\n".join(lines) + "\n"


def targets_table(rows, title):
    """The issue's targets per case: courier against librdkafka, Java and the best peer."""
    lines = [f"### {title}", "",
             "| case | courier rec/s | ÷ librdkafka | ÷ best peer (who) | courier CPU s/M "
             "| ÷ librdkafka | ÷ Java |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    cases = []
    for r in rows:
        key = (r["size"], r["payload"], r["partitions"])
        if key not in cases:
            cases.append(key)

    def ratio(a, b):
        return f"{a / b:.2f}" if b else "-"
    for case in cases:
        rs = {r["client"]: r for r in rows
              if (r["size"], r["payload"], r["partitions"]) == case and r.get("ok")}
        c = rs.get("courier")
        if not c:
            continue
        peers = [r for k, r in rs.items() if not k.startswith("courier")]
        best = max(peers, key=lambda r: r["records_per_s"], default=None)
        rd, jv = rs.get("librdkafka"), rs.get("java") or rs.get("java-keyed")
        lines.append(
            f"| {case[0]} B {case[1]}, {case[2]} part. | {c['records_per_s']:,.0f} "
            f"| {ratio(c['records_per_s'], rd['records_per_s']) if rd else '-'} "
            f"| {ratio(c['records_per_s'], best['records_per_s']) if best else '-'}"
            f"{' (' + best['client'] + ')' if best else ''} "
            f"| {c['cpu_per_m']:.2f} "
            f"| {ratio(c['cpu_per_m'], rd['cpu_per_m']) if rd else '-'} "
            f"| {ratio(c['cpu_per_m'], jv['cpu_per_m']) if jv else '-'} |")
    return "\n".join(lines) + "\n"


def peers_table(rows, title):
    """Courier against each peer, case by case: courier's records/s and client CPU per
    record divided by the peer's (records/s above 1 and CPU below 1 favour courier)."""
    lines = [f"### {title}", "",
             "| case | peer | peer rec/s | courier rec/s ÷ peer | peer CPU s/M "
             "| courier CPU/rec ÷ peer |",
             "|---|---|---:|---:|---:|---:|"]
    cases = []
    for r in rows:
        key = (r["size"], r["payload"], r["partitions"])
        if key not in cases:
            cases.append(key)
    for case in cases:
        rs = {r["client"]: r for r in rows
              if (r["size"], r["payload"], r["partitions"]) == case and r.get("ok")}
        c = rs.get("courier")
        if not c:
            continue
        for name, r in rs.items():
            if name.startswith("courier"):
                continue
            lines.append(
                f"| {case[0]} B {case[1]}, {case[2]} part. | {name} "
                f"| {r['records_per_s']:,.0f} | {c['records_per_s'] / r['records_per_s']:.2f} "
                f"| {r['cpu_per_m']:.2f} | {c['cpu_per_m'] / r['cpu_per_m']:.2f} |")
    return "\n".join(lines) + "\n"


def security_table(rows, secs):
    """What TLS and SASL cost each client: CPU per record over each secured protocol
    divided by the same client's over PLAINTEXT, same case and broker; and courier's
    CPU per record divided by librdkafka's over each protocol."""
    secured = [s for s in secs if s != "plaintext"]
    head = ("| case | client | CPU s/M plaintext | "
            + " | ".join(f"CPU s/M {s} | ÷ plaintext" for s in secured)
            + " | " + " | ".join(f"courier ÷ librdkafka {s}" for s in secs) + " |")
    lines = ["### What TLS and SASL cost (CPU per record against PLAINTEXT)", "", head,
             "|---|---|" + "---:|" * (1 + 2 * len(secured) + len(secs))]
    broker = [r for r in rows if r["mode"] == "broker" and r.get("ok")]
    cases, clients = [], []
    for r in broker:
        c = (r["size"], r["payload"], r["partitions"], r["rate"])
        if c not in cases:
            cases.append(c)
        if r["client"] not in clients:
            clients.append(r["client"])
    at = {(r["size"], r["payload"], r["partitions"], r["rate"], r["client"],
           r.get("security", "plaintext")): r for r in broker}
    for case in cases:
        name = f"{case[0]} B {case[1]}, {case[2]} part." + (
            f", {case[3]} rec/s" if case[3] > 0 else "")
        for client in clients:
            plain = at.get(case + (client, "plaintext"))
            if not plain:
                continue
            cells = [f"{plain['cpu_per_m']:.2f}"]
            for s in secured:
                r = at.get(case + (client, s))
                cells += ([f"{r['cpu_per_m']:.2f}", f"{r['cpu_per_m'] / plain['cpu_per_m']:.2f}"]
                          if r else ["-", "-"])
            for s in secs:
                c, rd = at.get(case + ("courier", s)), at.get(case + ("librdkafka", s))
                cells.append(f"{c['cpu_per_m'] / rd['cpu_per_m']:.2f}"
                             if client == "courier" and c and rd else "")
            lines.append(f"| {name} | {client} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def best_of(rows):
    """One row per case and client: the fastest of its repeats, with the lowest CPU per
    record seen (noise from other processes on the machine only slows a client down
    and adds CPU time, so the best repeat is the closest to the client's own cost)."""
    groups = {}
    for r in rows:
        key = (r["mode"], r["size"], r["payload"], r["partitions"], r["rate"],
               r.get("security", "plaintext"), r["client"])
        groups.setdefault(key, []).append(r)
    out = []
    for rs in groups.values():
        ok = [r for r in rs if r.get("ok")]
        if not ok:
            out.append(rs[-1])
            continue
        best = dict(max(ok, key=lambda r: r["records_per_s"]))
        best["cpu_per_m"] = min(r["cpu_per_m"] for r in ok)
        best["repeats"] = len(ok)
        out.append(best)
    return out


def render(rows, env, latency_rate):
    """All tables of a run as Markdown."""
    def key(x):
        return (x["mode"], x["size"], x["payload"], x["partitions"], x["rate"],
                x.get("security", "plaintext"), x["client"])
    repeats = max((sum(1 for x in rows if key(x) == key(r)) for r in rows), default=1)
    loads = [r["load"] for r in rows]
    rows = best_of(rows)
    keys, owned = env.get("keys", 0), env.get("owned", False)
    shape = ((f"keyed over {keys:,} keys (murmur2)" if keys else "unkeyed")
             + (", key and value built into fresh buffers per record" if owned
                else ", payloads shared (never copied by the program)"))
    md = [f"courier at commit {env.get('commit', 'unknown')}. "
          f"Machine: {env['nproc']} cores, {env['cpu']}; load average before the run "
          f"{env['load_before'][0]:.2f}, during it {min(loads):.1f} to {max(loads):.1f}; "
          f"best of {repeats} repeat(s) per client and case. Records: {shape}.", ""]
    secs = [s for s in SECURITIES if any(r.get("security", "plaintext") == s for r in rows)]
    for sec in secs:
        over = "" if secs == ["plaintext"] else f", over {sec.upper()}"
        of = [r for r in rows if r.get("security", "plaintext") == sec]
        broker = [r for r in of if r["mode"] == "broker" and r["rate"] < 0]
        fixed = [r for r in of if r["mode"] == "broker" and r["rate"] > 0]
        if broker:
            md.append(fmt_table(broker, f"One real Kafka broker (unlimited rate){over}"))
            md.append(targets_table(broker, f"Targets on the real broker{over}"))
            md.append(peers_table(broker, f"Courier ÷ each peer, real broker{over}"))
        if fixed:
            md.append(fmt_table(fixed, f"Fixed rate {latency_rate} records/s (latency){over}"))
    if len(secs) > 1:
        md.append(security_table(rows, secs))
    hole = [r for r in rows if r["mode"] == "blackhole"]
    if hole:
        md.append(fmt_table(hole, "Blackhole broker (the client's own ceiling)"))
        md.append(targets_table(hole, "Targets against the blackhole"))
        md.append(peers_table(hole, "Courier ÷ each peer, blackhole"))
    return "\n".join(md)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default=",".join(ALL_CLIENTS))
    ap.add_argument("--modes", default="broker,blackhole",
                    help="broker (one real Kafka broker), blackhole, or both")
    ap.add_argument("--sizes", default="100,1024")
    ap.add_argument("--payloads", default="random,json")
    ap.add_argument("--partitions", default="1,6")
    ap.add_argument("--records", type=int, default=None,
                    help="records per run (default: 1M for 100 B, 300k for 1 KiB; "
                         "twice that against the blackhole)")
    ap.add_argument("--latency-rate", type=int, default=20000,
                    help="records/s of the fixed-rate latency case (0 skips it)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                    help="also run another build of `courier` (e.g. a branch with a fix) "
                         "as client courier+NAME; repeatable")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each case this many times, clients in rotating order; "
                         "the tables keep each client's best repeat")
    ap.add_argument("--security", default="plaintext",
                    help="comma-separated security protocols of the real-broker runs: "
                         "plaintext, ssl (TLS with a client certificate), sasl_ssl "
                         "(SCRAM-SHA-512 over TLS); the blackhole speaks PLAINTEXT only")
    ap.add_argument("--keys", type=int, default=0,
                    help="keyed records: keys key-0 .. key-{N-1} in turn, placed by murmur2, "
                         "for every client (0: unkeyed)")
    ap.add_argument("--owned", action="store_true",
                    help="every client builds each record's key and value into fresh "
                         "buffers, as after serializing, instead of sharing the payloads")
    ap.add_argument("--transaction-records", type=int, default=0, metavar="N",
                    help="transactional producers committing every N records (courier and "
                         "java-keyed only; each run gets its own transactional.id)")
    ap.add_argument("--transaction-version", type=int, default=0, metavar="V",
                    help="set the broker's finalized transaction.version to V before the "
                         "runs (default: as Kafka 4.3 comes, 2)")
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", metavar="DIR", default=None,
                    help="only re-render the tables of an earlier run's results.jsonl")
    a = ap.parse_args()
    if a.report:
        d = Path(a.report)
        rows = [json.loads(line) for line in open(d / "results.jsonl")]
        env = json.loads((d / "machine.json").read_text())
        rate = next((r["rate"] for r in rows if r["rate"] > 0), a.latency_rate)
        text = render(rows, env, rate)
        (d / "results.md").write_text(text)
        print(text)
        return

    clients = a.clients.split(",")
    unknown = set(clients) - set(ALL_CLIENTS)
    if unknown:
        sys.exit(f"unknown client(s) {unknown}; choose from {ALL_CLIENTS}")
    shape = (["--keys", str(a.keys)] if a.keys else []) + (["--owned"] if a.owned else [])
    if a.transaction_records:
        shape += ["--transaction-records", str(a.transaction_records)]
        others = [c for c in clients if c not in ("courier", "java-keyed")]
        if others:
            sys.exit(f"--transaction-records runs courier and java-keyed only; drop {others}")
    if shape and "java" in clients:
        log("note: Kafka's kafka-producer-perf-test (client java) has no keys and shares "
            "its payloads, so it is left out of a --keys/--owned run; java-keyed runs the "
            "Java producer in that shape")
        clients.remove("java")
    modes = a.modes.split(",")
    sizes = [int(s) for s in a.sizes.split(",")]
    kinds = a.payloads.split(",")
    parts = [int(p) for p in a.partitions.split(",")]
    secs = a.security.split(",")
    if set(secs) - set(SECURITIES):
        sys.exit(f"unknown security protocol(s) {set(secs) - set(SECURITIES)}; "
                 f"choose from {SECURITIES}")
    if secs != ["plaintext"] and set(clients) - {"courier", "librdkafka", "java"}:
        sys.exit("--security ssl/sasl_ssl runs courier, librdkafka and java only; "
                 "drop the others from --clients")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(a.out) if a.out else PERF / "results" / stamp
    out.mkdir(parents=True, exist_ok=True)

    bins = build(clients)
    for v in a.variant:
        name, path = v.split("=", 1)
        bins["courier+" + name] = Path(path)
        clients.insert(1, "courier+" + name)
    payloads = payload_files(sizes, kinds)

    def count(size, mode):
        if a.records:
            return a.records
        n = 1_000_000 if size <= 100 else 300_000
        if mode == "blackhole":
            n *= 2
        return n // 20 if a.quick else n

    rows = []
    jsonl = open(out / "results.jsonl", "w")
    env = {"nproc": os.cpu_count(), "cpu": cpu_model(), "load_before": os.getloadavg(),
           "commit": git_describe(), "keys": a.keys, "owned": a.owned,
           "transaction_records": a.transaction_records,
           "transaction_version": a.transaction_version or None}
    (out / "machine.json").write_text(json.dumps(env))

    def one(mode, bootstrap, size, kind, p, client, rate, n, topic, sec="plaintext",
            sec_props=None):
        wd = out / f"{mode}-{size}-{kind}-{p}-{rate}" / sec
        wd.mkdir(parents=True, exist_ok=True)
        row = {"mode": mode, "size": size, "payload": kind, "partitions": p,
               "client": client, "rate": rate, "records": n, "security": sec,
               "keys": a.keys, "owned": a.owned, "load": os.getloadavg()[0]}
        try:
            row.update(measure(client, command(client, bins, bootstrap, topic, n,
                                               payloads[(size, kind)], rate, sec_props,
                                               wd, shape), wd))
            row["ok"] = row["exit"] == 0 and row["delivered"] == n
            if not row["ok"]:
                row["error"] = f"exit {row['exit']}, {row['delivered']}/{n} delivered"
        except Exception as e:  # a peer failing must not stop the others
            row.update(ok=False, error=str(e)[:200])
        if row.get("ok"):
            row["cpu_per_m"] = row["cpu_s"] * 1e6 / n
            log(f"  {client:15} {sec:9} {row['records_per_s']:>12,.0f} rec/s {row['mb_per_s']:7.1f} MB/s "
                f"p50 {row['p50_ms']:8.1f} p99 {row['p99_ms']:8.1f} ms  "
                f"cpu {row['cpu_s']:6.2f} s ({row['cpu_per_m']:.2f} s/M)")
        else:
            log(f"  {client:15} FAILED: {row.get('error')}")
        rows.append(row)
        jsonl.write(json.dumps(row) + "\n")
        jsonl.flush()

    if "broker" in modes:
        secured = secs != ["plaintext"]
        kafka = Proc([bins["courier-kafka"], "--brokers", "1"]
                     + (["--secure"] if secured else []),
                     "the Kafka broker", until="started in" if secured else "bootstrap: ")
        by_sec = {"plaintext": {"bootstrap": kafka.bootstrap, "props": {}}}
        if a.transaction_version:
            # Kafka 4.3 finalizes transaction.version=2 on a new cluster, and the Java
            # client 4.x follows it; courier runs version 1 until it selects version 2.
            # Set it to 1 for a run where both speak the same protocol.
            verb = "downgrade" if a.transaction_version < 2 else "upgrade"
            run(["java", "-cp", f"{JAVA_LIBS}/*", "org.apache.kafka.tools.FeatureCommand",
                 "--bootstrap-server", kafka.bootstrap, verb, "--feature",
                 f"transaction.version={a.transaction_version}"])
        if secured:
            by_sec.update(security_settings(kafka.lines))
        try:
            cases = [(s, k, p, -1) for s in sizes for k in kinds for p in parts]
            if a.latency_rate:
                cases.append((sizes[0], kinds[-1], parts[-1], a.latency_rate))
            for size, kind, p, rate in cases:
                n = count(size, "broker") if rate < 0 else rate * (1 if a.quick else 10)
                log(f"== real broker: {size} B {kind}, {p} partition(s), rate {rate}, {n} records")
                for client, sec in [(c, s) for c in rotations(clients, a.repeat)
                                    for s in secs]:
                    # Kafka topic names allow [a-zA-Z0-9._-] only.
                    safe = re.sub(r"[^a-zA-Z0-9._-]", "-", client)
                    topic = f"perf-{safe}-{sec}-{size}-{kind}-{p}-{time.time_ns()}"
                    created = subprocess.run(
                        [bins["courier"], "topic", "create", "-b", kafka.bootstrap,
                         "--topic", topic, "--partitions", str(p),
                         "--replication-factor", "1"])
                    if created.returncode != 0:
                        log(f"  {client}: could not create {topic}; skipped")
                        continue
                    one("broker", by_sec[sec]["bootstrap"], size, kind, p, client, rate, n,
                        topic, sec, by_sec[sec]["props"])
                    subprocess.run([bins["courier"], "topic", "delete", "-b",
                                    kafka.bootstrap, "--topic", topic])
        finally:
            kafka.stop()
    if "blackhole" in modes:
        for p in parts:
            bh = Proc([bins["courier"], "blackhole", "--partitions", str(p)], "the blackhole")
            try:
                for size in sizes:
                    for kind in kinds:
                        n = count(size, "blackhole")
                        log(f"== blackhole: {size} B {kind}, {p} partition(s), {n} records")
                        for client in rotations(clients, a.repeat):
                            one("blackhole", bh.bootstrap, size, kind, p, client, -1, n,
                                "perf-" + re.sub(r"[^a-zA-Z0-9._-]", "-", client))
            finally:
                bh.stop()
    jsonl.close()

    text = render(rows, env, a.latency_rate)
    (out / "results.md").write_text(text)
    print(text)
    log(f"results in {out}")


def git_describe():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                "crates"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return head + (" (+ uncommitted changes under crates/)" if dirty else "")
    except OSError:
        return "unknown"


def rotations(clients, repeat):
    """Each client `repeat` times, the order rotated per round so no client always
    runs right after the same one."""
    out = []
    for i in range(max(1, repeat)):
        k = i % len(clients)
        out.extend(clients[k:] + clients[:k])
    return out


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    if not shutil.which("/usr/bin/time"):
        sys.exit("/usr/bin/time is needed to measure client CPU: apt-get install time")
    main()
