//! What `courier produce` and `courier perf` show while they run and leave behind
//! (issue 18): the producer's metrics served at `/metrics` (`--metrics-listen`), written
//! to a node_exporter textfile at exit (`--metrics-textfile`), and one JSON line per
//! interval on stderr (`--stats-interval`, like librdkafka's `statistics.interval.ms`).
//!
//! Everything here reads [`Producer::metrics`]; nothing is counted twice.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use courier::{DeliveryMetrics, Producer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The metrics options `produce` and `perf` share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve the producer's metrics in the Prometheus text format at
    /// http://ADDR/metrics while the command runs (e.g. 127.0.0.1:9464; port 0 picks a
    /// free one, printed on stderr).
    #[arg(long = "metrics-listen", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// At exit, write the final metrics in the Prometheus text format to FILE (written
    /// to FILE.tmp, then renamed, as node_exporter's textfile collector expects).
    #[arg(long = "metrics-textfile", value_name = "FILE")]
    pub metrics_textfile: Option<PathBuf>,

    /// Every MS milliseconds, print one JSON object of the producer's metrics on a line
    /// of stderr.
    #[arg(long = "stats-interval", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_interval: Option<u64>,
}

/// The tasks serving a running producer's metrics.
pub struct Observer {
    tasks: Vec<JoinHandle<()>>,
    textfile: Option<PathBuf>,
}

/// The largest request head `/metrics` reads; anything longer is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

impl Observer {
    /// Binds the listener (an error if the address is taken) and starts the tasks.
    /// Runs inside the tokio runtime the producer runs on.
    pub async fn start(args: &MetricsArgs, producer: &Producer) -> Result<Observer, String> {
        let mut tasks = Vec::new();
        if let Some(addr) = args.metrics_listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("--metrics-listen {addr}: cannot listen there: {e}"))?;
            let bound = listener.local_addr().map_err(|e| e.to_string())?;
            eprintln!("% metrics at http://{bound}/metrics");
            let producer = producer.clone();
            tasks.push(tokio::spawn(serve(listener, producer)));
        }
        if let Some(ms) = args.stats_interval {
            let producer = producer.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(ms));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    eprintln!("{}", stats_json(&producer.metrics()));
                }
            }));
        }
        Ok(Observer {
            tasks,
            textfile: args.metrics_textfile.clone(),
        })
    }

    /// Stops serving and writes the textfile with `metrics`, the producer's last.
    pub fn finish(self, metrics: &DeliveryMetrics) -> Result<(), String> {
        for t in &self.tasks {
            t.abort();
        }
        match &self.textfile {
            Some(path) => write_textfile(path, &metrics.to_prometheus()),
            None => Ok(()),
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Writes `text` to `path` whole or not at all: a collector reading the file while it
/// is written must never see half of it.
fn write_textfile(path: &Path, text: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("--metrics-textfile {}: {e}", path.display()))
}

async fn serve(listener: TcpListener, producer: Producer) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let producer = producer.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, &producer)).await;
        });
    }
}

/// Answers one HTTP/1.x request: `GET /metrics` gets the exposition, anything else an
/// error status; the connection closes after the answer.
async fn answer(mut stream: TcpStream, producer: &Producer) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next());
    match (method, target) {
        (Some(b"GET"), Some(b"/metrics")) => {
            let body = producer.metrics().to_prometheus();
            respond(&mut stream, "200 OK", &body).await
        }
        (Some(b"GET"), _) => respond(&mut stream, "404 Not Found", "see /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "GET /metrics\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// One `--stats-interval` line: the metrics' counters and gauges as a JSON object.
pub fn stats_json(m: &DeliveryMetrics) -> serde_json::Value {
    let failed: serde_json::Map<String, serde_json::Value> = m
        .failed_by_error
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "ts_ms": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "sent": m.sent,
        "delivered": m.delivered,
        "failed": m.failed,
        "failed_by_error": failed,
        "queued_records": m.pending(),
        "queued_bytes": m.queued_bytes,
        "inflight_requests": m.requests_in_flight,
        "records_retried": m.records_retried,
        "batches_retried": m.retries,
        "batches_split": m.batches_split,
        "epoch_bumps": m.epoch_bumps,
        "resolved_persisted": m.resolved_persisted,
        "unresolved": m.unresolved,
        "connections_opened": m.connections_opened,
        "connect_failures": m.connect_failures,
        "fatal": m.fatal,
        "batches_sent": m.batches_sent,
        "batch_bytes": m.batch_size_sum,
        "brokers": m.brokers.iter().map(|b| json!({
            "node_id": b.node_id,
            "connected": b.connected,
            "in_flight": b.in_flight,
        })).collect::<Vec<_>>(),
        "topic_durability_aligned": m.topic_durability_aligned,
        "delivery_latency": {
            "count": m.delivery_latency.count,
            "sum_ms": m.delivery_latency.sum_ms,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_textfile_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("courier-observe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("courier.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "a 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        assert!(!dir.join("courier.prom.tmp").exists());
        let err = write_textfile(&dir.join("no/such/dir/x.prom"), "a 1\n").unwrap_err();
        assert!(err.starts_with("--metrics-textfile "), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
