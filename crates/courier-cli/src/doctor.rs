//! `courier doctor`: how a producer with the given settings connects (TLS version and
//! checks, SASL mechanism and session), then the three durability layers of each topic as
//! a table, with the verdict. Exits non-zero when a topic is misaligned (1) or the
//! connection or a check fails (2), so scripts and CI can gate on it.

use courier::audit;

use crate::props;

/// Options of `courier doctor`.
#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Bootstrap broker(s), host:port[,host:port...].
    #[arg(short = 'b', long = "bootstrap-server")]
    pub bootstrap: String,

    /// Topic(s) to check (repeatable).
    #[arg(short = 't', long = "topic", required = true)]
    pub topics: Vec<String>,

    /// Producer property k=v to judge against (e.g. -X acks=1); the default is
    /// courier's durable configuration.
    #[arg(short = 'X', value_name = "PROP=VALUE")]
    pub props: Vec<String>,
}

/// Runs the audit; returns the exit code: 0 aligned, 1 misaligned, 2 could not check.
pub fn run(args: DoctorArgs) -> i32 {
    let mut kv = Vec::new();
    for p in &args.props {
        match props::parse_kv(p) {
            Ok(pair) => kv.push(pair),
            Err(e) => {
                eprintln!("courier doctor: -X {e}");
                return 2;
            }
        }
    }
    let base = courier::ProducerConfig::builder().bootstrap_servers(args.bootstrap.clone());
    let builder = match props::builder_with(base, &kv) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("courier doctor: {e}");
            return 2;
        }
    };
    // A weak producer setting is a finding here, not a reason to refuse to look.
    let builder = builder.durability_check(courier::config::DurabilityCheck::Off);
    let config = match props::build(builder) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("courier doctor: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("courier doctor: {e}");
            return 2;
        }
    };
    // The connection first, as the producer would make it: a TLS or SASL problem is said
    // once, with what to change, instead of as every topic's audit failing.
    match rt.block_on(audit::check_connection(&config)) {
        Ok(how) => println!("connection: {how}"),
        Err(e) => {
            eprintln!("courier doctor: cannot connect as the producer would: {e}");
            return 2;
        }
    }
    let mut code = 0;
    for topic in &args.topics {
        match rt.block_on(audit::audit(&config, topic)) {
            Ok(report) => {
                println!("{report}");
                if !report.is_aligned() {
                    code = code.max(1);
                }
            }
            Err(e) => {
                eprintln!("courier doctor: {topic}: {e}");
                code = 2;
            }
        }
    }
    code
}
