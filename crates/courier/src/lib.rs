//! courier: a pure-Rust Kafka producer.
//!
//! courier speaks the Kafka protocol itself: no librdkafka, no OpenSSL, no JVM. Codecs
//! (gzip, snappy, LZ4, zstd) are Rust; TLS is rustls on `ring`, whose C and assembly are the only
//! non-Rust code, so a static musl binary needs nothing but a C compiler for the target.
//! It is durable by default: `acks=all`, the idempotent producer (no duplicates, per
//! partition order), retries bounded by `delivery.timeout.ms`, and a delivery report for
//! every record that says, when it failed, whether the record may be in the log anyway -
//! and a record that may be in the log when its delivery timeout runs out is resent with
//! its sequence until the broker says where it is, so "maybe" is rare.
//! Settings are the Java client's and librdkafka's keys. courier speaks Produce v3 and later
//! (Kafka 0.11 and later); its test suite runs against Apache Kafka 4.3.1.
//!
//! courier logs through [`tracing`](https://docs.rs/tracing): install a subscriber to see its
//! warnings (a configuration or topic that is not durable, an unreachable broker).
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use courier::{Producer, ProducerConfig, ProducerRecord};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = ProducerConfig::from_properties([
//!         ("bootstrap.servers", "broker1:9092,broker2:9092"),
//!         ("compression.type", "lz4"),
//!         ("linger.ms", "10"),
//!     ])?;
//!     // Needs a tokio runtime; connections open with the first record.
//!     let producer = Producer::new(config)?;
//!
//!     let record = ProducerRecord::new("orders").key("order-42").value(r#"{"amount":10}"#);
//!     let md = producer.send(record).await?;
//!     println!("written to {} [{}] @ {}", md.topic, md.partition, md.offset);
//!
//!     producer.close(Duration::from_secs(30)).await?;
//!     Ok(())
//! }
//! ```
//!
//! Runnable programs are in `crates/courier/examples/` (`reliable_producer`,
//! `keyed_from_many_tasks`, `graceful_shutdown`, `dead_letter_queue`). Each says how to run
//! it against a local cluster started with `cargo run -p courier-testkit --bin courier-kafka`.
//!
//! # Configuration
//!
//! [`ProducerConfig::from_properties`] and
//! [`ProducerConfigBuilder::set`](config::ProducerConfigBuilder::set) take the keys of the
//! Java client (`linger.ms`, `max.in.flight.requests.per.connection`), and librdkafka's where
//! they mean the same thing in the same unit (`queue.buffering.max.ms`,
//! `message.timeout.ms`), so an existing properties file carries over. A key courier does
//! not know is an error, with a suggestion for a near miss; a known key it does not
//! implement (`transactional.id`, `batch.num.messages`) is an error that says what to use
//! instead. A typo never leaves a default silently in place:
//!
//! ```
//! use courier::ProducerConfig;
//!
//! let err = ProducerConfig::from_properties([
//!     ("bootstrap.servers", "broker1:9092"),
//!     ("lingr.ms", "10"),
//! ])
//! .unwrap_err();
//! assert_eq!(err.to_string(), "unknown configuration key 'lingr.ms' (did you mean 'linger.ms'?)");
//! ```
//!
//! The typed [`ProducerConfig::builder`] sets the same settings without strings:
//!
//! ```
//! use std::time::Duration;
//! use courier::config::{CompressionType, ProducerConfig};
//!
//! let config = ProducerConfig::builder()
//!     .bootstrap_servers("broker1:9092")
//!     .compression(CompressionType::Lz4)
//!     .linger(Duration::from_millis(10))
//!     .build()?;
//! # Ok::<(), courier::ConfigError>(())
//! ```
//!
//! Defaults are the Java client's and durable: `acks=all`, `enable.idempotence=true`,
//! `retries` unlimited within `delivery.timeout.ms` (2 minutes). Every value is checked
//! when the configuration is built, alone and against the others, and TLS files are loaded
//! then too: a [`ConfigError`] names the key and says how to fix it. Secrets never appear in
//! errors or `Debug` output. The [`config`] module documentation has the table of every
//! key, its aliases and default, and the validation rules.
//!
//! # Sending
//!
//! A [`ProducerRecord`] has a topic and optionally a key, a value, headers, an explicit
//! partition and a timestamp. Keys, values and header values are bytes (anything
//! `Into<Bytes>`: `&str`, `String`, `Vec<u8>`, ...): serialize before sending. [`Producer`]
//! is cheap to clone; clones share one buffer and one set of connections, so hand a clone to
//! each task. Five ways to send:
//!
//! * [`Producer::send`] queues the record and waits for its delivery report: simple, one
//!   record in flight per caller.
//! * [`Producer::produce`] queues the record and returns a [`DeliveryFuture`] of its report.
//!   The record is sent whether or not the future is polled; await the futures later to have
//!   many records in flight from one task.
//! * [`Producer::produce_with_callback`] calls a closure with the report instead. It runs on
//!   the producer's own task: keep it short, and send heavy work elsewhere.
//! * [`Producer::produce_tagged`] sends the report to one [`DeliveryHandler`] shared by
//!   many records, with a `u64` tag the application chose (an index, a sequence number):
//!   nothing is allocated per record, the fastest way to send many.
//! * [`Producer::try_produce`] is not `async`: it never waits, and fails at once with
//!   [`ProducerError::BufferFull`] when the buffer is full.
//!
//! ```no_run
//! # use courier::{Producer, ProducerError, ProducerRecord};
//! # async fn run(producer: Producer) -> Result<(), ProducerError> {
//! // Many in flight: queue first, await the reports afterwards.
//! let mut reports = Vec::new();
//! for i in 0..1000 {
//!     let record = ProducerRecord::new("events").key(format!("user-{}", i % 10)).value("clicked");
//!     reports.push(producer.produce(record).await?);
//! }
//! for report in reports {
//!     if let Err(e) = report.await {
//!         eprintln!("not delivered: {e}");
//!     }
//! }
//!
//! producer
//!     .produce_with_callback(ProducerRecord::new("events").value("x"), |report| {
//!         if let Err(e) = report {
//!             eprintln!("not delivered: {e}");
//!         }
//!     })
//!     .await?;
//!
//! // One handler for many records; the tag says which.
//! let handler = courier::DeliveryHandler::new(|tag, report| {
//!     if let Err(e) = report {
//!         eprintln!("record {tag} not delivered: {e}");
//!     }
//! });
//! for tag in 0..1000 {
//!     let record = ProducerRecord::new("events").value(format!("event {tag}"));
//!     producer.produce_tagged(record, &handler, tag).await?;
//! }
//!
//! match producer.try_produce(ProducerRecord::new("events").value("y")) {
//!     Ok(report) => drop(report), // sent anyway; only the report is dropped
//!     Err(ProducerError::BufferFull { .. }) => { /* shed load, or retry later */ }
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! **Backpressure.** Records wait in `buffer.memory` (32 MiB) until they are acknowledged
//! or fail. Each counts its key, value and headers, 32 bytes of framing, and the bytes
//! the producer keeps for it beside them (216 on 64-bit targets), so the bound holds
//! for the memory the records take, small ones included (a 100-byte value counts about
//! 350 bytes). When it is full, `send`, `produce`, `produce_with_callback` and
//! `produce_tagged` wait for room for up to `max.block.ms` (60 s), then fail with [`ProducerError::BufferFull`], which is
//! retriable. A record larger than the whole buffer fails at once
//! ([`ProducerError::RecordExceedsBufferMemory`]), one larger than `max.request.size` in its
//! delivery report ([`ProducerError::RecordTooLarge`]).
//!
//! **Keys and partitions.** A record with [`ProducerRecord::partition`] goes to that
//! partition ([`ProducerError::UnknownPartition`] if the topic has no such partition).
//! Otherwise the `partitioner` setting decides, by default as the Java client does: a keyed
//! record goes to `murmur2(key) % partitions`, the very partition a Java producer picks for
//! that key, and records without a key stay on one partition until about `batch.size` bytes
//! went there, then move on (KIP-794). Key hashes count every partition, so a key never
//! moves while a leader is down; its records wait for the leader. librdkafka's partitioner
//! values (`consistent_random`, `murmur2_random`, `fnv1a`, ...) place keys exactly as
//! librdkafka does, for a migration that keeps every key on its partition. With idempotence
//! (the default), acknowledged records are stored in the order they were queued, per
//! partition and so per key.
//!
//! # Delivery reports and persistence
//!
//! A report is `Ok(`[`RecordMetadata`]`)` (topic, partition, offset, timestamp) once the
//! record is written and, with `acks=all`, replicated to the in-sync replicas. Otherwise it
//! is a [`ProducerError`], after courier's own retries: at the latest `delivery.timeout.ms`
//! after the record was queued, plus `request.timeout.ms` if a request for it is in flight
//! then - except for a record whose batch may already be in the log by then (a request
//! timed out, or a connection broke after it was written). Java and librdkafka report
//! those "possibly persisted" and leave the application to guess. courier keeps resending
//! the batch with its original producer id, epoch and sequence, which the broker writes at
//! most once, for up to `delivery.resolution.timeout.ms` more (default 120 s; see
//! [`ProducerConfig::delivery_resolution_timeout`]), so the report says where the record
//! landed. Before resending a failed record, look at two things:
//!
//! * [`ProducerError::persistence`] ([`Persistence`]): whether the record may be in the log.
//!   [`NotPersisted`](Persistence::NotPersisted): it is not, and resending it cannot
//!   duplicate it. [`PossiblyPersisted`](Persistence::PossiblyPersisted): it may be - the
//!   partition stayed unreachable past the resolution (`UNRESOLVED`), the broker lost the
//!   producer's state (a deleted topic), or resolution is off or impossible
//!   (`enable.idempotence=false`, `retries` used up): resending may write it twice, so
//!   resend only if consumers tolerate duplicates, or check the topic first.
//!   [`Persisted`](Persistence::Persisted) is the state of an `Ok` report; failed records
//!   are reported as one of the other two.
//! * [`ProducerError::is_retriable`]: whether the cause is transient (a broker down, a leader
//!   election, a full buffer), so the same record can succeed later. If not, the record or
//!   the setup must change first: the record is too large, the topic or partition does not
//!   exist, the principal may not write.
//!
//! ```no_run
//! # use courier::{Persistence, Producer, ProducerRecord};
//! # async fn run(producer: Producer, record: ProducerRecord) {
//! match producer.send(record.clone()).await {
//!     Ok(md) => println!("{} [{}] @ {}", md.topic, md.partition, md.offset),
//!     Err(e) => match (e.persistence(), e.is_retriable()) {
//!         // Not in the log, transient cause: resending cannot duplicate it.
//!         (Persistence::NotPersisted, true) => { let _ = producer.send(record).await; }
//!         // Not in the log, and sending it again would fail again: park it.
//!         (Persistence::NotPersisted, false) => eprintln!("rejected: {e}"),
//!         // Maybe in the log: resending may duplicate it.
//!         (Persistence::PossiblyPersisted, _) => eprintln!("check before resending: {e}"),
//!         (Persistence::Persisted, _) => {}
//!     },
//! }
//! # }
//! ```
//!
//! # Durability audit, dead letter queue, profiles
//!
//! **Durability audit.** `acks=all` is only as strong as the topic behind it: with
//! `min.insync.replicas=1`, "all" can be one broker. For every topic it writes to (at the
//! first record, and again every `metadata.max.age.ms`), courier checks three layers: the
//! producer (`acks=all`, idempotence), the topic's replication factor (3 or more) and its
//! effective `min.insync.replicas` (at least 2, below the replication factor).
//! `durability.check` decides what a misaligned topic does:
//!
//! * `warn` (the default): the records go; each finding is logged with `tracing::warn!`;
//! * `enforce`: the topic's records wait for the audit, and fail with
//!   [`ProducerError::DurabilityMisaligned`] (or [`ProducerError::DurabilityUnverified`] when
//!   the audit cannot run) instead of being written;
//! * `off`: no audit.
//!
//! The same setting governs the producer's own configuration: `acks` other than `all`,
//! idempotence off or `retries=0` are logged under `warn` and refused under `enforce`
//! ([`ConfigError::NotDurable`]). [`Producer::durability_report`] runs the audit on demand
//! and returns a [`DurabilityReport`] that prints as a table, with the fix for each layer
//! (the audit needs `DESCRIBE_CONFIGS` on the topic):
//!
//! ```no_run
//! # async fn run(producer: courier::Producer) -> Result<(), courier::ProducerError> {
//! let report = producer.durability_report("payments").await?;
//! if !report.is_aligned() {
//!     eprintln!("{report}");
//! }
//! # Ok(()) }
//! ```
//!
//! **Dead letter queue.** With `dlq.topic` set, a record that failed for good (too large,
//! rejected by the broker's validation, unknown topic or partition, not authorized) is
//! written to that topic before its report is delivered, and the report becomes
//! [`ProducerError::DeadLettered`], with the original error and where the dead letter
//! landed (or [`ProducerError::DeadLetterFailed`] if the queue did not take it either). The
//! dead letter keeps the record's key and headers, adds `courier.dlq.*` headers
//! ([`dlq::headers`]) and carries a JSON value with the original key, value, headers and
//! the error. Transient failures (timeouts, closing), refusals by the durability audit and
//! fatal errors are not dead-lettered: they are the application's to handle. Nor are
//! possibly persisted records, which may already be in their topic, unless
//! `dlq.possibly.persisted=dead-letter`. The queue is written by a second producer with
//! `acks=all` and idempotence, whatever the main one uses, and with the main one's
//! `max.request.size`: a record refused as larger than that cannot be dead-lettered either
//! (its dead letter carries the whole value), and its report is `DeadLetterFailed`.
//!
//! **Profiles.** `profile` presets the durability settings for a kind of data: `critical`
//! (`acks=all`, idempotence, unlimited retries), `analytics` (`acks=1`, no idempotence,
//! `durability.check=off`) or `metrics` (`acks=0`, no retries, `durability.check=off`).
//! Settings given explicitly win over the preset, in whatever order they come. See
//! [`Profile`](config::Profile).
//!
//! # Security
//!
//! `security.protocol` is `plaintext` (the default), `ssl`, `sasl_plaintext` or `sasl_ssl`;
//! the [`config`] module lists every TLS and SASL key.
//!
//! **TLS** verifies the brokers' certificate chain and host name, with TLS 1.2 and 1.3. The
//! CAs come from `ssl.ca.location` (librdkafka) or `ssl.truststore.location` (Java, PEM or
//! PKCS#12), else from the system, else from Mozilla's bundled roots. Mutual TLS takes a PEM
//! certificate and key (`ssl.certificate.location`, `ssl.key.location`, `ssl.key.password`
//! for an encrypted PKCS#8 key) or a key store (`ssl.keystore.location`, PKCS#12 or PEM).
//! JKS stores are refused with the `keytool` command that converts them.
//!
//! ```no_run
//! let config = courier::ProducerConfig::from_properties([
//!     ("bootstrap.servers", "broker1:9093"),
//!     ("security.protocol", "ssl"),
//!     ("ssl.ca.location", "/etc/kafka/ca.pem"),
//!     ("ssl.certificate.location", "/etc/kafka/client.pem"),
//!     ("ssl.key.location", "/etc/kafka/client.key"),
//! ])?;
//! # Ok::<(), courier::ConfigError>(())
//! ```
//!
//! **SASL** mechanisms are `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` and `OAUTHBEARER`,
//! configured with `sasl.username` and `sasl.password` or with Java's `sasl.jaas.config`
//! line. Sessions the broker limits (`connections.max.reauth.ms`) are re-authenticated in
//! place before they expire (KIP-368), without closing the connection. Credentials the
//! broker refuses stop the producer at once with [`ProducerError::AuthenticationFailed`].
//!
//! ```no_run
//! # let password = String::new();
//! let config = courier::ProducerConfig::from_properties([
//!     ("bootstrap.servers", "broker1:9094"),
//!     ("security.protocol", "sasl_ssl"),
//!     ("sasl.mechanism", "SCRAM-SHA-512"),
//!     ("sasl.username", "orders-service"),
//!     ("sasl.password", password.as_str()),
//!     ("ssl.ca.location", "/etc/kafka/ca.pem"), // leave out to trust the system's CAs
//! ])?;
//! # Ok::<(), courier::ConfigError>(())
//! ```
//!
//! **OAUTHBEARER** tokens come from an OpenID Connect provider with the client-credentials
//! grant (`sasl.oauthbearer.method=oidc`), refreshed at 80 % of their lifetime and shared by
//! all connections; or from `sasl.oauthbearer.token`, one fixed token; or from the
//! application, through an [`OAuthTokenProvider`](config::OAuthTokenProvider).
//!
//! ```no_run
//! # let client_secret = String::new();
//! let config = courier::ProducerConfig::from_properties([
//!     ("bootstrap.servers", "broker1:9094"),
//!     ("security.protocol", "sasl_ssl"),
//!     ("sasl.mechanism", "OAUTHBEARER"),
//!     ("sasl.oauthbearer.method", "oidc"),
//!     ("sasl.oauthbearer.token.endpoint.url", "https://login.example.com/oauth2/token"),
//!     ("sasl.oauthbearer.client.id", "orders-service"),
//!     ("sasl.oauthbearer.client.secret", client_secret.as_str()),
//!     ("sasl.oauthbearer.scope", "kafka"),
//! ])?;
//! # Ok::<(), courier::ConfigError>(())
//! ```
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//! use courier::config::{
//!     OAuthToken, OAuthTokenProvider, ProducerConfig, Secret, SecurityProtocol, TokenFuture,
//! };
//!
//! /// Tokens from wherever the application gets them (a secrets manager, a cloud API).
//! struct AppTokens;
//!
//! impl OAuthTokenProvider for AppTokens {
//!     fn token(&self) -> TokenFuture<'_> {
//!         Box::pin(async {
//!             let jwt = fetch_token().await.map_err(|e| e.to_string())?;
//!             Ok(OAuthToken {
//!                 value: Secret::new(jwt),
//!                 // Asked again after 80 % of it; `None` if unknown (used until refused).
//!                 expires_at: Some(SystemTime::now() + Duration::from_secs(3600)),
//!             })
//!         })
//!     }
//! }
//! # async fn fetch_token() -> std::io::Result<String> { Ok("e30.e30.sig".into()) }
//!
//! let config = ProducerConfig::builder()
//!     .bootstrap_servers("broker1:9094")
//!     .security_protocol(SecurityProtocol::SaslSsl)
//!     .oauth_token_provider(Arc::new(AppTokens)) // implies sasl.mechanism=OAUTHBEARER
//!     .build()?;
//! # Ok::<(), courier::ConfigError>(())
//! ```
//!
//! # Transactions
//!
//! With `transactional.id`, records sent between [`Producer::begin_transaction`] and
//! [`Producer::commit_transaction`] become visible to `read_committed` consumers together
//! or not at all, across topics and partitions, with consumer offsets if
//! [`Producer::send_offsets_to_transaction`] adds them (exactly-once processing, KIP-98).
//! The seed's atomic write of a task and its audit entry:
//!
//! ```no_run
//! # use courier::{Producer, ProducerConfig, ProducerRecord, TransactionError};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let producer = Producer::new(
//!     ProducerConfig::builder()
//!         .bootstrap_servers("localhost:9092")
//!         .transactional_id("task-service-1") // implies idempotence and acks=all
//!         .build()?,
//! )?;
//! producer.init_transactions().await?; // once: fences older instances with this id
//! producer.begin_transaction().await?;
//! producer.produce(ProducerRecord::new("task-created").key("t-42").value("{}")).await?;
//! producer.produce(ProducerRecord::new("audit-log").key("t-42").value("created")).await?;
//! match producer.commit_transaction().await {
//!     Ok(()) => {}
//!     Err(e) if e.is_abortable() => producer.abort_transaction().await?, // then retry
//!     Err(e) => return Err(e.into()), // fatal (e.g. fenced): drop the producer
//! }
//! # Ok(()) }
//! ```
//!
//! [`TransactionError`] says what to do: [`is_retriable`](TransactionError::is_retriable)
//! (`max.block.ms` passed: call the same operation again, it resumes),
//! [`is_abortable`](TransactionError::is_abortable) (abort, then start a new transaction)
//! or [`is_fatal`](TransactionError::is_fatal) (drop the producer: another instance with
//! the same `transactional.id` fenced it, or it is not authorized);
//! [`java_name`](TransactionError::java_name) gives the Java exception
//! (`ProducerFencedException`, ...). A record sent outside a transaction fails with
//! [`ProducerError::NotInTransaction`]; one dropped by an abort with
//! [`ProducerError::TransactionAborted`]. Closing the producer aborts an open
//! transaction. The producer speaks transaction protocol version 2 (KIP-890: the
//! partition leaders verify each transaction, the epoch goes up at every commit) where
//! the cluster finalizes `transaction.version` 2 (Kafka 4.0+ as it comes), and version 1
//! (AddPartitionsToTxn) elsewhere, as the Java client chooses;
//! [`Producer::transaction_version`] says which. See docs/TRANSACTIONS.md.
//! `examples/atomic_write.rs` is the write above as a program, with each kind of error
//! handled. `dlq.topic` is refused with `transactional.id`: a failed record aborts the
//! transaction and is sent again, so a dead letter would report a failure that did not
//! stay one.
//!
//! # Errors
//!
//! [`ProducerError`]'s messages say what happened and what to change. The main variants:
//!
//! | variant | cause | what to do |
//! |---|---|---|
//! | [`Config`](ProducerError::Config) | an invalid setting | fix the key it names |
//! | [`BufferFull`](ProducerError::BufferFull) | records arrive faster than brokers take them | slow down, or raise `buffer.memory` / `max.block.ms` |
//! | [`RecordTooLarge`](ProducerError::RecordTooLarge), [`RecordRejectedAsTooLarge`](ProducerError::RecordRejectedAsTooLarge) | the record exceeds `max.request.size`, or the topic's `max.message.bytes` | send smaller records, or raise the limit |
//! | [`UnknownTopic`](ProducerError::UnknownTopic), [`UnknownPartition`](ProducerError::UnknownPartition) | no such topic or partition | create the topic; fix the partition |
//! | [`TopicAuthorizationFailed`](ProducerError::TopicAuthorizationFailed) | the principal may not write | grant `WRITE` and `DESCRIBE` on the topic |
//! | [`MetadataTimeout`](ProducerError::MetadataTimeout), [`DeliveryTimeout`](ProducerError::DeliveryTimeout), [`Transport`](ProducerError::Transport) | brokers unreachable or not answering in time | [`root_cause`](ProducerError::root_cause) says why; retriable, check the persistence |
//! | [`Broker`](ProducerError::Broker) | another error code, after retries | [`code`](ProducerError::code) and [`is_retriable`](ProducerError::is_retriable) say more |
//! | [`AuthenticationFailed`](ProducerError::AuthenticationFailed), [`Tls`](ProducerError::Tls) | refused credentials or certificates (fatal) | fix the settings, create a new producer |
//! | [`Fatal`](ProducerError::Fatal) | a state the producer cannot recover from (fatal) | create a new producer |
//! | [`Closed`](ProducerError::Closed), [`ClosedInFlight`](ProducerError::ClosedInFlight) | sent after `close`, or still pending when it timed out | see [Shutdown](#shutdown) |
//! | [`TransactionAborted`](ProducerError::TransactionAborted), [`NotInTransaction`](ProducerError::NotInTransaction) | (see [Transactions](#transactions)) the record's transaction was aborted, or no transaction was open | send it in the next transaction; begin one first |
//!
//! A fatal error stops the producer: the records it holds fail (those not yet sent with that
//! error), later sends return it at once, and [`Producer::flush`] and [`Producer::close`]
//! return it, so a service that checks them learns why it stopped. Create a new `Producer`
//! once the cause is fixed.
//! [`ProducerError::name`] gives a stable name for metrics (`NOT_ENOUGH_REPLICAS`,
//! `DELIVERY_TIMEOUT`).
//!
//! # Shutdown
//!
//! * [`Producer::flush`] sends what is queued without waiting for `linger.ms` and waits until
//!   every record accepted so far has its report, delivered or failed; the producer stays
//!   usable. It can wait as long as delivery takes (up to `delivery.timeout.ms`, plus
//!   `delivery.resolution.timeout.ms` for a record that may already be in the log): wrap it
//!   in `tokio::time::timeout` to bound it.
//! * [`Producer::close`] stops accepting records (later sends fail with
//!   [`ProducerError::Closed`]), delivers what is queued and in flight for up to its timeout,
//!   then fails what is left: records not yet sent with [`ProducerError::Closed`]
//!   (not persisted), records whose request was in flight with
//!   [`ProducerError::ClosedInFlight`] (possibly persisted). Every record has its report when
//!   `close` returns, and the connections are shut. Closing one clone closes them all.
//! * With a dead letter queue, a record on its way there gets its report (`DeadLettered` or
//!   `DeadLetterFailed`) only once the queue has answered, which can be after `flush` or
//!   `close` returned: keep the runtime alive until such reports are in.
//! * Dropping the last clone without `close` lets the producer finish in the background: it
//!   delivers what it holds, reports it, and shuts its connections. Nothing waits for that,
//!   so close before the tokio runtime ends; a runtime that shuts down first fails the
//!   records still pending with [`ProducerError::Fatal`].
//!
//! ```no_run
//! # use std::time::Duration;
//! # async fn run(producer: courier::Producer) -> Result<(), courier::ProducerError> {
//! if tokio::time::timeout(Duration::from_secs(10), producer.flush()).await.is_err() {
//!     eprintln!("still delivering after 10 s");
//! }
//! producer.close(Duration::from_secs(5)).await?; // Err: the fatal error that stopped it
//! # Ok(()) }
//! ```
//!
//! # Metrics
//!
//! [`Producer::metrics`] returns a [`DeliveryMetrics`] snapshot for all clones: records
//! sent, delivered and failed (by error name), retries, dead letters, requests in flight,
//! bytes buffered, connections opened, failed and closed (by reason), re-authentications.
//!
//! ```no_run
//! # fn run(producer: courier::Producer) {
//! let m = producer.metrics();
//! println!(
//!     "{} delivered, {} failed, {} pending, {} bytes buffered, success rate {:.3}",
//!     m.delivered, m.failed, m.pending(), m.queued_bytes, m.success_rate()
//! );
//! # }
//! ```
//!
//! # Crate layout
//!
//! The sans-I/O engine (record batches, compression, the partitioner, batching, sequences,
//! retries) is the `courier-core` crate; this crate drives it over tokio. [`net`] exposes the
//! connection layer (connections, metadata, SASL), [`error`] the Kafka error codes and how
//! each is handled.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod audit;
pub mod config;
pub mod dlq;
pub mod error;
pub mod metrics;
#[cfg(feature = "msk-iam")]
pub mod msk_iam;
pub mod net;
pub mod producer;
mod queue;

pub use audit::DurabilityReport;
pub use config::{ConfigError, ProducerConfig};
pub use error::{ErrorCode, Persistence, ProducerError};
pub use metrics::{
    BrokerMetrics, DeliveryMetrics, LatencyHistogram, BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_MS,
};
pub use producer::{
    ConsumerGroupMetadata, DeliveryFuture, DeliveryHandler, DeliveryResult, IntoTopic, Producer,
    ProducerRecord, RecordMetadata, TransactionError, TransactionVersion, TxnOffset,
};
