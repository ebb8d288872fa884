// franz-go-perf: franz-go's producer (github.com/twmb/franz-go/pkg/kgo) driven like
// kafka-producer-perf-test, for perf/run.py.
//
//	franz-go-perf --bootstrap-server HOST:PORT --topic T --num-records N
//	              (--record-size S | --payload-file F) [--throughput R]
//	              [--keys N] [--owned] [--producer-props k=v ...]
//
// --keys N and --owned are courier perf's: keys key-0 .. key-{N-1} in turn (kgo's
// default partitioner hashes keys with murmur2, as Java's does), and with --owned each
// record's key and value are built into fresh slices, as after serializing, instead of
// sharing the loaded payloads.
//
// Understood properties: acks, enable.idempotence, compression.type, linger.ms,
// batch.size, buffer.memory (others are refused). Prints the final line in the Java
// tool's format on stderr, then one JSON object on stdout.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "franz-go-perf: %s\n", msg)
	os.Exit(2)
}

type rng uint64

func (r *rng) next() uint64 {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = rng(x)
	return x
}

func main() {
	var bootstrap, topic, file string
	var n int64 = -1
	var keys int64
	owned := false
	size := -1
	tput := -1.0
	props := map[string]string{}
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		val := func() string {
			if i+1 >= len(args) {
				usage(args[i] + " needs a value")
			}
			i++
			return args[i]
		}
		var err error
		switch args[i] {
		case "--bootstrap-server":
			bootstrap = val()
		case "--topic":
			topic = val()
		case "--num-records":
			n, err = strconv.ParseInt(val(), 10, 64)
		case "--record-size":
			size, err = strconv.Atoi(val())
		case "--payload-file":
			file = val()
		case "--throughput":
			tput, err = strconv.ParseFloat(val(), 64)
		case "--keys":
			keys, err = strconv.ParseInt(val(), 10, 64)
		case "--owned":
			owned = true
		case "--producer-props":
			for i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				i++
				k, v, ok := strings.Cut(args[i], "=")
				if !ok {
					usage(args[i] + ": expected k=v")
				}
				props[k] = v
			}
		default:
			usage("unknown argument " + args[i])
		}
		if err != nil {
			usage(args[i] + ": " + err.Error())
		}
	}
	if topic == "" || n < 0 || bootstrap == "" {
		usage("--bootstrap-server, --topic and --num-records are required")
	}
	var payloads [][]byte
	switch {
	case size >= 0 && file == "":
		r := rng(0x9E3779B97F4A7C15)
		p := make([]byte, size)
		for i := range p {
			p[i] = byte('A' + r.next()%26)
		}
		payloads = [][]byte{p}
	case size < 0 && file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			usage(err.Error())
		}
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(l) > 0 {
				payloads = append(payloads, l)
			}
		}
	default:
		usage("give exactly one of --record-size and --payload-file")
	}

	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.DefaultProduceTopic(topic), kgo.ClientID("franz-go-perf")}
	for k, v := range props {
		num := func() int {
			x, err := strconv.Atoi(v)
			if err != nil {
				usage(k + ": " + err.Error())
			}
			return x
		}
		switch k {
		case "acks":
			switch v {
			case "all", "-1":
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
			default:
				usage("acks must be all, 1 or 0")
			}
		case "enable.idempotence":
			if v != "true" {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
		case "compression.type":
			switch v {
			case "lz4":
				opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
			case "none":
				opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
			case "snappy":
				opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
			case "gzip":
				opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
			default:
				usage("compression.type: none, gzip, snappy or lz4")
			}
		case "linger.ms":
			opts = append(opts, kgo.ProducerLinger(time.Duration(num())*time.Millisecond))
		case "batch.size":
			opts = append(opts, kgo.ProducerBatchMaxBytes(int32(num())))
		case "buffer.memory":
			// Bound the buffer by bytes like the others; the record bound is lifted.
			opts = append(opts, kgo.MaxBufferedBytes(num()), kgo.MaxBufferedRecords(1<<30))
		default:
			usage("property " + k + " is not mapped for franz-go")
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		usage(err.Error())
	}
	defer cl.Close()

	var mu sync.Mutex
	lat := make([]uint32, 0, n)
	var ok, failed, nbytes int64
	var firstErr error
	start := time.Now()
	r := rng(0x2545F4914F6CDD1D)
	ctx := context.Background()
	// Shared keys for the static shape, built once like the payloads.
	var staticKeys [][]byte
	if !owned {
		for k := int64(0); k < keys; k++ {
			staticKeys = append(staticKeys, []byte("key-"+strconv.FormatInt(k, 10)))
		}
	}
	var keyBuf []byte
	for i := int64(0); i < n; i++ {
		if tput > 0 {
			due := start.Add(time.Duration(float64(i) / tput * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
		}
		p := payloads[0]
		if len(payloads) > 1 {
			p = payloads[r.next()%uint64(len(payloads))]
		}
		rec := &kgo.Record{Value: p}
		if owned {
			// Fresh buffers per record, as an application's serializer makes.
			if keys > 0 {
				keyBuf = strconv.AppendInt(append(keyBuf[:0], "key-"...), i%keys, 10)
				rec.Key = append([]byte(nil), keyBuf...)
			}
			rec.Value = append([]byte(nil), p...)
		} else if keys > 0 {
			rec.Key = staticKeys[i%keys]
		}
		sent := time.Now()
		cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			l := time.Since(sent).Microseconds()
			mu.Lock()
			lat = append(lat, uint32(l))
			if err == nil {
				ok++
				nbytes += int64(len(rec.Value))
			} else {
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
			mu.Unlock()
		})
	}
	if err := cl.Flush(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "franz-go-perf: flush: %v\n", err)
	}
	elapsed := time.Since(start).Seconds()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(q float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(q * float64(len(lat)))
		if i >= len(lat) {
			i = len(lat) - 1
		}
		return float64(lat[i]) / 1000
	}
	var sum float64
	for _, v := range lat {
		sum += float64(v)
	}
	avg, max := 0.0, 0.0
	if len(lat) > 0 {
		avg = sum / float64(len(lat)) / 1000
		max = float64(lat[len(lat)-1]) / 1000
	}
	rps := float64(ok) / elapsed
	mbps := float64(nbytes) / elapsed / 1048576
	fmt.Fprintf(os.Stderr, "%d records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th.\n",
		ok, rps, mbps, avg, max, int(pct(0.5)), int(pct(0.95)), int(pct(0.99)), int(pct(0.999)))
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "%d records failed; first error: %v\n", failed, firstErr)
	}
	fmt.Printf("{\"client\":\"franz-go\",\"records\":%d,\"delivered\":%d,\"failed\":%d,\"elapsed_s\":%.3f,\"records_per_s\":%.1f,\"mb_per_s\":%.3f,\"latency_ms\":{\"avg\":%.3f,\"max\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"p999\":%.3f}}\n",
		n, ok, failed, elapsed, rps, mbps, avg, max, pct(0.5), pct(0.95), pct(0.99), pct(0.999))
	if failed > 0 {
		os.Exit(1)
	}
}
