//! `courier`: the command-line face of the courier Kafka producer.
//!
//! * `courier produce` - kcat's producer mode (`-b -t -p -k -K -H -X -z -l`), exit
//!   status 0 only when every record was acknowledged;
//! * `courier perf` - `kafka-producer-perf-test` with the same flags and output, plus
//!   the client's CPU time;
//! * `courier demo` - start a local 3-broker cluster, produce durably, and have Kafka's
//!   own tools verify every acknowledged record;
//! * `courier blackhole` - a broker that acknowledges everything and stores nothing,
//!   to measure a client's own ceiling.
#![deny(missing_docs)]

mod demo;
mod input;
mod perf;
mod produce;
mod props;
mod stats;

use clap::{Parser, Subcommand, ValueEnum};

/// courier: a pure-Rust Kafka producer, on the command line.
#[derive(Debug, Parser)]
#[command(name = "courier", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce records from files or stdin (kcat -P flags).
    Produce(produce::ProduceArgs),
    /// Measure producer throughput and latency (kafka-producer-perf-test flags).
    Perf(perf::PerfArgs),
    /// Start a local Kafka cluster, produce durably and verify with Kafka's tools.
    Demo(demo::DemoArgs),
    /// Run a blackhole broker: acknowledges every Produce at once, stores nothing.
    Blackhole(BlackholeArgs),
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
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Produce(a) => produce::run(a),
        Command::Perf(a) => perf::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Blackhole(a) => blackhole(a),
    };
    std::process::exit(code);
}
