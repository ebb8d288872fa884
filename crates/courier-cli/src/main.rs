//! `courier`: the command-line face of the courier Kafka producer.
//!
//! * `courier produce` - kcat's producer mode (`-b -t -p -k -K -H -X -z -l`), exit
//!   status 0 only when every record was acknowledged;
//! * `courier perf` - `kafka-producer-perf-test` with the same flags and output, plus
//!   the client's CPU time;
//! * `courier demo` - start a local 3-broker cluster, produce durably, and have Kafka's
//!   own tools verify every acknowledged record;
//! * `courier blackhole` - a broker that acknowledges everything and stores nothing,
//!   to measure a client's own ceiling;
//! * `courier doctor` - a topic's three durability layers and the verdict, non-zero
//!   exit when they do not line up.
#![deny(missing_docs)]

mod demo;
mod doctor;
mod input;
mod logging;
mod memory;
mod observe;
mod perf;
mod produce;
mod props;
mod resend;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};

/// The static binary's allocator (see Cargo.toml): musl's is slow with one thread
/// allocating records and another freeing them.
#[cfg(target_env = "musl")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives memory freed by the producer back to the system at once instead of 10 ms later:
/// with the delay a 2M-record `courier produce` peaked at 83 MB RSS, with none at 40 MB
/// (glibc: 20 MB), for the same CPU within noise.
#[cfg(target_env = "musl")]
fn tune_allocator() {
    /// `mi_option_purge_delay` in the `mi_option_e` enum of mimalloc v3's `mimalloc.h`
    /// (libmimalloc-sys 0.1.49, pinned in Cargo.toml; its Rust bindings lack the name).
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set only stores an integer in mimalloc's option table; any value
    // is valid for this option (0 = purge at once).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}

/// Fixes glibc's thresholds for returning memory. By default glibc serves blocks of
/// 128 KiB and more with their own mappings, but raises that threshold (up to 32 MiB)
/// each time such a block is freed, and the trim threshold to twice it: after the first
/// few grown vectors (the hand-off queue, the staging arena, a request) every large
/// block comes from the heap and stays with the process. Fixed at 512 KiB, the 2M-record
/// `courier produce` of issue 19 peaked at 30.9-37.5 MB instead of 38.7-43.7 MB (three
/// alternating runs each, one real broker), for 2-5 % more CPU (the mappings' page
/// faults); 128 KiB saved no more memory and cost 8 %. Setting either value also turns
/// the dynamic adjustment off (mallopt(3)). Environment settings
/// (`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...`) still win: they are left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    const THRESHOLD: libc::c_int = 512 << 10;
    if std::env::var_os("GLIBC_TUNABLES").is_some_and(|t| t.to_string_lossy().contains("malloc")) {
        return;
    }
    // SAFETY: mallopt only stores the integers in malloc's parameters; both are valid
    // for these options (mallopt(3)).
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(any(target_env = "musl", all(target_os = "linux", target_env = "gnu"))))]
fn tune_allocator() {}

/// courier: a pure-Rust Kafka producer, on the command line.
#[derive(Debug, Parser)]
#[command(name = "courier", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Errors only on stderr: no warnings (durability, unreachable brokers).
    #[arg(short = 'q', long = "quiet", global = true)]
    quiet: bool,

    /// Debug output for parts of courier, kcat style: comma-separated contexts of
    /// generic, broker, protocol, security, metadata, topic, msg, eos, conf, all.
    /// RUST_LOG (tracing filter syntax) replaces the default level.
    #[arg(short = 'd', long = "debug", value_name = "CONTEXTS", global = true)]
    debug: Option<String>,
}

/// `courier produce --help`'s closing lines.
const PRODUCE_EXAMPLES: &str = "\
Examples:
  courier produce -b localhost:9092 -t orders -K : < orders.txt
  # every record exactly once at read_committed, a transaction per 1000 lines:
  courier produce -b localhost:9092 -t orders -K : -l orders.txt \\
    -X transactional.id=orders-loader-1 --transaction-records 1000 --failed-out failed.txt

Exit status: 0 when every record was acknowledged (with --transaction-records: \
committed), 1 when any failed, 2 for refused arguments or settings, 130 after Ctrl-C \
and 143 after SIGTERM (with --transaction-records the open transaction is aborted; \
committed ones stay).";

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce records from files or stdin (kcat -P flags).
    #[command(after_long_help = PRODUCE_EXAMPLES)]
    Produce(produce::ProduceArgs),
    /// Measure producer throughput and latency (kafka-producer-perf-test flags).
    Perf(perf::PerfArgs),
    /// Start a local Kafka cluster, produce durably and verify with Kafka's tools.
    Demo(demo::DemoArgs),
    /// Run a blackhole broker: acknowledges every Produce at once, stores nothing.
    Blackhole(BlackholeArgs),
    /// Check a topic's three durability layers (acks, replication, min.insync.replicas).
    Doctor(doctor::DoctorArgs),
    /// Create or delete a topic (for scripts such as perf/run.py).
    #[command(hide = true)]
    Topic(TopicArgs),
}

/// How `--summary` prints the run's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// One JSON object on stdout.
    Json,
    /// A human-readable line on stderr.
    Text,
}

/// Options of `courier blackhole`.
#[derive(Debug, clap::Args)]
struct BlackholeArgs {
    /// Partitions of every topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,

    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

/// Whether `courier topic` creates or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TopicAction {
    Create,
    Delete,
}

/// Options of `courier topic`.
#[derive(Debug, clap::Args)]
struct TopicArgs {
    /// create or delete.
    #[arg(value_enum)]
    action: TopicAction,

    /// Bootstrap broker(s).
    #[arg(short = 'b', long = "bootstrap-server")]
    bootstrap: String,

    /// Topic name.
    #[arg(long)]
    topic: String,

    /// Partitions (create).
    #[arg(long, default_value_t = 1)]
    partitions: i32,

    /// Replication factor (create); -1 takes the broker default.
    #[arg(long = "replication-factor", default_value_t = -1, allow_negative_numbers = true)]
    replication_factor: i16,

    /// Topic config k=v (create; repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
}

fn topic(args: TopicArgs) -> i32 {
    use courier_testkit::{wait_until, Admin, TopicSpec};
    let mut admin = Admin::new(&args.bootstrap);
    let result = match args.action {
        TopicAction::Delete => admin.delete_topic(&args.topic),
        TopicAction::Create => {
            let mut spec = TopicSpec::new(&args.topic)
                .partitions(args.partitions)
                .replication_factor(args.replication_factor);
            for c in &args.configs {
                match props::parse_kv(c) {
                    Ok((k, v)) => spec = spec.config(k, v),
                    Err(e) => {
                        eprintln!("courier topic: --config {e}");
                        return 2;
                    }
                }
            }
            admin.create_topic(&spec).and_then(|()| {
                wait_until(
                    &format!("leaders for every partition of {}", args.topic),
                    std::time::Duration::from_secs(60),
                    || {
                        let md = admin
                            .metadata(Some(&[&args.topic]))
                            .map_err(|e| e.to_string())?;
                        match md.topics.first() {
                            Some(t)
                                if t.partitions.len() == args.partitions as usize
                                    && t.partitions.iter().all(|p| p.leader >= 0) =>
                            {
                                Ok(())
                            }
                            other => Err(format!("{other:?}")),
                        }
                    },
                )
            })
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("courier topic: {e}");
            1
        }
    }
}

fn blackhole(args: BlackholeArgs) -> i32 {
    let bh = match courier_testkit::Blackhole::start_on(&args.listen, args.partitions) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("courier blackhole: {e}");
            return 1;
        }
    };
    println!("bootstrap: {}", bh.bootstrap());
    eprintln!(
        "blackhole broker: every topic has {} partitions; Produce is acknowledged at once and \
         nothing is stored. Ctrl-C stops it.",
        args.partitions
    );
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("courier blackhole: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    eprintln!(
        "blackhole broker: swallowed {} records in {} batches ({} bytes, {} requests)",
        bh.records(),
        bh.batches(),
        bh.bytes(),
        bh.requests()
    );
    0
}

fn main() {
    tune_allocator();
    let cli = Cli::parse();
    let verbose = match &cli.command {
        Command::Produce(a) => a.verbose,
        _ => 0,
    };
    if let Err(e) = logging::init(cli.quiet, verbose, cli.debug.as_deref()) {
        eprintln!("courier: {e}");
        std::process::exit(2);
    }
    let code = match cli.command {
        Command::Produce(a) => produce::run(a),
        Command::Perf(a) => perf::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Blackhole(a) => blackhole(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Topic(a) => topic(a),
    };
    std::process::exit(code);
}
