use std::time::Duration;

use super::*;

fn base() -> ProducerConfigBuilder {
    ProducerConfig::builder().bootstrap_servers("localhost:9092")
}

fn props(pairs: &[(&str, &str)]) -> Result<ProducerConfig, ConfigError> {
    ProducerConfig::from_properties(
        std::iter::once(("bootstrap.servers", "localhost:9092")).chain(pairs.iter().copied()),
    )
}

fn err(pairs: &[(&str, &str)]) -> ConfigError {
    props(pairs).expect_err("configuration should be rejected")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------------------------
// Defaults

#[test]
fn defaults_are_the_java_client_values() {
    // Literal numbers from kafka-clients 4.3.1 (ProducerConfig.configDef().defaultValues()),
    // not the constants, so a wrong constant fails here.
    let c = base().build().unwrap();
    assert_eq!(c.acks(), Acks::All);
    assert!(c.enable_idempotence());
    assert_eq!(c.max_in_flight_requests_per_connection(), 5);
    assert_eq!(c.retries(), 2_147_483_647);
    assert_eq!(c.retry_backoff(), ms(100));
    assert_eq!(c.retry_backoff_max(), ms(1_000));
    assert_eq!(c.linger(), ms(5));
    assert_eq!(c.batch_size(), 16_384);
    assert_eq!(c.buffer_memory(), 33_554_432);
    assert_eq!(c.max_request_size(), 1_048_576);
    assert_eq!(c.compression(), CompressionType::None);
    assert_eq!(c.delivery_timeout(), ms(120_000));
    assert_eq!(c.request_timeout(), ms(30_000));
    assert_eq!(c.metadata_max_age(), ms(300_000));
    assert_eq!(c.max_block(), ms(60_000));
    assert_eq!(c.socket_connection_setup_timeout(), ms(10_000));
    assert_eq!(c.socket_connection_setup_timeout_max(), ms(30_000));
    assert_eq!(c.reconnect_backoff(), ms(50));
    assert_eq!(c.reconnect_backoff_max(), ms(1_000));
    assert_eq!(c.connections_max_idle(), ms(540_000));
    assert_eq!(c.security_protocol(), SecurityProtocol::Plaintext);
    // courier's own choices.
    assert_eq!(c.client_id(), "courier");
    assert_eq!(c.delivery_resolution_timeout(), ms(120_000));
    assert_eq!(c.partitioner(), Partitioner::Default);
    assert_eq!(c.durability_check(), DurabilityCheck::Warn);
    assert_eq!(c.sasl(), None);
    assert!(c.notices().is_empty());
    assert!(c.durability_issues().is_empty());
}

#[test]
fn defaults_module_matches_a_built_default_config() {
    let c = base().build().unwrap();
    assert_eq!(c.client_id(), defaults::CLIENT_ID);
    assert_eq!(c.acks(), defaults::ACKS);
    assert_eq!(c.enable_idempotence(), defaults::ENABLE_IDEMPOTENCE);
    assert_eq!(
        c.max_in_flight_requests_per_connection(),
        defaults::MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION
    );
    assert_eq!(c.retries(), defaults::RETRIES);
    assert_eq!(c.retry_backoff(), defaults::RETRY_BACKOFF);
    assert_eq!(c.retry_backoff_max(), defaults::RETRY_BACKOFF_MAX);
    assert_eq!(c.linger(), defaults::LINGER);
    assert_eq!(c.batch_size(), defaults::BATCH_SIZE);
    assert_eq!(c.buffer_memory(), defaults::BUFFER_MEMORY);
    assert_eq!(c.max_request_size(), defaults::MAX_REQUEST_SIZE);
    assert_eq!(c.compression(), defaults::COMPRESSION);
    assert_eq!(c.delivery_timeout(), defaults::DELIVERY_TIMEOUT);
    assert_eq!(c.request_timeout(), defaults::REQUEST_TIMEOUT);
    assert_eq!(c.metadata_max_age(), defaults::METADATA_MAX_AGE);
    assert_eq!(c.max_block(), defaults::MAX_BLOCK);
    assert_eq!(c.partitioner(), defaults::PARTITIONER);
    assert_eq!(
        c.socket_connection_setup_timeout(),
        defaults::SOCKET_CONNECTION_SETUP_TIMEOUT
    );
    assert_eq!(
        c.socket_connection_setup_timeout_max(),
        defaults::SOCKET_CONNECTION_SETUP_TIMEOUT_MAX
    );
    assert_eq!(c.reconnect_backoff(), defaults::RECONNECT_BACKOFF);
    assert_eq!(c.reconnect_backoff_max(), defaults::RECONNECT_BACKOFF_MAX);
    assert_eq!(c.connections_max_idle(), defaults::CONNECTIONS_MAX_IDLE);
    assert_eq!(c.durability_check(), defaults::DURABILITY_CHECK);
    assert_eq!(c.security_protocol(), defaults::SECURITY_PROTOCOL);
}

#[test]
fn setting_a_value_equal_to_its_default_changes_nothing() {
    let explicit = props(&[
        ("acks", "all"),
        ("linger.ms", "5"),
        ("batch.size", "16384"),
        ("delivery.timeout.ms", "120000"),
    ])
    .unwrap();
    assert_eq!(explicit, base().build().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Property parsing

#[test]
fn every_property_is_parsed_into_its_typed_setting() {
    let c = props(&[
        ("bootstrap.servers", "b1:9092, b2:9093,[::1]:9094"),
        ("client.id", " billing "),
        ("acks", "all"),
        ("enable.idempotence", "TRUE"),
        ("max.in.flight.requests.per.connection", "3"),
        ("retries", "7"),
        ("retry.backoff.ms", "20"),
        ("retry.backoff.max.ms", "2000"),
        ("linger.ms", " 50 "),
        ("batch.size", "65536"),
        ("buffer.memory", "1048576"),
        ("max.request.size", "2097152"),
        ("compression.type", "SNAPPY"),
        ("delivery.timeout.ms", "60000"),
        ("request.timeout.ms", "10000"),
        ("metadata.max.age.ms", "1000"),
        ("max.block.ms", "500"),
        ("partitioner", "ignore_keys"),
        ("socket.connection.setup.timeout.ms", "1000"),
        ("socket.connection.setup.timeout.max.ms", "5000"),
        ("reconnect.backoff.ms", "10"),
        ("reconnect.backoff.max.ms", "100"),
        ("connections.max.idle.ms", "60000"),
        ("durability.check", "Enforce"),
    ])
    .unwrap();
    let servers: Vec<String> = c
        .bootstrap_servers()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(servers, ["b1:9092", "b2:9093", "[::1]:9094"]);
    assert_eq!(c.client_id(), "billing");
    assert_eq!(c.max_in_flight_requests_per_connection(), 3);
    assert_eq!(c.retries(), 7);
    assert_eq!(c.retry_backoff(), ms(20));
    assert_eq!(c.retry_backoff_max(), ms(2_000));
    assert_eq!(c.linger(), ms(50));
    assert_eq!(c.batch_size(), 65_536);
    assert_eq!(c.buffer_memory(), 1_048_576);
    assert_eq!(c.max_request_size(), 2_097_152);
    assert_eq!(c.compression(), CompressionType::Snappy);
    assert_eq!(c.delivery_timeout(), ms(60_000));
    assert_eq!(c.request_timeout(), ms(10_000));
    assert_eq!(c.metadata_max_age(), ms(1_000));
    assert_eq!(c.max_block(), ms(500));
    assert_eq!(c.partitioner(), Partitioner::IgnoreKeys);
    assert_eq!(c.socket_connection_setup_timeout(), ms(1_000));
    assert_eq!(c.socket_connection_setup_timeout_max(), ms(5_000));
    assert_eq!(c.reconnect_backoff(), ms(10));
    assert_eq!(c.reconnect_backoff_max(), ms(100));
    assert_eq!(c.connections_max_idle(), ms(60_000));
    assert_eq!(c.durability_check(), DurabilityCheck::Enforce);
}

#[test]
fn sasl_settings_are_parsed_into_the_configuration() {
    let c = props(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "scram-sha-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "s3cret"),
    ])
    .unwrap();
    assert_eq!(c.security_protocol(), SecurityProtocol::SaslSsl);
    assert!(c.tls().is_some(), "sasl_ssl is TLS too");
    let sasl = c.sasl().unwrap();
    assert_eq!(sasl.mechanism(), SaslMechanism::ScramSha512);
    assert_eq!(sasl.username(), Some("alice"));
    assert_eq!(sasl.password().unwrap().expose(), "s3cret");
    let c = props(&[
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "u"),
        ("sasl.password", "p"),
    ])
    .unwrap();
    assert!(c.tls().is_none());
}

#[test]
fn java_jaas_lines_give_the_credentials_and_never_show_the_password() {
    let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required \
                 username=\"alice\" password=\"jaas-secret\";";
    let c = props(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.jaas.config", scram),
    ])
    .unwrap();
    assert_eq!(c.sasl().unwrap().username(), Some("alice"));
    assert_eq!(
        c.sasl().unwrap().password().unwrap().expose(),
        "jaas-secret"
    );
    assert!(!format!("{c:?}").contains("jaas-secret"));
    // SCRAM's login line does not say which hash: sasl.mechanism must.
    let e = err(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.jaas.config", scram),
    ]);
    assert_eq!(e.key(), "sasl.mechanism");
    // PLAIN's does.
    let plain = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 username=\"bob\" password=\"jaas-secret\";";
    let c = props(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.jaas.config", plain),
    ])
    .unwrap();
    assert_eq!(c.sasl().unwrap().mechanism(), SaslMechanism::Plain);
    // Credentials twice: refused, whichever comes first.
    let e = err(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.jaas.config", plain),
        ("sasl.username", "bob"),
    ]);
    assert_eq!(e.key(), "sasl.jaas.config");
    // Broken and unsupported lines say why, never with the password.
    for bad in [
        "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"bob\" password=\"jaas-secret",
        "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true password=\"jaas-secret\";",
    ] {
        let e = err(&[("security.protocol", "sasl_ssl"), ("sasl.jaas.config", bad)]);
        assert_eq!(e.key(), "sasl.jaas.config");
        assert!(!e.to_string().contains("jaas-secret"), "{e}");
    }
    // Java's OIDC: the OAuthBearer module with the token endpoint.
    let c = props(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanism", "OAUTHBEARER"),
        (
            "sasl.oauthbearer.token.endpoint.url",
            "https://idp.example/token",
        ),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             clientId=\"app\" clientSecret=\"jaas-secret\" scope=\"kafka\";",
        ),
    ])
    .unwrap();
    match c.sasl().unwrap().credentials() {
        SaslCredentials::OAuthBearer {
            source: TokenSource::Oidc(o),
            ..
        } => {
            assert_eq!((o.client_id(), o.scope()), ("app", Some("kafka")));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn typed_builder_and_properties_build_equal_configs() {
    let typed = base()
        .acks(Acks::Leader)
        .linger(ms(20))
        .compression(CompressionType::Lz4)
        .max_in_flight_requests_per_connection(2)
        .build()
        .unwrap();
    let parsed = props(&[
        ("acks", "1"),
        ("linger.ms", "20"),
        ("compression.type", "lz4"),
        ("max.in.flight.requests.per.connection", "2"),
    ])
    .unwrap();
    assert_eq!(typed, parsed);
}

#[test]
fn acks_accepts_all_minus_one_zero_and_one() {
    for (value, expected) in [
        ("all", Acks::All),
        ("ALL", Acks::All),
        ("-1", Acks::All),
        ("1", Acks::Leader),
        ("0", Acks::None),
    ] {
        let c = props(&[("acks", value), ("enable.idempotence", "false")]).unwrap();
        assert_eq!(c.acks(), expected, "acks={value}");
    }
}

#[test]
fn compression_accepts_every_kafka_codec() {
    for (value, expected, level) in [
        ("none", CompressionType::None, None),
        ("gzip", CompressionType::Gzip, Some(6)),
        ("snappy", CompressionType::Snappy, None),
        ("lz4", CompressionType::Lz4, None),
        ("zstd", CompressionType::Zstd, Some(3)),
        ("ZSTD", CompressionType::Zstd, Some(3)),
    ] {
        let c = props(&[("compression.type", value)]).unwrap();
        assert_eq!(c.compression(), expected);
        assert_eq!(c.compression_level(), level, "{value}");
    }
    let c = base().compression(CompressionType::Zstd).build().unwrap();
    assert_eq!(c.compression_level(), Some(3));
}

#[test]
fn compression_levels_take_effect_through_librdkafka_and_java_keys() {
    let level = |pairs: &[(&str, &str)]| props(pairs).unwrap().compression_level();
    // librdkafka's one key, for whichever codec is chosen; -1 is the codec's default and
    // zstd's 0 is libzstd's default, 3.
    assert_eq!(
        level(&[("compression.type", "zstd"), ("compression.level", "7")]),
        Some(7)
    );
    assert_eq!(
        level(&[("compression.type", "zstd"), ("compression.level", "-1")]),
        Some(3)
    );
    assert_eq!(
        level(&[("compression.type", "zstd"), ("compression.level", "0")]),
        Some(3)
    );
    assert_eq!(
        level(&[("compression.codec", "gzip"), ("compression.level", "0")]),
        Some(0)
    );
    assert_eq!(
        level(&[("compression.type", "gzip"), ("compression.level", "9")]),
        Some(9)
    );
    assert_eq!(
        level(&[("compression.type", "gzip"), ("compression.level", "-1")]),
        Some(6)
    );
    assert_eq!(
        level(&[("compression.type", "snappy"), ("compression.level", "0")]),
        None
    );
    assert_eq!(
        level(&[("compression.type", "lz4"), ("compression.level", "0")]),
        None
    );
    assert_eq!(
        level(&[("compression.type", "none"), ("compression.level", "-1")]),
        None
    );
    // Java's per-codec keys (KIP-390), with their full ranges.
    for zstd in ["-131072", "-5", "1", "19", "22"] {
        assert_eq!(
            level(&[
                ("compression.type", "zstd"),
                ("compression.zstd.level", zstd)
            ]),
            Some(zstd.parse().unwrap())
        );
    }
    assert_eq!(
        level(&[
            ("compression.type", "gzip"),
            ("compression.gzip.level", "1")
        ]),
        Some(1)
    );
    assert_eq!(
        level(&[
            ("compression.type", "gzip"),
            ("compression.gzip.level", "-1")
        ]),
        Some(6)
    );
    assert_eq!(
        level(&[("compression.type", "lz4"), ("compression.lz4.level", "9")]),
        None
    );
    // Both keys, agreeing.
    assert_eq!(
        level(&[
            ("compression.type", "zstd"),
            ("compression.level", "5"),
            ("compression.zstd.level", "5")
        ]),
        Some(5)
    );
    assert_eq!(
        base()
            .compression(CompressionType::Gzip)
            .compression_level(2)
            .build()
            .unwrap()
            .compression_level(),
        Some(2)
    );
}

#[test]
fn compression_levels_that_would_not_take_effect_are_refused_with_the_fix() {
    /// Settings, the key the error names, words its message must have.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a [&'a str]);
    let cases: &[Case] = &[
        // Out of each key's range.
        (
            &[("compression.type", "zstd"), ("compression.level", "13")],
            "compression.level",
            &["-1", "12", "compression.zstd.level"],
        ),
        (
            &[("compression.type", "zstd"), ("compression.level", "-2")],
            "compression.level",
            &["-1"],
        ),
        (
            &[
                ("compression.type", "gzip"),
                ("compression.gzip.level", "0"),
            ],
            "compression.gzip.level",
            &["1 and 9", "-1"],
        ),
        (
            &[
                ("compression.type", "gzip"),
                ("compression.gzip.level", "10"),
            ],
            "compression.gzip.level",
            &["1 and 9"],
        ),
        (
            &[("compression.type", "gzip"), ("compression.level", "10")],
            "compression.level",
            &["0 to 9"],
        ),
        (
            &[
                ("compression.type", "zstd"),
                ("compression.zstd.level", "23"),
            ],
            "compression.zstd.level",
            &["-131072", "22"],
        ),
        (
            &[("compression.type", "lz4"), ("compression.lz4.level", "18")],
            "compression.lz4.level",
            &["1 and 17"],
        ),
        // A key for a codec not in use.
        (
            &[("compression.type", "lz4"), ("compression.zstd.level", "3")],
            "compression.zstd.level",
            &["compression.type=zstd", "lz4"],
        ),
        (
            &[("compression.gzip.level", "3")],
            "compression.gzip.level",
            &["compression.type=gzip", "none"],
        ),
        (
            &[("compression.level", "3")],
            "compression.level",
            &["compression.type is none"],
        ),
        (
            &[("compression.type", "snappy"), ("compression.level", "2")],
            "compression.level",
            &["snappy has no levels"],
        ),
        // LZ4 HC is not implemented.
        (
            &[("compression.type", "lz4"), ("compression.level", "12")],
            "compression.level",
            &["fast mode", "zstd"],
        ),
        (
            &[("compression.type", "lz4"), ("compression.lz4.level", "1")],
            "compression.lz4.level",
            &["fast mode", "HC level 1"],
        ),
        // Two keys, two levels.
        (
            &[
                ("compression.type", "zstd"),
                ("compression.level", "5"),
                ("compression.zstd.level", "6"),
            ],
            "compression.level",
            &["compression.zstd.level is 6", "only one"],
        ),
    ];
    for (pairs, key, words) in cases {
        let e = err(pairs);
        let text = e.to_string();
        assert_eq!(e.key(), *key, "{pairs:?}: {text}");
        for w in *words {
            assert!(text.contains(w), "{pairs:?}: {text:?} lacks {w:?}");
        }
    }
    let e = err(&[("compression.type", "zstd"), ("compression.level", "high")]);
    assert_eq!(e.key(), "compression.level", "{e}");
}

#[test]
fn non_numeric_value_names_key_expectation_and_value() {
    assert_eq!(
        err(&[("linger.ms", "abc")]).to_string(),
        "linger.ms: expected a non-negative integer, got 'abc'"
    );
    for bad in ["-1", "1.5", "5ms", "", "1e3"] {
        let e = err(&[("batch.size", bad)]);
        assert!(
            matches!(&e, ConfigError::InvalidValue { key, value: Some(v), .. }
                if key == "batch.size" && v == bad),
            "{bad:?}: {e:?}"
        );
    }
}

#[test]
fn enumerated_values_list_what_is_accepted() {
    assert_eq!(
        err(&[("acks", "2")]).to_string(),
        "acks: expected one of all, -1, 0, 1, got '2'"
    );
    assert_eq!(
        err(&[("compression.type", "brotli")]).to_string(),
        "compression.type: expected one of none, gzip, snappy, lz4, zstd, got 'brotli'"
    );
    assert_eq!(
        err(&[("enable.idempotence", "yes")]).to_string(),
        "enable.idempotence: expected true or false, got 'yes'"
    );
    assert_eq!(
        err(&[("durability.check", "strict")]).to_string(),
        "durability.check: expected one of off, warn, enforce, got 'strict'"
    );
}

#[test]
fn every_librdkafka_partitioner_is_accepted_as_itself() {
    for (value, expected) in [
        ("default", Partitioner::Default),
        ("ignore_keys", Partitioner::IgnoreKeys),
        ("consistent", Partitioner::Consistent),
        ("consistent_random", Partitioner::ConsistentRandom),
        ("murmur2", Partitioner::Murmur2),
        ("Murmur2_Random", Partitioner::Murmur2Random),
        ("fnv1a", Partitioner::Fnv1a),
        ("fnv1a_random", Partitioner::Fnv1aRandom),
        ("random", Partitioner::Random),
    ] {
        let c = props(&[("partitioner", value)]).unwrap();
        assert_eq!(c.partitioner(), expected);
        assert!(expected.name().eq_ignore_ascii_case(value));
    }
    let text = err(&[("partitioner", "crc32")]).to_string();
    assert!(
        text.starts_with("partitioner: expected one of default, ignore_keys, consistent, "),
        "{text}"
    );
}

#[test]
fn java_partitioner_ignore_keys_confirms_but_never_undoes_the_partitioner() {
    let c = props(&[("partitioner.ignore.keys", "true")]).unwrap();
    assert_eq!(c.partitioner(), Partitioner::IgnoreKeys);
    let c = props(&[("partitioner.ignore.keys", "false")]).unwrap();
    assert_eq!(c.partitioner(), Partitioner::Default);
    let c = props(&[
        ("partitioner", "ignore_keys"),
        ("partitioner.ignore.keys", "true"),
    ])
    .unwrap();
    assert_eq!(c.partitioner(), Partitioner::IgnoreKeys);
    // Last-one-wins would silently undo an explicit choice: both orders are errors.
    for pairs in [
        [
            ("partitioner", "ignore_keys"),
            ("partitioner.ignore.keys", "false"),
        ],
        [
            ("partitioner.ignore.keys", "false"),
            ("partitioner", "ignore_keys"),
        ],
        [
            ("partitioner", "fnv1a"),
            ("partitioner.ignore.keys", "false"),
        ],
        [
            ("partitioner.ignore.keys", "true"),
            ("partitioner", "consistent"),
        ],
    ] {
        let e = err(&pairs);
        assert_eq!(e.key(), "partitioner.ignore.keys", "{pairs:?}");
    }
}

#[test]
fn durations_are_bounded_like_the_java_clients_int_settings() {
    let e = err(&[("metadata.max.age.ms", "99999999999999")]);
    assert_eq!(
        e.to_string(),
        "metadata.max.age.ms: expected at most 2147483647 milliseconds (about 24.8 days), got \
         '99999999999999'"
    );
    // A huge linger alone must not fail on a delivery.timeout.ms the user never set.
    let c = props(&[("linger.ms", "2147483647")]).unwrap();
    assert_eq!(c.linger(), ms(2_147_483_647));
    assert_eq!(c.delivery_timeout(), ms(2_147_483_647));
}

#[test]
fn zero_backoffs_are_refused_so_no_setting_can_hammer_a_broker() {
    for key in ["retry.backoff.ms", "reconnect.backoff.ms"] {
        let e = err(&[(key, "0")]);
        assert_eq!(e.key(), key);
        assert!(e.to_string().contains("busy loop"), "{e}");
    }
    assert_eq!(
        props(&[("retry.backoff.ms", "1")]).unwrap().retry_backoff(),
        ms(1)
    );
}

// ---------------------------------------------------------------------------------------------
// Keys and aliases

#[test]
fn librdkafka_aliases_set_the_same_setting_as_the_java_key() {
    let cases = [
        ("metadata.broker.list", "bootstrap.servers", "other:9092"),
        ("request.required.acks", "acks", "1"),
        (
            "max.in.flight",
            "max.in.flight.requests.per.connection",
            "2",
        ),
        ("message.send.max.retries", "retries", "3"),
        ("queue.buffering.max.ms", "linger.ms", "25"),
        ("message.max.bytes", "max.request.size", "500000"),
        ("compression.codec", "compression.type", "gzip"),
        ("message.timeout.ms", "delivery.timeout.ms", "200000"),
    ];
    for (alias, canonical, value) in cases {
        assert_eq!(canonical_key(alias), Some(canonical));
        let via_alias = props(&[(alias, value)]).unwrap();
        let via_key = props(&[(canonical, value)]).unwrap();
        assert_eq!(via_alias, via_key, "{alias} vs {canonical}");
        assert_ne!(
            via_alias,
            base().build().unwrap(),
            "{alias} changed nothing"
        );
    }
}

#[test]
fn sasl_mechanisms_alias_is_accepted() {
    assert_eq!(canonical_key("sasl.mechanisms"), Some("sasl.mechanism"));
    let e = err(&[("sasl.mechanisms", "PLAIN")]);
    assert!(e.to_string().contains("sasl.mechanism is set"), "{e}");
}

#[test]
fn last_value_wins_across_a_key_and_its_alias() {
    let c = props(&[("linger.ms", "10"), ("queue.buffering.max.ms", "20")]).unwrap();
    assert_eq!(c.linger(), ms(20));
    let c = props(&[("queue.buffering.max.ms", "20"), ("linger.ms", "10")]).unwrap();
    assert_eq!(c.linger(), ms(10));
}

#[test]
fn unknown_key_is_an_error_with_a_suggestion_for_near_misses() {
    let e = err(&[("lingr.ms", "5")]);
    assert_eq!(
        e.to_string(),
        "unknown configuration key 'lingr.ms' (did you mean 'linger.ms'?)"
    );
    assert_eq!(e.key(), "lingr.ms");

    let e = err(&[("group.id", "g")]);
    assert_eq!(e.to_string(), "unknown configuration key 'group.id'");
}

#[test]
fn keys_are_case_sensitive_but_the_suggestion_finds_them() {
    let e = err(&[("LINGER.MS", "5")]);
    assert_eq!(
        e,
        ConfigError::UnknownKey {
            key: "LINGER.MS".into(),
            suggestion: Some("linger.ms")
        }
    );
}

#[test]
fn known_but_unsupported_keys_say_what_to_use_instead() {
    assert_eq!(
        err(&[("queue.buffering.max.kbytes", "1024")]).to_string(),
        "configuration key 'queue.buffering.max.kbytes' is not supported by courier: use \
         buffer.memory, which is in bytes (kbytes * 1024)"
    );
    let e = err(&[("interceptor.classes", "x.Y")]);
    assert!(matches!(e, ConfigError::UnsupportedKey { .. }), "{e:?}");
}

#[test]
fn transactional_id_implies_idempotence_and_refuses_what_conflicts_with_it() {
    let c = props(&[("transactional.id", "tx-1")]).unwrap();
    assert_eq!(c.transactional_id(), Some("tx-1"));
    assert_eq!(c.transaction_timeout(), ms(60_000));
    assert!(c.enable_idempotence());
    assert_eq!(c.acks(), Acks::All);
    let c = props(&[
        ("transactional.id", "tx-1"),
        ("transaction.timeout.ms", "9000"),
    ])
    .unwrap();
    assert_eq!(c.transaction_timeout(), ms(9_000));
    assert_eq!(props(&[]).unwrap().transactional_id(), None);

    // Java's rules: explicit settings that turn idempotence off are errors, not notices.
    let e = err(&[
        ("transactional.id", "tx-1"),
        ("enable.idempotence", "false"),
    ])
    .to_string();
    assert!(
        e.contains("enable.idempotence") && e.contains("requires idempotence"),
        "{e}"
    );
    let e = err(&[("transactional.id", "tx-1"), ("acks", "1")]).to_string();
    assert!(e.contains("requires acks=all, got acks=1"), "{e}");
    let e = err(&[("transactional.id", "tx-1"), ("retries", "0")]).to_string();
    assert!(e.contains("requires retries >= 1"), "{e}");
    let e = err(&[
        ("transactional.id", "tx-1"),
        ("max.in.flight.requests.per.connection", "6"),
    ])
    .to_string();
    assert!(
        e.contains("at most 5") && e.contains("transactional.id requires"),
        "{e}"
    );
    let e = err(&[("transactional.id", "")]).to_string();
    assert!(e.contains("non-empty"), "{e}");
    let e = err(&[("transaction.timeout.ms", "9000")]).to_string();
    assert!(e.contains("no effect without transactional.id"), "{e}");
    let e = err(&[
        ("transactional.id", "tx-1"),
        ("transaction.timeout.ms", "0"),
    ])
    .to_string();
    assert!(e.contains("at least 1 ms"), "{e}");
}

#[test]
fn dlq_topic_is_refused_with_transactional_id_and_says_why() {
    let e = err(&[("transactional.id", "tx-1"), ("dlq.topic", "orders.dlq")]);
    let text = e.to_string();
    for part in [
        "dlq.topic=orders.dlq",
        "transactional.id=tx-1",
        "aborts the transaction",
        "remove dlq.topic",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    // Either alone is fine.
    assert!(props(&[("dlq.topic", "orders.dlq")]).is_ok());
    assert!(props(&[("transactional.id", "tx-1")]).is_ok());
}

#[test]
fn known_keys_and_canonical_key_agree() {
    let keys: Vec<&str> = known_keys().collect();
    assert!(keys.contains(&"bootstrap.servers"));
    assert!(
        !keys.contains(&"metadata.broker.list"),
        "aliases are not canonical"
    );
    for k in keys {
        assert_eq!(canonical_key(k), Some(k));
    }
    assert_eq!(canonical_key("nope"), None);
}

#[test]
fn set_fails_immediately_on_an_unparsable_value() {
    let e = ProducerConfig::builder()
        .set("queue.buffering.max.ms", "0.5")
        .unwrap_err();
    // The alias is reported as written, so the user finds the line in their file.
    assert_eq!(
        e.to_string(),
        "queue.buffering.max.ms: expected a non-negative integer, got '0.5'"
    );
}

// ---------------------------------------------------------------------------------------------
// bootstrap.servers

#[test]
fn missing_bootstrap_servers_is_an_error() {
    let e = ProducerConfig::builder().build().unwrap_err();
    assert_eq!(
        e.to_string(),
        "bootstrap.servers is required: list at least one broker as host:port, e.g. \
         'broker1:9092'"
    );
}

#[test]
fn bootstrap_entry_without_port_is_rejected_with_the_entry() {
    let e = err(&[("bootstrap.servers", "good:9092,broker2")]);
    assert_eq!(
        e.to_string(),
        "bootstrap.servers: expected host:port with a port, e.g. 'broker1:9092', got 'broker2'"
    );
    let e = ProducerConfig::builder()
        .bootstrap_servers(" , ")
        .build()
        .unwrap_err();
    assert_eq!(e.key(), "bootstrap.servers");
}

#[test]
fn bootstrap_server_list_accepts_typed_addresses() {
    let c = ProducerConfig::builder()
        .bootstrap_server_list([BrokerAddress::new("::1", 9092), BrokerAddress::new("b", 1)])
        .build()
        .unwrap();
    assert_eq!(
        c.bootstrap_servers(),
        [BrokerAddress::new("::1", 9092), BrokerAddress::new("b", 1)]
    );
}

// ---------------------------------------------------------------------------------------------
// Idempotence (KIP-679, KAFKA-13598, KAFKA-13673)

#[test]
fn explicit_idempotence_with_acks_1_is_an_error() {
    let e = err(&[("enable.idempotence", "true"), ("acks", "1")]);
    assert_eq!(e.key(), "acks");
    assert_eq!(
        e.to_string(),
        "acks: enable.idempotence=true requires acks=all, got acks=1: set acks=all, or set \
         enable.idempotence=false if duplicates after retries are acceptable"
    );
    let e = err(&[("enable.idempotence", "true"), ("acks", "0")]);
    assert!(e.to_string().contains("got acks=0"), "{e}");
}

#[test]
fn explicit_idempotence_with_zero_retries_is_an_error() {
    let e = err(&[("enable.idempotence", "true"), ("retries", "0")]);
    assert_eq!(e.key(), "retries");
    assert_eq!(
        e.to_string(),
        "retries: enable.idempotence=true requires retries >= 1, got 0: remove retries \
         (delivery.timeout.ms bounds retrying), or set enable.idempotence=false"
    );
}

#[test]
fn default_idempotence_gives_way_to_acks_1_like_java() {
    let c = props(&[("acks", "1")]).unwrap();
    assert!(!c.enable_idempotence());
    assert_eq!(
        c.notices(),
        [ConfigNotice::IdempotenceDisabled { because_of: "acks" }]
    );
    assert_eq!(
        c.durability_issues(),
        [
            DurabilityIssue::AcksNotAll(Acks::Leader),
            DurabilityIssue::IdempotenceDisabled
        ]
    );
}

#[test]
fn default_idempotence_gives_way_to_zero_retries_like_java() {
    let c = props(&[("retries", "0")]).unwrap();
    assert!(!c.enable_idempotence());
    assert_eq!(
        c.notices(),
        [ConfigNotice::IdempotenceDisabled {
            because_of: "retries"
        }]
    );
}

#[test]
fn more_than_five_in_flight_fails_even_with_default_idempotence_like_java() {
    let e = err(&[("max.in.flight.requests.per.connection", "6")]);
    assert_eq!(e.key(), "max.in.flight.requests.per.connection");
    assert_eq!(
        e.to_string(),
        "max.in.flight.requests.per.connection: must be at most 5 with idempotence, got 6: \
         brokers remember only the last 5 batches of a producer to detect duplicates; \
         idempotence is on by default: lower it, or set enable.idempotence=false explicitly to \
         allow more"
    );
    // Java 4.3.1 rejects this too, although acks=1 alone would turn idempotence off.
    let e = err(&[("max.in.flight", "6"), ("acks", "1")]);
    assert_eq!(e.key(), "max.in.flight.requests.per.connection");
    let e = err(&[("max.in.flight", "6"), ("enable.idempotence", "true")]);
    assert!(e
        .to_string()
        .ends_with("lower it, or set enable.idempotence=false"));
}

#[test]
fn more_than_five_in_flight_is_fine_without_idempotence() {
    let c = props(&[("max.in.flight", "10"), ("enable.idempotence", "false")]).unwrap();
    assert_eq!(c.max_in_flight_requests_per_connection(), 10);
    assert!(!c.enable_idempotence());
    assert!(c.notices().is_empty(), "explicit choice needs no notice");
    let c = props(&[("max.in.flight", "5")]).unwrap();
    assert!(c.enable_idempotence());
}

#[test]
fn zero_in_flight_is_an_error() {
    let e = err(&[("max.in.flight", "0")]);
    assert_eq!(
        e.to_string(),
        "max.in.flight.requests.per.connection: must be between 1 and 2147483647, got 0"
    );
}

// ---------------------------------------------------------------------------------------------
// Timeouts, sizes, backoffs

#[test]
fn explicit_delivery_timeout_below_linger_plus_request_timeout_is_an_error() {
    let e = err(&[
        ("delivery.timeout.ms", "30004"),
        ("linger.ms", "5"),
        ("request.timeout.ms", "30000"),
    ]);
    assert_eq!(
        e.to_string(),
        "delivery.timeout.ms: must be at least linger.ms + request.timeout.ms (5 + 30000 = \
         30005 ms), got 30004 ms: a record needs time for its batch to fill and for one full \
         request; raise delivery.timeout.ms or lower the other two"
    );
    // Exactly the sum is allowed.
    let c = props(&[("delivery.timeout.ms", "30005")]).unwrap();
    assert_eq!(c.delivery_timeout(), ms(30_005));
}

#[test]
fn default_delivery_timeout_is_raised_to_linger_plus_request_timeout_like_java() {
    let c = props(&[("request.timeout.ms", "200000"), ("linger.ms", "100")]).unwrap();
    assert_eq!(c.delivery_timeout(), ms(200_100));
    assert_eq!(
        c.notices(),
        [ConfigNotice::DeliveryTimeoutRaised { to: ms(200_100) }]
    );
}

#[test]
fn librdkafka_infinite_message_timeout_is_rejected_with_an_explanation() {
    let e = err(&[("message.timeout.ms", "0")]);
    assert_eq!(e.key(), "message.timeout.ms");
    assert!(
        e.to_string().contains("0 = no timeout is not supported"),
        "{e}"
    );
}

#[test]
fn delivery_timeout_must_fit_a_java_int() {
    let e = base()
        .delivery_timeout(Duration::from_secs(30 * 24 * 3600))
        .build()
        .unwrap_err();
    assert_eq!(e.key(), "delivery.timeout.ms");
}

#[test]
fn request_timeout_must_be_positive_and_fit_the_wire_field() {
    let e = err(&[
        ("request.timeout.ms", "0"),
        ("delivery.timeout.ms", "200000"),
    ]);
    assert_eq!(
        e.to_string(),
        "request.timeout.ms: must be between 1 and 2147483647 ms, got 0 ms"
    );
    let e = err(&[("request.timeout.ms", "2147483648")]);
    assert_eq!(e.key(), "request.timeout.ms");
}

#[test]
fn batch_size_zero_is_an_error_that_points_to_linger() {
    assert_eq!(
        err(&[("batch.size", "0")]).to_string(),
        "batch.size: must be between 1 and 2147483647, got 0 (to send records without waiting \
         for more, set linger.ms=0)"
    );
}

#[test]
fn max_request_size_zero_and_retries_above_int_max_are_errors() {
    assert_eq!(
        err(&[("max.request.size", "0")]).to_string(),
        "max.request.size: must be between 1 and 2147483647, got 0"
    );
    assert_eq!(err(&[("retries", "2147483648")]).key(), "retries");
    assert_eq!(err(&[("batch.size", "2147483648")]).key(), "batch.size");
}

#[test]
fn buffer_memory_below_batch_size_is_an_error() {
    assert_eq!(
        err(&[("buffer.memory", "1000"), ("batch.size", "16384")]).to_string(),
        "buffer.memory: must be at least batch.size (16384 bytes), got 1000 bytes: the \
         producer could not hold a single full batch"
    );
    assert_eq!(err(&[("buffer.memory", "0")]).key(), "buffer.memory");
}

#[test]
fn backoff_cap_below_base_is_an_error_when_both_are_set() {
    assert_eq!(
        err(&[
            ("reconnect.backoff.ms", "2000"),
            ("reconnect.backoff.max.ms", "1000")
        ])
        .to_string(),
        "reconnect.backoff.max.ms: must be at least reconnect.backoff.ms (2000 ms), got 1000 ms"
    );
    assert_eq!(
        err(&[("retry.backoff.ms", "500"), ("retry.backoff.max.ms", "100")]).key(),
        "retry.backoff.max.ms"
    );
    assert_eq!(
        err(&[
            ("socket.connection.setup.timeout.ms", "40000"),
            ("socket.connection.setup.timeout.max.ms", "30000")
        ])
        .key(),
        "socket.connection.setup.timeout.max.ms"
    );
}

#[test]
fn backoff_cap_follows_a_larger_base_when_only_the_base_is_set() {
    let c = props(&[("reconnect.backoff.ms", "2000")]).unwrap();
    assert_eq!(c.reconnect_backoff_max(), ms(2_000));
    assert_eq!(
        c.notices(),
        [ConfigNotice::BackoffMaxRaised {
            key: "reconnect.backoff.max.ms",
            to: ms(2_000)
        }]
    );
    let c = props(&[("retry.backoff.ms", "5000")]).unwrap();
    assert_eq!(c.retry_backoff_max(), ms(5_000));
}

#[test]
fn zero_connection_setup_timeout_is_an_error() {
    assert_eq!(
        err(&[("socket.connection.setup.timeout.ms", "0")]).to_string(),
        "socket.connection.setup.timeout.ms: must be at least 1 ms, got 0 ms"
    );
}

#[test]
fn client_id_longer_than_a_protocol_string_is_an_error() {
    let long = "x".repeat(40_000);
    let e = base().client_id(long).build().unwrap_err();
    assert_eq!(
        e.to_string(),
        "client.id: must be at most 32767 bytes long, got 40000 bytes"
    );
}

// ---------------------------------------------------------------------------------------------
// SASL and secrets

#[test]
fn sasl_protocol_requires_mechanism_username_and_password() {
    let e = err(&[("security.protocol", "sasl_ssl"), ("sasl.username", "u")]);
    assert_eq!(e.key(), "sasl.mechanism");
    assert!(e.to_string().starts_with("sasl.mechanism is required: "));
    let e = err(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "u"),
    ]);
    assert_eq!(e.key(), "sasl.password");
    let e = err(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "u"),
        ("sasl.password", ""),
    ]);
    assert_eq!(e.to_string(), "sasl.password: must not be empty");
}

#[test]
fn sasl_settings_without_a_sasl_protocol_are_an_error() {
    let e = err(&[("sasl.username", "u"), ("sasl.password", "p")]);
    assert_eq!(
        e.to_string(),
        "security.protocol: sasl.username is set but security.protocol=plaintext does not \
         authenticate: set security.protocol=sasl_ssl (or sasl_plaintext), or remove the SASL \
         settings"
    );
}

#[test]
fn unsupported_sasl_mechanism_is_named() {
    assert_eq!(
        err(&[("sasl.mechanism", "GSSAPI")]).to_string(),
        "sasl.mechanism: expected one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER \
         (GSSAPI/Kerberos is not supported: use SCRAM, PLAIN over TLS or OAUTHBEARER), got \
         'GSSAPI'"
    );
    // Java users of MSK IAM are pointed at the OAUTHBEARER token provider.
    let e = err(&[("sasl.mechanism", "AWS_MSK_IAM")]).to_string();
    assert!(
        e.contains("courier::msk_iam::MskIamTokenProvider as the token provider"),
        "{e}"
    );
    let e = err(&[(
        "sasl.login.callback.handler.class",
        "software.amazon.msk.auth.iam.IAMOAuthBearerLoginCallbackHandler",
    )])
    .to_string();
    assert!(e.contains("courier::msk_iam, cargo feature msk-iam"), "{e}");
}

#[test]
fn password_never_appears_in_debug_output() {
    let builder = base()
        .security_protocol(SecurityProtocol::SaslSsl)
        .sasl_mechanism(SaslMechanism::ScramSha256)
        .sasl_username("alice")
        .sasl_password("correct horse battery staple");
    let builder_debug = format!("{builder:?}");
    let config = builder.build().unwrap();
    let config_debug = format!("{config:?}");
    let pretty = format!("{config:#?}");
    for text in [&builder_debug, &config_debug, &pretty] {
        assert!(!text.contains("correct horse"), "leaked: {text}");
        assert!(text.contains("<redacted>"));
        assert!(text.contains("alice"), "the username is not secret");
    }
}

#[test]
fn invalid_value_of_a_secret_key_is_not_echoed() {
    let e = ConfigError::InvalidValue {
        key: "sasl.password".into(),
        expected: "something".into(),
        value: None,
    };
    assert_eq!(
        e.to_string(),
        "sasl.password: expected something, got a value that is not shown because it is secret"
    );
}

// ---------------------------------------------------------------------------------------------
// durability.check

#[test]
fn enforce_refuses_a_configuration_that_is_not_durable() {
    let e = err(&[("durability.check", "enforce"), ("acks", "1")]);
    assert_eq!(e.key(), "durability.check");
    assert_eq!(
        e,
        ConfigError::NotDurable {
            issues: vec![
                DurabilityIssue::AcksNotAll(Acks::Leader),
                DurabilityIssue::IdempotenceDisabled
            ]
        }
    );
    assert_eq!(
        e.to_string(),
        "durability.check=enforce refuses this configuration: acks=1 waits for the partition \
         leader only: an acknowledged record is lost if the leader fails before a follower \
         copies it (use acks=all); idempotence is disabled: a retried batch can be written \
         twice, and with more than one request in flight records can be reordered; fix these \
         settings, or set durability.check=warn to accept the risk"
    );
}

#[test]
fn enforce_accepts_the_durable_defaults() {
    let c = props(&[("durability.check", "enforce")]).unwrap();
    assert!(c.durability_issues().is_empty());
}

#[test]
fn warn_and_off_build_but_still_report_issues() {
    for check in ["warn", "off"] {
        let c = props(&[("durability.check", check), ("acks", "0"), ("retries", "0")]).unwrap();
        assert_eq!(
            c.durability_issues(),
            [
                DurabilityIssue::AcksNotAll(Acks::None),
                DurabilityIssue::IdempotenceDisabled,
                DurabilityIssue::NoRetries
            ]
        );
    }
}

#[test]
fn explicitly_disabled_idempotence_is_a_durability_issue() {
    let e = err(&[
        ("durability.check", "enforce"),
        ("enable.idempotence", "false"),
    ]);
    assert_eq!(
        e,
        ConfigError::NotDurable {
            issues: vec![DurabilityIssue::IdempotenceDisabled]
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Notices

#[test]
fn notices_explain_themselves() {
    assert_eq!(
        ConfigNotice::IdempotenceDisabled { because_of: "acks" }.to_string(),
        "idempotence disabled because acks is incompatible with it and enable.idempotence was \
         not set; set enable.idempotence=false to make this explicit, or fix acks to keep \
         idempotence"
    );
    assert_eq!(
        ConfigNotice::DeliveryTimeoutRaised { to: ms(30_005) }.to_string(),
        "delivery.timeout.ms raised to 30005 ms (linger.ms + request.timeout.ms)"
    );
}

// ---------------------------------------------------------------------------------------------
// Profiles and the dead letter queue

#[test]
fn critical_profile_is_durable_and_explicit_settings_override_it() {
    let c = props(&[("profile", "critical")]).unwrap();
    assert_eq!(c.acks(), Acks::All);
    assert!(c.enable_idempotence());
    assert_eq!(c.retries(), i32::MAX as u32);
    assert_eq!(c.max_in_flight_requests_per_connection(), 5);
    assert_eq!(c.profile(), Some(Profile::Critical));
    // An explicit setting wins, whether it comes before or after the profile.
    let c = props(&[
        ("linger.ms", "50"),
        ("profile", "critical"),
        ("max.in.flight", "2"),
    ])
    .unwrap();
    assert_eq!(c.linger(), ms(50));
    assert_eq!(c.max_in_flight_requests_per_connection(), 2);
}

#[test]
fn analytics_and_metrics_profiles_give_up_durability_without_warnings() {
    let a = props(&[("profile", "analytics")]).unwrap();
    assert_eq!(a.acks(), Acks::Leader);
    assert!(!a.enable_idempotence());
    assert_eq!(a.durability_check(), DurabilityCheck::Off);
    let m = props(&[("profile", "metrics")]).unwrap();
    assert_eq!(m.acks(), Acks::None);
    assert_eq!(m.retries(), 0);
    assert!(
        !m.durability_issues().is_empty(),
        "the weakness is still recorded"
    );
    // Enforce still refuses a weak profile when asked for explicitly.
    let e = err(&[("profile", "metrics"), ("durability.check", "enforce")]);
    assert!(matches!(e, ConfigError::NotDurable { .. }), "{e}");
    // A profile's preset never turns an explicit choice into a conflict.
    let c = props(&[("profile", "analytics"), ("acks", "all")]).unwrap();
    assert_eq!(c.acks(), Acks::All);
}

#[test]
fn unknown_profile_lists_the_choices() {
    let e = err(&[("profile", "payments")]);
    let text = e.to_string();
    assert!(
        text.contains("critical") && text.contains("analytics") && text.contains("metrics"),
        "{text}"
    );
    assert_eq!(e.key(), "profile");
}

#[test]
fn dlq_settings_parse() {
    let c = props(&[
        ("dlq.topic", "orders.dlq"),
        ("dlq.possibly.persisted", "dead-letter"),
    ])
    .unwrap();
    assert_eq!(c.dlq_topic(), Some("orders.dlq"));
    assert_eq!(c.dlq_possibly_persisted(), DlqPossiblyPersisted::DeadLetter);
    assert_eq!(props(&[]).unwrap().dlq_topic(), None);
    assert!(err(&[("dlq.possibly.persisted", "maybe")])
        .to_string()
        .contains("dead-letter"));
}

// ---------------------------------------------------------------------------------------------
// TLS and OAUTHBEARER settings (loaded when the configuration is built)

mod security {
    use super::*;
    use courier_testkit::pki::Pki;
    use std::sync::OnceLock;

    /// Test certificates, made once for this test binary.
    fn pki() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        PKI.get_or_init(|| {
            let dir =
                std::env::temp_dir().join(format!("courier-config-pki-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Pki::generate(&dir).unwrap()
        })
    }

    /// Builds with the settings, up to the point where courier refuses TLS: the TLS and SASL
    /// settings are resolved (and their mistakes reported) first.
    fn tls(pairs: &[(&str, &str)]) -> Result<(), ConfigError> {
        let mut all = vec![("security.protocol", "ssl")];
        all.extend_from_slice(pairs);
        match props(&all) {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("is not supported yet") => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn path(p: &std::path::Path) -> &str {
        p.to_str().unwrap()
    }

    #[test]
    fn trusted_cas_come_from_a_file_a_directory_pem_text_or_a_trust_store() {
        let k = pki();
        tls(&[("ssl.ca.location", path(&k.ca.cert_path))]).unwrap();
        tls(&[("ssl.ca.location", path(&k.dir))]).unwrap();
        tls(&[("ssl.ca.pem", &k.ca.cert_pem)]).unwrap();
        tls(&[("ssl.truststore.location", path(&k.ca.cert_path))]).unwrap();
        tls(&[
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.certificates", &k.ca.cert_pem),
        ])
        .unwrap();
        tls(&[
            ("ssl.truststore.location", path(&k.client_key.pkcs12_path)),
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.password", &k.client_key.password),
        ])
        .unwrap();
        // Nothing: the system's roots.
        tls(&[]).unwrap();
    }

    #[test]
    fn trust_mistakes_name_the_setting() {
        let k = pki();
        let e = tls(&[
            ("ssl.ca.location", path(&k.ca.cert_path)),
            ("ssl.truststore.location", path(&k.ca.cert_path)),
        ])
        .unwrap_err();
        assert_eq!(e.key(), "ssl.truststore.location");
        assert!(e.to_string().contains("keep one"), "{e}");
        let e = tls(&[("ssl.ca.location", "/nonexistent/ca.pem")]).unwrap_err();
        assert_eq!(e.key(), "ssl.ca.location");
        assert!(
            e.to_string().contains("cannot read /nonexistent/ca.pem"),
            "{e}"
        );
        let e = tls(&[("ssl.ca.location", path(&k.client.key_path))]).unwrap_err();
        assert!(e.to_string().contains("holds no certificate"), "{e}");
        let jks = k.dir.join("store.jks");
        std::fs::write(&jks, [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).unwrap();
        let e = tls(&[("ssl.truststore.location", path(&jks))]).unwrap_err();
        assert!(e.to_string().contains("keytool -importkeystore"), "{e}");
        let e = tls(&[
            ("ssl.truststore.location", path(&k.client_key.pkcs12_path)),
            ("ssl.truststore.password", "wrong"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("password is wrong"), "{e}");
        assert!(!e.to_string().contains("wrong\""), "{e}");
    }

    #[test]
    fn client_certificates_for_mutual_tls_in_every_form() {
        let k = pki();
        let ca = ("ssl.ca.location", path(&k.ca.cert_path));
        tls(&[
            ca,
            ("ssl.certificate.location", path(&k.client.cert_path)),
            ("ssl.key.location", path(&k.client.key_path)),
        ])
        .unwrap();
        tls(&[
            ca,
            ("ssl.certificate.pem", &k.client.cert_pem),
            ("ssl.key.pem", &k.client.key_pem),
        ])
        .unwrap();
        tls(&[
            ca,
            ("ssl.certificate.location", path(&k.client.cert_path)),
            ("ssl.key.location", path(&k.client_key.encrypted_key_path)),
            ("ssl.key.password", &k.client_key.password),
        ])
        .unwrap();
        tls(&[
            ca,
            ("ssl.keystore.location", path(&k.client_key.pkcs12_path)),
            ("ssl.keystore.password", &k.client_key.password),
        ])
        .unwrap();
        tls(&[ca, ("ssl.keystore.location", path(&k.client.keystore_path))]).unwrap();
        tls(&[
            ca,
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.key", &k.client.key_pem),
            ("ssl.keystore.certificate.chain", &k.client.cert_pem),
        ])
        .unwrap();
    }

    #[test]
    fn client_key_mistakes_name_the_setting_and_never_show_the_password() {
        let k = pki();
        let cert = ("ssl.certificate.location", path(&k.client.cert_path));
        let encrypted = ("ssl.key.location", path(&k.client_key.encrypted_key_path));
        let e = tls(&[cert, encrypted]).unwrap_err();
        assert_eq!(e.key(), "ssl.key.password");
        let e = tls(&[cert, encrypted, ("ssl.key.password", "not-the-password")]).unwrap_err();
        assert_eq!(e.key(), "ssl.key.password");
        assert!(e.to_string().contains("the password is wrong"), "{e}");
        assert!(!e.to_string().contains("not-the-password"), "{e}");
        let e = tls(&[
            ("ssl.keystore.location", path(&k.client_key.pkcs12_path)),
            ("ssl.keystore.password", "not-the-password"),
        ])
        .unwrap_err();
        assert_eq!(e.key(), "ssl.keystore.location");
        assert!(!e.to_string().contains("not-the-password"), "{e}");
        let e = tls(&[("ssl.keystore.location", path(&k.client_key.pkcs12_path))]).unwrap_err();
        assert_eq!(e.key(), "ssl.keystore.password");
        let e = tls(&[cert]).unwrap_err();
        assert!(e.to_string().contains("without its key"), "{e}");
        let e = tls(&[("ssl.key.location", path(&k.client.key_path))]).unwrap_err();
        assert!(e.to_string().contains("without a certificate"), "{e}");
        let e = tls(&[
            cert,
            ("ssl.key.location", path(&k.client.key_path)),
            ("ssl.keystore.location", path(&k.client.keystore_path)),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = tls(&[("ssl.key.pem", "-----BEGIN PRIVATE KEY-----\nhunter2\n")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn tls_settings_without_tls_are_an_error() {
        let e = err(&[("ssl.ca.location", "/tmp/ca.pem")]);
        assert_eq!(e.key(), "security.protocol");
        assert!(e.to_string().contains("does not use TLS"), "{e}");
        let e = err(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("ssl.endpoint.identification.algorithm", "none"),
        ]);
        assert!(e.to_string().contains("does not use TLS"), "{e}");
    }

    #[test]
    fn tls_versions_and_hostname_checks() {
        for v in ["https", "none", "", "HTTPS"] {
            tls(&[("ssl.endpoint.identification.algorithm", v)]).unwrap();
        }
        assert!(tls(&[("ssl.endpoint.identification.algorithm", "dns")]).is_err());
        tls(&[("ssl.enabled.protocols", "TLSv1.2, TLSv1.3")]).unwrap();
        let e = tls(&[("ssl.enabled.protocols", "TLSv1.1")]).unwrap_err();
        assert!(e.to_string().contains("TLSv1.2 and TLSv1.3"), "{e}");
        let e = tls(&[
            ("ssl.enabled.protocols", "TLSv1.3"),
            ("ssl.protocol", "TLSv1.2"),
        ])
        .unwrap_err();
        assert_eq!(e.key(), "ssl.protocol");
        tls(&[("ssl.protocol", "TLS")]).unwrap();
        tls(&[("enable.ssl.certificate.verification", "false")]).unwrap();
    }

    fn sasl(pairs: &[(&str, &str)]) -> Result<(), ConfigError> {
        let mut all = vec![("security.protocol", "sasl_ssl")];
        all.extend_from_slice(pairs);
        match props(&all) {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("is not supported yet") => Ok(()),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn oauthbearer_takes_oidc_a_fixed_token_or_a_provider() {
        let oidc = [
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "oidc"),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "https://idp.example/token",
            ),
            ("sasl.oauthbearer.client.id", "courier"),
            ("sasl.oauthbearer.client.secret", "s3cret"),
            ("sasl.oauthbearer.scope", "kafka"),
            ("sasl.oauthbearer.extensions", "logicalCluster=lkc-1"),
        ];
        sasl(&oidc).unwrap();
        // Kafka 4's names for the client credentials.
        sasl(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.method", "OIDC"),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "http://127.0.0.1:1/token",
            ),
            ("sasl.oauthbearer.client.credentials.client.id", "courier"),
            (
                "sasl.oauthbearer.client.credentials.client.secret",
                "s3cret",
            ),
        ])
        .unwrap();
        sasl(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token", "eyJ.a.b"),
        ])
        .unwrap();
        let e = sasl(&oidc[..4]).unwrap_err();
        assert_eq!(e.key(), "sasl.oauthbearer.client.secret");
        let e = sasl(&[("sasl.mechanism", "OAUTHBEARER")]).unwrap_err();
        assert!(e.to_string().contains("OAUTHBEARER needs a token"), "{e}");
        let e = sasl(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token", "t"),
            ("sasl.oauthbearer.client.id", "c"),
        ])
        .unwrap_err();
        assert_eq!(e.key(), "sasl.oauthbearer.client.id");
        let e = sasl(&[
            ("sasl.mechanism", "SCRAM-SHA-512"),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
            ("sasl.oauthbearer.scope", "kafka"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("is an OAUTHBEARER setting"), "{e}");
        let e = sasl(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token", "t"),
            ("sasl.oauthbearer.extensions", "auth=x"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("reserved"), "{e}");

        struct Fixed;
        impl OAuthTokenProvider for Fixed {
            fn token(&self) -> TokenFuture<'_> {
                Box::pin(async {
                    Ok(OAuthToken {
                        value: Secret::new("t"),
                        expires_at: None,
                    })
                })
            }
        }
        let c = ProducerConfig::builder()
            .bootstrap_servers("b:1")
            .security_protocol(SecurityProtocol::SaslSsl)
            .oauth_token_provider(std::sync::Arc::new(Fixed))
            .build()
            .unwrap();
        assert_eq!(c.sasl().unwrap().mechanism(), SaslMechanism::OAuthBearer);
        assert!(format!("{c:?}").contains("<application callback>"));
        let e = ProducerConfig::builder()
            .bootstrap_servers("b:1")
            .oauth_token_provider(std::sync::Arc::new(Fixed))
            .build()
            .unwrap_err();
        assert_eq!(e.key(), "security.protocol");
    }
}

#[test]
fn delivery_resolution_timeout_is_set_in_milliseconds_and_zero_turns_it_off() {
    let c = props(&[("delivery.resolution.timeout.ms", "45000")]).unwrap();
    assert_eq!(c.delivery_resolution_timeout(), ms(45_000));
    let c = props(&[("delivery.resolution.timeout.ms", "0")]).unwrap();
    assert_eq!(c.delivery_resolution_timeout(), Duration::ZERO);
    let e = err(&[("delivery.resolution.timeout.ms", "soon")]);
    assert!(
        e.to_string().contains("delivery.resolution.timeout.ms"),
        "{e}"
    );
}
