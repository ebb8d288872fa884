//! The independent reader: Kafka's own tools, run from the same jars as the brokers,
//! so a verdict on what courier wrote never depends on courier's code.
//!
//! - [`console_consume`] runs `kafka-console-consumer` (CRC checks on) and parses each
//!   record's partition, offset, timestamp, key, headers and value.
//! - [`dump_log`] runs `kafka-dump-log` (`DumpLogSegments`) on segment files and parses
//!   each stored batch's producer id, epoch and sequence range.
//! - [`console_produce`] runs `kafka-console-producer`, to write records that are not
//!   courier's (smoke tests of the kit itself).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::dist::KafkaDist;
use crate::process::{spawn_owned, unregister_pid};
use crate::security::JavaClientConfig;
use crate::KitError;

// Control characters as separators: record payloads in tests are text, and these
// cannot appear in it, so tabs and newlines in values parse correctly.
const FIELD_SEP: u8 = 0x1f;
const RECORD_SEP: u8 = 0x1e;
const HEADER_SEP: u8 = 0x1d;
/// Kafka 4.3's formatter joins a header's name and value with a fixed ':' (there is no
/// property for it), so header names must not contain ':'.
const HEADER_KV_SEP: u8 = b':';
const NULL_LITERAL: &str = "\u{1b}NULL\u{1b}";

/// A record as Kafka's console consumer printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Create or log-append timestamp in milliseconds.
    pub timestamp: i64,
    /// Key; `None` for a null key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` for a null value (tombstone).
    pub value: Option<Vec<u8>>,
    /// Headers in order; a `None` value is a null header value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A record batch as `kafka-dump-log` described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Last offset of the batch.
    pub last_offset: i64,
    /// Number of records.
    pub count: i64,
    /// Producer id, -1 without idempotence.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// First sequence number, -1 without idempotence.
    pub base_sequence: i32,
    /// Last sequence number.
    pub last_sequence: i32,
    /// Whether the batch belongs to a transaction.
    pub is_transactional: bool,
    /// Whether it is a control batch.
    pub is_control: bool,
    /// Compression codec name as Kafka prints it (`none`, `lz4`, `zstd`, ...).
    pub codec: String,
    /// The batch's size in the log, in bytes (header included).
    pub size: i64,
    /// Whether Kafka found the CRC valid.
    pub is_valid: bool,
}

/// Options for [`console_consume`].
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Stop after this many records (the consumer then exits at once); `None` reads
    /// until `idle_timeout` passes with no new record.
    pub max_records: Option<usize>,
    /// How long the consumer waits for a new record before it gives up.
    pub idle_timeout: Duration,
    /// A bound on the whole run.
    pub deadline: Duration,
    /// Read only committed transactions (`--isolation-level read_committed`): records
    /// of aborted and still open transactions are skipped. Off by default
    /// (read_uncommitted, the console consumer's default).
    pub read_committed: bool,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        Self {
            max_records: None,
            idle_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(300),
            read_committed: false,
        }
    }
}

/// Reads `topic` from the beginning with Kafka's console consumer.
///
/// With `max_records` the consumer stops once it has read that many; without, it stops
/// after `idle_timeout` with no new record. Either way every record it printed is
/// returned, so a caller that counts the partition end offsets first (see
/// [`crate::Admin::offsets`]) can ask for exactly what the log holds and then check it
/// for loss, duplicates and order.
pub fn console_consume(
    dist: &KafkaDist,
    bootstrap: &str,
    topic: &str,
    opts: &ConsumeOptions,
) -> Result<Vec<ConsumedRecord>, KitError> {
    console_consume_with(dist, bootstrap, None, topic, opts)
}

/// A tool command with a client configuration: its system properties on the JVM and
/// its properties file as `--command-config`.
fn tool_command(
    dist: &KafkaDist,
    main_class: &str,
    client: Option<&JavaClientConfig>,
) -> Result<std::process::Command, KitError> {
    let jvm_args = client.map(|c| c.jvm_args()).unwrap_or_default();
    let mut cmd = dist.java_command_with(main_class, None, &jvm_args);
    if let Some(c) = client {
        cmd.arg("--command-config").arg(c.write_properties()?);
    }
    Ok(cmd)
}

/// [`console_consume`] as a client configured by `client` (security settings), on
/// `bootstrap`.
pub(crate) fn console_consume_with(
    dist: &KafkaDist,
    bootstrap: &str,
    client: Option<&JavaClientConfig>,
    topic: &str,
    opts: &ConsumeOptions,
) -> Result<Vec<ConsumedRecord>, KitError> {
    let mut cmd = tool_command(
        dist,
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        client,
    )?;
    cmd.args([
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
    ]);
    cmd.args(["--timeout-ms", &opts.idle_timeout.as_millis().to_string()]);
    if opts.read_committed {
        cmd.args(["--isolation-level", "read_committed"]);
    }
    if let Some(n) = opts.max_records {
        cmd.args(["--max-messages", &n.to_string()]);
    }
    // CRC checks are on by default; say so, since they are part of the verdict.
    cmd.args(["--command-property", "check.crcs=true"]);
    cmd.args(["--command-property", "auto.offset.reset=earliest"]);
    for prop in [
        "print.partition=true".to_string(),
        "print.offset=true".to_string(),
        "print.timestamp=true".to_string(),
        "print.key=true".to_string(),
        "print.headers=true".to_string(),
        "print.value=true".to_string(),
        format!("key.separator={}", FIELD_SEP as char),
        format!("line.separator={}", RECORD_SEP as char),
        format!("headers.separator={}", HEADER_SEP as char),
        format!("null.literal={NULL_LITERAL}"),
    ] {
        cmd.args(["--formatter-property", &prop]);
    }
    if opts.max_records == Some(0) {
        return Ok(Vec::new());
    }
    let out = run_tool(cmd, None, opts.deadline, "kafka-console-consumer")?;
    // Without --max-messages the consumer ends with a TimeoutException and exit code 1;
    // that is its normal way to stop, so judge by what it printed.
    let records = parse_console_output(&out.stdout)?;
    // An authentication or TLS failure is fatal for the consumer: it prints nothing
    // and exits non-zero at once, which must not pass for an empty topic.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if records.is_empty() && !out.status.success() && is_auth_failure(&stderr) {
        return Err(KitError::Tool(format!(
            "kafka-console-consumer could not authenticate ({}):\n{}",
            out.status,
            tail(&stderr, 40)
        )));
    }
    if let Some(n) = opts.max_records {
        if records.len() < n {
            return Err(KitError::Tool(format!(
                "kafka-console-consumer read {} of {n} records from {topic} before it stopped ({}):\n{}",
                records.len(),
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 40)
            )));
        }
    }
    Ok(records)
}

fn parse_console_output(stdout: &[u8]) -> Result<Vec<ConsumedRecord>, KitError> {
    let mut records = Vec::new();
    for raw in stdout.split(|&b| b == RECORD_SEP) {
        if raw.is_empty() {
            continue;
        }
        let fields: Vec<&[u8]> = raw.splitn(6, |&b| b == FIELD_SEP).collect();
        let bad = || {
            KitError::Tool(format!(
                "unparseable console consumer record: {:?}",
                String::from_utf8_lossy(raw)
            ))
        };
        if fields.len() != 6 {
            return Err(bad());
        }
        let num = |field: &[u8], prefix: &str| -> Result<i64, KitError> {
            std::str::from_utf8(field)
                .ok()
                .and_then(|s| s.strip_prefix(prefix))
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)
        };
        let timestamp =
            num(fields[0], "CreateTime:").or_else(|_| num(fields[0], "LogAppendTime:"))?;
        let partition = num(fields[1], "Partition:")? as i32;
        let offset = num(fields[2], "Offset:")?;
        let headers = if fields[3] == b"NO_HEADERS" {
            Vec::new()
        } else {
            fields[3]
                .split(|&b| b == HEADER_SEP)
                .map(|h| {
                    let mut kv = h.splitn(2, |&b| b == HEADER_KV_SEP);
                    let k = String::from_utf8_lossy(kv.next().unwrap_or_default()).into_owned();
                    (k, nullable(kv.next().unwrap_or_default()))
                })
                .collect()
        };
        records.push(ConsumedRecord {
            partition,
            offset,
            timestamp,
            key: nullable(fields[4]),
            value: nullable(fields[5]),
            headers,
        });
    }
    Ok(records)
}

fn nullable(field: &[u8]) -> Option<Vec<u8>> {
    (field != NULL_LITERAL.as_bytes()).then(|| field.to_vec())
}

/// Writes `records` (key, value) to `topic` with Kafka's console producer, acks=all.
/// Keys and values must not contain newlines or the 0x1f byte.
pub fn console_produce(
    dist: &KafkaDist,
    bootstrap: &str,
    topic: &str,
    records: &[(Option<&str>, &str)],
) -> Result<(), KitError> {
    console_produce_with(dist, bootstrap, None, topic, records)
}

/// [`console_produce`] as a client configured by `client` (security settings), on
/// `bootstrap`.
pub(crate) fn console_produce_with(
    dist: &KafkaDist,
    bootstrap: &str,
    client: Option<&JavaClientConfig>,
    topic: &str,
    records: &[(Option<&str>, &str)],
) -> Result<(), KitError> {
    let mut cmd = tool_command(dist, "org.apache.kafka.tools.ConsoleProducer", client)?;
    cmd.args(["--bootstrap-server", bootstrap, "--topic", topic]);
    cmd.args(["--command-property", "acks=all"]);
    cmd.args(["--reader-property", "parse.key=true"]);
    cmd.args([
        "--reader-property",
        &format!("key.separator={}", FIELD_SEP as char),
    ]);
    cmd.args(["--reader-property", &format!("null.marker={NULL_LITERAL}")]);
    let mut input = Vec::new();
    for (k, v) in records {
        input.extend_from_slice(k.unwrap_or(NULL_LITERAL).as_bytes());
        input.push(FIELD_SEP);
        input.extend_from_slice(v.as_bytes());
        input.push(b'\n');
    }
    let out = run_tool(
        cmd,
        Some(input),
        Duration::from_secs(120),
        "kafka-console-producer",
    )?;
    // The console producer sends asynchronously and only logs a failed send ("Error
    // when sending message ...") before exiting 0, so a refused write (authentication,
    // TLS) is only visible in what it printed.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.contains("Error when sending message") {
        return Err(KitError::Tool(format!(
            "kafka-console-producer failed ({}):\n{}",
            out.status,
            tail(&stderr, 40)
        )));
    }
    Ok(())
}

/// Whether a Java client's output reports a failed authentication or TLS handshake.
fn is_auth_failure(stderr: &str) -> bool {
    [
        "AuthenticationException",
        "SSLHandshakeException",
        "SslAuthenticationException",
        "SaslAuthenticationException",
    ]
    .iter()
    .any(|m| stderr.contains(m))
}

/// Describes every batch in the given segment files with `kafka-dump-log`.
pub fn dump_log(dist: &KafkaDist, segments: &[PathBuf]) -> Result<Vec<StoredBatch>, KitError> {
    if segments.is_empty() {
        return Ok(Vec::new());
    }
    let files = segments
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = dist.java_command("org.apache.kafka.tools.DumpLogSegments", None);
    cmd.args(["--files", &files]);
    let out = run_tool(cmd, None, Duration::from_secs(120), "kafka-dump-log")?;
    if !out.status.success() {
        return Err(KitError::Tool(format!(
            "kafka-dump-log failed ({}):\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 40)
        )));
    }
    parse_dump_log(&String::from_utf8_lossy(&out.stdout))
}

/// The `.log` segment files of a partition directory, oldest first.
pub fn segment_files(partition_dir: &Path) -> Result<Vec<PathBuf>, KitError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .map_err(|e| KitError::Tool(format!("reading {}: {e}", partition_dir.display())))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    Ok(files)
}

fn parse_dump_log(text: &str) -> Result<Vec<StoredBatch>, KitError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("baseOffset:")) {
        // "key: value key: value ..." – values never contain spaces except
        // deleteHorizonMs's, which we do not read.
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let get = |key: &str| -> Result<&str, KitError> {
            tokens
                .windows(2)
                .find(|w| w[0] == key)
                .map(|w| w[1])
                .ok_or_else(|| KitError::Tool(format!("no `{key}` in dump-log line: {line}")))
        };
        let num = |key: &str| -> Result<i64, KitError> {
            get(key)?
                .parse()
                .map_err(|_| KitError::Tool(format!("bad `{key}` in dump-log line: {line}")))
        };
        out.push(StoredBatch {
            base_offset: num("baseOffset:")?,
            last_offset: num("lastOffset:")?,
            count: num("count:")?,
            producer_id: num("producerId:")?,
            producer_epoch: num("producerEpoch:")? as i16,
            base_sequence: num("baseSequence:")? as i32,
            last_sequence: num("lastSequence:")? as i32,
            is_transactional: get("isTransactional:")? == "true",
            is_control: get("isControl:")? == "true",
            codec: get("compresscodec:")?.to_string(),
            size: num("size:")?,
            is_valid: get("isvalid:")? == "true",
        });
    }
    Ok(out)
}

/// Runs a short-lived tool, feeding `stdin`, killing it at `deadline`.
pub(crate) fn run_tool(
    mut cmd: std::process::Command,
    stdin: Option<Vec<u8>>,
    deadline: Duration,
    name: &str,
) -> Result<Output, KitError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child =
        spawn_owned(cmd).map_err(|e| KitError::Tool(format!("starting {name}: {e}")))?;
    let pid = child.id();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
    }
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_with_deadline(&mut child, deadline);
    unregister_pid(pid as i32);
    let status = status.map_err(|e| KitError::Tool(format!("{name}: {e}")))?;
    let out = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    Ok(out)
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn wait_with_deadline(
    child: &mut Child,
    deadline: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let status = child.wait()?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("killed after {deadline:?} ({status})"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_output_with_nulls_headers_and_tabs_parses() {
        let out = [
            "CreateTime:5\x1fPartition:2\x1fOffset:7\x1fNO_HEADERS\x1f\x1bNULL\x1b\x1fa\tb\nc\x1e",
            "CreateTime:6\x1fPartition:0\x1fOffset:0\x1fh1:v1\x1dh2:\x1bNULL\x1b\x1fk\x1f\x1bNULL\x1b\x1e",
        ]
        .concat();
        let recs = parse_console_output(out.as_bytes()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].partition, 2);
        assert_eq!(recs[0].offset, 7);
        assert_eq!(recs[0].timestamp, 5);
        assert_eq!(recs[0].key, None);
        assert_eq!(recs[0].value.as_deref(), Some(&b"a\tb\nc"[..]));
        assert!(recs[0].headers.is_empty());
        assert_eq!(
            recs[1].headers,
            vec![
                ("h1".to_string(), Some(b"v1".to_vec())),
                ("h2".to_string(), None)
            ]
        );
        assert_eq!(recs[1].value, None);
    }

    #[test]
    fn truncated_console_record_is_an_error() {
        assert!(parse_console_output(b"CreateTime:5\x1fPartition:2\x1e").is_err());
    }

    #[test]
    fn dump_log_lines_parse() {
        let text = "Dumping x.log\nLog starting offset: 0\nbaseOffset: 0 lastOffset: 2 count: 3 baseSequence: 0 lastSequence: 2 producerId: 7 producerEpoch: 1 partitionLeaderEpoch: 0 isTransactional: false isControl: false deleteHorizonMs: OptionalLong.empty position: 0 CreateTime: 1795420388809 size: 110 magic: 2 compresscodec: lz4 crc: 2909753467 isvalid: true\n";
        let b = parse_dump_log(text).unwrap();
        assert_eq!(
            b,
            vec![StoredBatch {
                base_offset: 0,
                last_offset: 2,
                count: 3,
                producer_id: 7,
                producer_epoch: 1,
                base_sequence: 0,
                last_sequence: 2,
                is_transactional: false,
                is_control: false,
                codec: "lz4".into(),
                size: 110,
                is_valid: true,
            }]
        );
    }
}
