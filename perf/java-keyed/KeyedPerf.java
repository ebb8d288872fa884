// KeyedPerf: Kafka's Java producer (kafka-clients) driven like kafka-producer-perf-test,
// with keyed and owned records, for perf/run.py. Kafka's own tool sends unkeyed records
// and shares its payload arrays; this one does what `courier perf --keys N --owned` does.
//
//   java -cp '<kafka libs>/*' perf/java-keyed/KeyedPerf.java --bootstrap-server HOST:PORT \
//        --topic T --num-records N (--record-size S | --payload-file F) [--throughput R] \
//        [--keys N] [--owned] [--transaction-records N] [--producer-props k=v ...]
//        [--command-config FILE]
//
// Runs as it is in Java's source-file mode (Java 11+), which compiles it at every start
// (2.3 CPU s on the benchmark machine), so perf/run.py compiles it once with javac into
// perf/java-keyed/classes and runs the class: `java -cp '<libs>/*:classes' KeyedPerf`.
//
// --keys N sends keys key-0 .. key-{N-1} in turn (placed by the default partitioner's
// murmur2); --owned builds each record's key and value into fresh byte arrays, as a
// serializer does, instead of sharing the loaded payloads. Properties are the Java client's (--command-property is an alias of
// --producer-props). Prints a progress line every 5 s and the final line in the Java
// tool's format on stderr, then one JSON object on stdout.
//
// --transaction-records N (with transactional.id in the properties) sends the records in
// transactions of N, as `courier perf --transaction-records N`: initTransactions once,
// then beginTransaction, N sends, commitTransaction (which flushes and waits for every
// record), and so on; the last transaction holds what is left. Kafka's own tool commits
// by time (--transaction-duration-ms), which would not commit at the same records.

import java.io.FileInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.producer.Callback;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class KeyedPerf {

    static void usage(String msg) {
        System.err.println("KeyedPerf: " + msg);
        System.err.println("usage: KeyedPerf --bootstrap-server B --topic T --num-records N "
                + "(--record-size S | --payload-file F) [--throughput R] [--keys N] [--owned] "
                + "[--transaction-records N] [--producer-props k=v ...] [--command-config FILE]");
        System.exit(2);
    }

    /** Latencies and counts, fed by the delivery callbacks on the producer's I/O thread. */
    static final class Stats {
        final long startNs = System.nanoTime();
        final int[] latenciesUs;
        int count;
        long delivered, failed, bytes;
        String firstError;
        long windowStartNs = startNs, windowCount, windowBytes, windowLatSumUs, windowLatMaxUs;

        Stats(long n) {
            latenciesUs = new int[(int) Math.min(n, Integer.MAX_VALUE - 8)];
        }

        synchronized void record(long sentNs, int len, Exception error) {
            long now = System.nanoTime();
            long latUs = (now - sentNs) / 1000;
            if (count < latenciesUs.length) {
                latenciesUs[count++] = (int) Math.min(latUs, Integer.MAX_VALUE);
            }
            if (error == null) {
                delivered++;
                bytes += len;
            } else {
                failed++;
                if (firstError == null) {
                    firstError = error.toString();
                }
            }
            windowCount++;
            windowBytes += len;
            windowLatSumUs += latUs;
            windowLatMaxUs = Math.max(windowLatMaxUs, latUs);
            double secs = (now - windowStartNs) / 1e9;
            if (secs >= 5) {
                System.err.printf("%d records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, "
                        + "%.1f ms max latency.%n", windowCount, windowCount / secs,
                        windowBytes / secs / 1048576.0, windowLatSumUs / 1000.0 / windowCount,
                        windowLatMaxUs / 1000.0);
                windowStartNs = now;
                windowCount = windowBytes = windowLatSumUs = windowLatMaxUs = 0;
            }
        }
    }

    /** One record's callback, as Kafka's tool allocates one per record. */
    static final class Completion implements Callback {
        final Stats stats;
        final long sentNs;
        final int len;

        Completion(Stats stats, long sentNs, int len) {
            this.stats = stats;
            this.sentNs = sentNs;
            this.len = len;
        }

        @Override
        public void onCompletion(RecordMetadata metadata, Exception exception) {
            stats.record(sentNs, len, exception);
        }
    }

    /** Writes `key-{k}` into `buf` (long enough) and returns its length. */
    static int writeKey(byte[] buf, long k) {
        buf[0] = 'k';
        buf[1] = 'e';
        buf[2] = 'y';
        buf[3] = '-';
        int digits = 1;
        for (long x = k; x >= 10; x /= 10) {
            digits++;
        }
        for (int i = 3 + digits; i > 3; i--) {
            buf[i] = (byte) ('0' + k % 10);
            k /= 10;
        }
        return 4 + digits;
    }

    public static void main(String[] argv) throws Exception {
        String bootstrap = null, topic = null, file = null, config = null;
        long n = -1, keys = 0, txnRecords = 0;
        int size = -1;
        double throughput = -1;
        boolean owned = false;
        Properties props = new Properties();
        List<String[]> overrides = new ArrayList<>();
        for (int i = 0; i < argv.length; i++) {
            String arg = argv[i];
            if (arg.equals("--owned")) {
                owned = true;
                continue;
            }
            if (arg.equals("--producer-props") || arg.equals("--command-property")) {
                while (i + 1 < argv.length && !argv[i + 1].startsWith("--")) {
                    String kv = argv[++i];
                    int eq = kv.indexOf('=');
                    if (eq < 0) {
                        usage(kv + ": expected k=v");
                    }
                    overrides.add(new String[] {kv.substring(0, eq), kv.substring(eq + 1)});
                }
                continue;
            }
            if (i + 1 >= argv.length) {
                usage(arg + " needs a value");
            }
            String val = argv[++i];
            switch (arg) {
                case "--bootstrap-server": bootstrap = val; break;
                case "--topic": topic = val; break;
                case "--num-records": n = Long.parseLong(val); break;
                case "--record-size": size = Integer.parseInt(val); break;
                case "--payload-file": file = val; break;
                case "--throughput": throughput = Double.parseDouble(val); break;
                case "--keys": keys = Long.parseLong(val); break;
                case "--transaction-records": txnRecords = Long.parseLong(val); break;
                case "--command-config": config = val; break;
                default: usage("unknown argument " + arg);
            }
        }
        if (topic == null || n < 0) {
            usage("--topic and --num-records are required");
        }
        byte[][] payloads;
        if (size >= 0 && file == null) {
            // Like Kafka's tool: one payload of random uppercase letters for every record.
            long r = 0x9E3779B97F4A7C15L;
            byte[] p = new byte[size];
            for (int i = 0; i < size; i++) {
                r ^= r << 13;
                r ^= r >>> 7;
                r ^= r << 17;
                p[i] = (byte) ('A' + Long.remainderUnsigned(r, 26));
            }
            payloads = new byte[][] {p};
        } else if (size < 0 && file != null) {
            List<byte[]> lines = new ArrayList<>();
            for (String line : Files.readString(Path.of(file), StandardCharsets.UTF_8).split("\n")) {
                if (!line.isEmpty()) {
                    lines.add(line.getBytes(StandardCharsets.UTF_8));
                }
            }
            if (lines.isEmpty()) {
                usage(file + " holds no payloads");
            }
            payloads = lines.toArray(new byte[0][]);
        } else {
            usage("give exactly one of --record-size and --payload-file");
            return;
        }

        if (config != null) {
            try (FileInputStream in = new FileInputStream(config)) {
                props.load(in);
            } catch (IOException e) {
                usage("--command-config " + config + ": " + e);
            }
        }
        for (String[] kv : overrides) {
            props.put(kv[0], kv[1]);
        }
        if (bootstrap != null) {
            props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        }
        if (!props.containsKey(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG)) {
            usage("no brokers: give --bootstrap-server");
        }
        if (txnRecords > 0 && !props.containsKey(ProducerConfig.TRANSACTIONAL_ID_CONFIG)) {
            usage("--transaction-records needs transactional.id in --producer-props");
        }
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

        // Shared keys for the static shape, built once like the payloads.
        byte[][] staticKeys = new byte[owned ? 0 : (int) keys][];
        for (int k = 0; k < staticKeys.length; k++) {
            staticKeys[k] = ("key-" + k).getBytes(StandardCharsets.UTF_8);
        }
        byte[] keyBuf = new byte[32];
        long rng = 0x2545F4914F6CDD1DL;

        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
        // The clock starts once the producer exists, as in Kafka's tool.
        Stats stats = new Stats(n);
        long transactions = 0;
        if (txnRecords > 0) {
            producer.initTransactions();
            producer.beginTransaction();
        }
        for (long i = 0; i < n; i++) {
            if (txnRecords > 0 && i > 0 && i % txnRecords == 0) {
                producer.commitTransaction();
                transactions++;
                producer.beginTransaction();
            }
            if (throughput > 0) {
                long dueNs = stats.startNs + (long) (i / throughput * 1e9);
                long wait = dueNs - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
            }
            byte[] payload = payloads[0];
            if (payloads.length > 1) {
                rng ^= rng << 13;
                rng ^= rng >>> 7;
                rng ^= rng << 17;
                payload = payloads[(int) Long.remainderUnsigned(rng, payloads.length)];
            }
            byte[] key = null;
            byte[] value = payload;
            if (owned) {
                // Fresh arrays per record, as a serializer returns.
                if (keys > 0) {
                    key = Arrays.copyOf(keyBuf, writeKey(keyBuf, i % keys));
                }
                value = payload.clone();
            } else if (keys > 0) {
                key = staticKeys[(int) (i % keys)];
            }
            long sentNs = System.nanoTime();
            producer.send(new ProducerRecord<>(topic, key, value),
                    new Completion(stats, sentNs, value.length));
        }
        if (txnRecords > 0 && n > 0) {
            producer.commitTransaction();
            transactions++;
        }
        producer.flush();
        double elapsed = (System.nanoTime() - stats.startNs) / 1e9;
        producer.close();
        if (txnRecords > 0) {
            System.err.printf("transactions: %d committed, up to %d records each.%n", transactions,
                    txnRecords);
        }
        finish(stats, elapsed, n, txnRecords > 0 ? transactions : -1);
    }

    /** `transactions` is -1 outside a transactional run (no such field in the JSON). */
    static void finish(Stats stats, double elapsed, long n, long transactions) {
        int[] lat;
        long delivered, failed, bytes;
        String firstError;
        synchronized (stats) {
            lat = Arrays.copyOf(stats.latenciesUs, stats.count);
            delivered = stats.delivered;
            failed = stats.failed;
            bytes = stats.bytes;
            firstError = stats.firstError;
        }
        Arrays.sort(lat);
        double sum = 0;
        for (int v : lat) {
            sum += v;
        }
        double avg = lat.length == 0 ? 0 : sum / lat.length / 1000;
        double max = lat.length == 0 ? 0 : lat[lat.length - 1] / 1000.0;
        double rps = delivered / elapsed;
        double mbps = bytes / elapsed / 1048576.0;
        double p50 = pct(lat, 0.5), p95 = pct(lat, 0.95), p99 = pct(lat, 0.99), p999 = pct(lat, 0.999);
        System.err.printf("%d records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency, "
                + "%.2f ms max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.%n",
                delivered, rps, mbps, avg, max, (long) p50, (long) p95, (long) p99, (long) p999);
        if (firstError != null) {
            System.err.println(failed + " records failed; first error: " + firstError);
        }
        System.out.printf(java.util.Locale.ROOT, "{\"client\":\"java-keyed\",\"records\":%d,\"delivered\":%d,"
                + "\"failed\":%d,\"elapsed_s\":%.3f,\"records_per_s\":%.1f,\"mb_per_s\":%.3f,"
                + "\"latency_ms\":{\"avg\":%.3f,\"max\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,"
                + "\"p999\":%.3f}%s}%n", n, delivered, failed, elapsed, rps, mbps, avg, max, p50, p95,
                p99, p999, transactions < 0 ? "" : ",\"transactions\":" + transactions);
        System.out.flush();
        System.exit(failed > 0 ? 1 : 0);
    }

    static double pct(int[] sorted, double q) {
        if (sorted.length == 0) {
            return 0;
        }
        return sorted[Math.min((int) (q * sorted.length), sorted.length - 1)] / 1000.0;
    }
}
