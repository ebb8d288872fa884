//! `courier-kafka`: starts a real local Kafka cluster from the test kit.
//!
//! ```text
//! courier-kafka [--brokers N] [--secure] [--heap-mb MB] [--check] [--exit-without-cleanup]
//! ```
//!
//! `--secure` adds every secured listener of the test kit (`Security::all()`) and
//! prints each one's address, mechanisms, users, the CA file and the OIDC endpoints;
//! with `--check` it also makes a round trip over SASL_SSL (SCRAM-SHA-512).
//!
//! Prints the bootstrap address, the broker process ids and the run directory, then
//! keeps the cluster up until Ctrl-C (SIGINT) or SIGTERM. With `--check` it instead
//! creates a durable topic, writes records with Kafka's console producer, reads them
//! back with the console consumer, prints what it found and exits (non-zero when the
//! read-back does not match).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use courier_testkit::{KafkaCluster, Security, TopicSpec};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn usage() -> ! {
    eprintln!("usage: courier-kafka [--brokers N] [--secure] [--heap-mb MB] [--check]");
    std::process::exit(2);
}

fn main() {
    let mut brokers = 1usize;
    let mut check = false;
    let mut secure = false;
    let mut heap_mb = None;
    let mut exit_without_cleanup = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--brokers" => {
                brokers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--check" => check = true,
            "--secure" => secure = true,
            "--heap-mb" => {
                heap_mb = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|&n| n >= 128)
                        .unwrap_or_else(|| usage()),
                )
            }
            // For the kit's own test that process exit (not drop) cleans up.
            "--exit-without-cleanup" => exit_without_cleanup = true,
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other}");
                usage()
            }
        }
    }

    let started = Instant::now();
    eprintln!(
        "starting a {brokers}-broker Kafka {} cluster on 127.0.0.1 ...",
        courier_testkit::KAFKA_VERSION
    );
    let mut builder = KafkaCluster::builder().brokers(brokers);
    if secure {
        builder = builder.security(Security::all());
    }
    if let Some(mb) = heap_mb {
        builder = builder.heap_mb(mb);
    }
    let cluster = match builder.start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("bootstrap: {}", cluster.bootstrap());
    if let Ok(local) = cluster.local() {
        let pids: Vec<String> = local
            .broker_ids()
            .iter()
            .filter_map(|&id| local.pid(id).ok().flatten())
            .map(|p| p.to_string())
            .collect();
        println!("pids: {}", pids.join(","));
        if let Some(dir) = local
            .data_dir(local.broker_ids()[0])
            .ok()
            .and_then(|d| d.parent().and_then(|p| p.parent()).map(|p| p.to_path_buf()))
        {
            println!("run dir: {}", dir.display());
        }
    }
    if let Ok(sec) = cluster.security() {
        print_security(sec);
    }
    println!("started in {:.1}s", started.elapsed().as_secs_f64());

    if exit_without_cleanup {
        std::mem::forget(cluster);
        std::process::exit(0);
    }

    if check {
        match run_check(&cluster, brokers) {
            Ok(()) => println!("check: ok"),
            Err(e) => {
                eprintln!("check failed: {e}");
                std::process::exit(1);
            }
        }
        return;
    }

    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    eprintln!("cluster is up; Ctrl-C stops it and removes its files");
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("stopping");
}

fn print_security(sec: &courier_testkit::SecurityInfo) {
    for l in &sec.listeners {
        let mechs: Vec<&str> = l.mechanisms.iter().map(|m| m.name()).collect();
        println!(
            "listener {}: {} security.protocol={}{}{}{}",
            l.listener.name(),
            l.bootstrap,
            l.security_protocol,
            if mechs.is_empty() {
                String::new()
            } else {
                format!(" sasl.mechanisms={}", mechs.join(","))
            },
            if l.client_auth_required {
                " ssl.client.auth=required"
            } else {
                ""
            },
            l.reauth
                .map(|d| format!(" connections.max.reauth.ms={}", d.as_millis()))
                .unwrap_or_default(),
        );
    }
    let users: Vec<String> = sec
        .users
        .iter()
        .map(|u| format!("{}/{}", u.name, u.password))
        .collect();
    println!("users: {}", users.join(" "));
    println!("ca: {}", sec.pki.ca.cert_path.display());
    println!(
        "client cert: {} key: {}",
        sec.pki.client.cert_path.display(),
        sec.pki.client.key_path.display()
    );
    if let Ok(oidc) = sec.oidc() {
        println!(
            "oidc: token {} jwks {} audience {}",
            oidc.token_url(),
            oidc.jwks_url(),
            oidc.audience()
        );
    }
}

fn run_check(cluster: &KafkaCluster, brokers: usize) -> Result<(), Box<dyn std::error::Error>> {
    let rf = brokers.min(3) as i16;
    let topic = "courier-check";
    cluster.create_topic(&TopicSpec::new(topic).partitions(3).replication_factor(rf))?;
    let part = cluster.partition(topic, 0)?;
    println!(
        "topic {topic}: 3 partitions, replicas {:?}, isr {:?}, leader {}",
        part.replicas, part.isr, part.leader
    );
    let records: Vec<(String, String)> = (0..30)
        .map(|i| {
            (
                format!("order-{i}"),
                format!("{{\"order\":{i},\"amount\":{}.99}}", i * 3),
            )
        })
        .collect();
    let borrowed: Vec<(Option<&str>, &str)> = records
        .iter()
        .map(|(k, v)| (Some(k.as_str()), v.as_str()))
        .collect();
    cluster.console_produce(topic, &borrowed)?;
    println!(
        "wrote {} records with kafka-console-producer (acks=all)",
        records.len()
    );
    let read = cluster.consume_all(topic)?;
    println!(
        "read {} records back with kafka-console-consumer:",
        read.len()
    );
    for r in read.iter().take(5) {
        println!(
            "  {topic} [{}] @ {}  {} = {}",
            r.partition,
            r.offset,
            String::from_utf8_lossy(r.key.as_deref().unwrap_or(b"null")),
            String::from_utf8_lossy(r.value.as_deref().unwrap_or(b"null"))
        );
    }
    if read.len() > 5 {
        println!("  ...");
    }
    let mut got: Vec<(Vec<u8>, Vec<u8>)> = read
        .iter()
        .map(|r| {
            (
                r.key.clone().unwrap_or_default(),
                r.value.clone().unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = records
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    want.sort();
    if got != want {
        return Err(format!(
            "read back {} records, expected exactly the {} written",
            got.len(),
            want.len()
        )
        .into());
    }
    if let Ok(sec) = cluster.security() {
        check_sasl_ssl(cluster, sec)?;
    }
    Ok(())
}

/// A round trip over SASL_SSL with SCRAM-SHA-512, Kafka's console clients on both ends.
fn check_sasl_ssl(
    cluster: &KafkaCluster,
    sec: &courier_testkit::SecurityInfo,
) -> Result<(), Box<dyn std::error::Error>> {
    use courier_testkit::{ClientAuth, ConsumeOptions, Listener, SaslMechanism};
    let topic = "courier-check-sasl-ssl";
    cluster.create_topic(&TopicSpec::new(topic))?;
    let java = sec.java_client(
        Listener::SaslSsl,
        &ClientAuth::sasl(SaslMechanism::ScramSha512, sec.user()),
    )?;
    cluster.console_produce_with(&java, topic, &[(None, "over-sasl-ssl")])?;
    let read = cluster.consume_with(
        &java,
        topic,
        &ConsumeOptions {
            max_records: Some(1),
            ..ConsumeOptions::default()
        },
    )?;
    if read.first().and_then(|r| r.value.as_deref()) != Some(&b"over-sasl-ssl"[..]) {
        return Err(format!("SASL_SSL round trip read {read:?}").into());
    }
    println!(
        "SASL_SSL (SCRAM-SHA-512 as {}): wrote and read 1 record",
        sec.user().name
    );
    Ok(())
}
