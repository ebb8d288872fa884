//! Producer properties from the command line (`-X k=v`, `--producer-props k=v`) and
//! from properties files, all going through `ProducerConfig::set`: unknown keys and
//! bad values are errors with the config's own explanation.

use courier::config::ProducerConfigBuilder;
use courier::ProducerConfig;

/// Splits `key=value` (at the first `=`).
///
/// The error never repeats the argument beyond its leading key-like characters: a
/// mistyped `sasl.password:hunter2` must not print the password.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => {
            let shown: String = s
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                .take(64)
                .collect();
            let rest = if shown.len() < s.len() { "..." } else { "" };
            Err(format!(
                "'{shown}{rest}' is not a property: write key=value, e.g. linger.ms=10"
            ))
        }
    }
}

/// Reads a Java-style properties file: `key=value` lines, `#` and `!` comments.
pub fn read_properties_file(path: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the properties file {path}: {e}"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let kv = parse_kv(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
        out.push(kv);
    }
    Ok(out)
}

/// A config builder fed with `props` in order (later ones win), for the commands that
/// run no transactions (`perf`, `demo`, `doctor`): they refuse `transactional.id` and
/// `transaction.timeout.ms`, which would only make every record fail outside a
/// transaction. Errors name the property that was refused.
pub fn builder_with(
    builder: ProducerConfigBuilder,
    props: &[(String, String)],
) -> Result<ProducerConfigBuilder, String> {
    if let Some((k, _)) = props
        .iter()
        .find(|(k, _)| k == "transactional.id" || k == "transaction.timeout.ms")
    {
        return Err(format!(
            "property {k}: this command does not run transactions; courier produce does, \
             with -X transactional.id=ID --transaction-records N: remove {k} here"
        ));
    }
    transactional_builder_with(builder, props)
}

/// A config builder fed with `props` in order (later ones win), `transactional.id`
/// included: for `courier produce`, which runs the transactions. Errors name the
/// property that was refused.
pub fn transactional_builder_with(
    builder: ProducerConfigBuilder,
    props: &[(String, String)],
) -> Result<ProducerConfigBuilder, String> {
    // The config's error names the key and shows the value only where it is the problem
    // and not a secret, so nothing here repeats the value.
    props.iter().try_fold(builder, |b, (k, v)| {
        b.set(k, v).map_err(|e| format!("property {k}: {e}"))
    })
}

/// Builds and validates the config.
pub fn build(builder: ProducerConfigBuilder) -> Result<ProducerConfig, String> {
    builder
        .build()
        .map_err(|e| format!("invalid producer configuration: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_the_key_named() {
        let err = builder_with(
            ProducerConfig::builder(),
            &[("lingr.ms".to_string(), "5".to_string())],
        )
        .unwrap_err();
        assert!(err.contains("lingr.ms"), "{err}");
    }

    #[test]
    fn refused_properties_never_echo_secret_values() {
        for (k, v) in [
            ("sasl.jaas.config", "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";"),
            ("sasl.pasword", "hunter2"),
            ("sasl.password", "hunter2"),
            ("ssl.key.password", "hunter2"),
        ] {
            let err = builder_with(ProducerConfig::builder(), &[(k.to_string(), v.to_string())])
                .err()
                .unwrap_or_default();
            assert!(!err.contains("hunter2"), "{err}");
        }
        let err = parse_kv("sasl.password:hunter2").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("sasl.password"), "{err}");
    }

    #[test]
    fn transactional_settings_are_refused_where_no_transactions_run() {
        for k in ["transactional.id", "transaction.timeout.ms"] {
            let kv = [(k.to_string(), "1".to_string())];
            let err = builder_with(ProducerConfig::builder(), &kv)
                .err()
                .unwrap_or_default();
            assert!(
                err.contains("does not run transactions") && err.contains("--transaction-records"),
                "{err}"
            );
        }
        // courier produce takes them (and runs the transactions).
        let kv = [
            ("transactional.id".to_string(), "tx-1".to_string()),
            ("transaction.timeout.ms".to_string(), "9000".to_string()),
            (
                "bootstrap.servers".to_string(),
                "127.0.0.1:9092".to_string(),
            ),
        ];
        let config =
            build(transactional_builder_with(ProducerConfig::builder(), &kv).unwrap()).unwrap();
        assert_eq!(config.transactional_id(), Some("tx-1"));
    }

    #[test]
    fn kv_needs_an_equals_sign_and_a_key() {
        assert_eq!(
            parse_kv("acks=all").unwrap(),
            ("acks".to_string(), "all".to_string())
        );
        assert_eq!(parse_kv("a=b=c").unwrap().1, "b=c");
        assert!(parse_kv("acks").is_err());
        assert!(parse_kv("=x").is_err());
    }
}
