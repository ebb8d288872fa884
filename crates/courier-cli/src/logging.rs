//! What the producer says while it works, on stderr: warnings and errors by default
//! (durability warnings, brokers that cannot be reached and why), `-q` for errors only,
//! `-v`/`-vv` for more, kcat's `-d CONTEXTS` for debug output of parts of courier, and
//! `RUST_LOG` (the `tracing` filter syntax) to replace the default filter.

use tracing_subscriber::EnvFilter;

/// kcat/librdkafka `debug` contexts courier has, and the parts of courier they turn on.
const CONTEXTS: &[(&str, &[&str])] = &[
    ("generic", &["courier", "courier_cli"]),
    (
        "broker",
        &["courier::net::pool", "courier::net::connection"],
    ),
    ("protocol", &["courier::net"]),
    ("security", &["courier::net::tls", "courier::net::sasl"]),
    (
        "metadata",
        &["courier::net::metadata", "courier::producer::driver"],
    ),
    ("topic", &["courier::audit", "courier::producer::driver"]),
    ("msg", &["courier::producer"]),
    ("eos", &["courier::producer::driver"]),
    ("conf", &["courier::config"]),
    ("all", &["courier", "courier_cli", "courier_testkit"]),
];

/// The filter for `-q`, `-v` (count) and `-d` (comma-separated contexts); `RUST_LOG`, when
/// set, replaces the default level, and `-d` adds to it.
pub fn filter(
    quiet: bool,
    verbose: u8,
    debug: Option<&str>,
    rust_log: Option<&str>,
) -> Result<EnvFilter, String> {
    let base = match rust_log.filter(|s| !s.trim().is_empty()) {
        Some(spec) => spec.to_string(),
        None if quiet => "error".to_string(),
        None => match verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
        .to_string(),
    };
    let mut directives = vec![base];
    for ctx in debug
        .into_iter()
        .flat_map(|d| d.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let Some((_, targets)) = CONTEXTS.iter().find(|(name, _)| *name == ctx) else {
            let known: Vec<&str> = CONTEXTS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "-d {ctx}: not a courier debug context; use any of {}",
                known.join(", ")
            ));
        };
        directives.extend(targets.iter().map(|t| format!("{t}=debug")));
    }
    EnvFilter::try_new(directives.join(","))
        .map_err(|e| format!("RUST_LOG / -d: not a valid log filter: {e}"))
}

/// Installs the stderr logger. Messages carry their own explanation, so without `-v` or
/// `-d` they are printed without the module path.
pub fn init(quiet: bool, verbose: u8, debug: Option<&str>) -> Result<(), String> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = filter(quiet, verbose, debug, rust_log.as_deref())?;
    let detailed = verbose > 0 || debug.is_some() || rust_log.is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(detailed);
    let result = if detailed {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
    result.map_err(|e| format!("installing the logger: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: EnvFilter) -> String {
        f.to_string()
    }

    #[test]
    fn default_is_warnings_quiet_is_errors_verbose_is_more() {
        assert_eq!(text(filter(false, 0, None, None).unwrap()), "warn");
        assert_eq!(text(filter(true, 0, None, None).unwrap()), "error");
        assert_eq!(text(filter(false, 1, None, None).unwrap()), "info");
        assert_eq!(text(filter(false, 2, None, None).unwrap()), "debug");
    }

    #[test]
    fn debug_contexts_turn_on_parts_of_courier_and_unknown_ones_are_named() {
        let f = text(filter(false, 0, Some("broker,protocol"), None).unwrap());
        assert!(f.contains("courier::net::pool=debug"), "{f}");
        assert!(f.contains("courier::net=debug"), "{f}");
        assert!(f.contains("warn"), "{f}");
        let e = filter(false, 0, Some("broker,cgrp"), None).unwrap_err();
        assert!(e.starts_with("-d cgrp: not a courier debug context"), "{e}");
        assert!(e.contains("metadata"), "{e}");
    }

    #[test]
    fn rust_log_replaces_the_default_level() {
        let f = text(filter(true, 0, Some("msg"), Some("courier::net=trace")).unwrap());
        assert!(f.contains("courier::net=trace"), "{f}");
        assert!(f.contains("courier::producer=debug"), "{f}");
        assert!(!f.contains("error"), "{f}");
        assert!(filter(false, 0, None, Some("courier=[")).is_err());
    }
}
