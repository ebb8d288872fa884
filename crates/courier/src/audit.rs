//! The durability audit: do the producer, the topic and the broker agree on what
//! "durable" means?
//!
//! Kafka users lose data less through bugs than through misconfiguration: a producer
//! that waits for "all" replicas when "all" may be one, because the topic has
//! `min.insync.replicas=1`. Three layers have to line up (the seed lesson's
//! "three-layer durability"):
//!
//! 1. **Producer**: `acks=all` (and idempotence, so retries neither duplicate nor
//!    reorder);
//! 2. **Topic**: replication factor of at least 3;
//! 3. **Broker / topic config**: `min.insync.replicas` of at least 2, and below the
//!    replication factor - at the replication factor, one broker down stops writes.
//!
//! [`DurabilityReport::evaluate`] is the pure rule set; [`audit`] and
//! [`crate::Producer::durability_report`] read the topic's replication factor from
//! metadata and its effective `min.insync.replicas` with DescribeConfigs (the topic's
//! own setting, else the broker's, as the broker resolves it).

use std::fmt;
use std::time::Duration;

use crate::config::{Acks, ProducerConfig};
use crate::error::{ErrorCode, ProducerError};
use crate::net::{self, ConfigSource, ConnectionPool};

/// One of the three layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The producer's `acks` and idempotence.
    Producer,
    /// The topic's replication factor.
    Replication,
    /// `min.insync.replicas` (topic setting or broker default).
    MinInsyncReplicas,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Producer => "producer",
            Layer::Replication => "topic",
            Layer::MinInsyncReplicas => "min.insync.replicas",
        })
    }
}

/// The verdict on one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerCheck {
    /// Which layer.
    pub layer: Layer,
    /// The setting as found, e.g. `replication.factor=3`.
    pub setting: String,
    /// Whether the layer does its part.
    pub ok: bool,
    /// What the setting means for the data.
    pub finding: String,
    /// What to change, when the layer is not ok.
    pub fix: Option<String>,
}

/// The three layers for one topic, and the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurabilityReport {
    /// The topic.
    pub topic: String,
    /// The producer's `acks`.
    pub acks: Acks,
    /// Whether the producer is idempotent.
    pub idempotence: bool,
    /// The smallest replication factor among the topic's partitions.
    pub replication_factor: usize,
    /// The effective `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// Where that value comes from.
    pub min_insync_source: ConfigSource,
    /// One check per layer, in layer order.
    pub checks: Vec<LayerCheck>,
    /// The topic's effective `max.message.bytes`, read with the same DescribeConfigs
    /// request when the broker reported it: not a durability layer, but the largest
    /// batch the topic takes, so the producer closes its batches below it (issue 17).
    pub max_message_bytes: Option<usize>,
}

fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

impl DurabilityReport {
    /// Applies the three-layer rules.
    pub fn evaluate(
        topic: &str,
        acks: Acks,
        idempotence: bool,
        replication_factor: usize,
        min_insync_replicas: i32,
        min_insync_source: ConfigSource,
    ) -> DurabilityReport {
        let mut checks = Vec::with_capacity(3);
        let setting = format!(
            "acks={}, enable.idempotence={}",
            acks_name(acks),
            idempotence
        );
        checks.push(match (acks, idempotence) {
            (Acks::All, true) => LayerCheck {
                layer: Layer::Producer,
                setting,
                ok: true,
                finding: "a write is confirmed only once every in-sync replica has it; retries \
                          neither duplicate nor reorder"
                    .into(),
                fix: None,
            },
            (Acks::All, false) => LayerCheck {
                layer: Layer::Producer,
                setting,
                ok: false,
                finding: "without idempotence a retried batch can be written twice or out of \
                          order"
                    .into(),
                fix: Some("set enable.idempotence=true".into()),
            },
            (Acks::Leader, _) => LayerCheck {
                layer: Layer::Producer,
                setting,
                ok: false,
                finding: "the leader alone confirms a write: a leader crash before the \
                          followers copy it loses acknowledged records"
                    .into(),
                fix: Some("set acks=all and enable.idempotence=true".into()),
            },
            (Acks::None, _) => LayerCheck {
                layer: Layer::Producer,
                setting,
                ok: false,
                finding: "nothing confirms a write: records can be lost without any error".into(),
                fix: Some("set acks=all and enable.idempotence=true".into()),
            },
        });
        let rf = replication_factor;
        checks.push(if rf >= 3 {
            LayerCheck {
                layer: Layer::Replication,
                setting: format!("replication.factor={rf}"),
                ok: true,
                finding: format!("{rf} copies of every record: a broker can fail while another is down for maintenance"),
                fix: None,
            }
        } else {
            LayerCheck {
                layer: Layer::Replication,
                setting: format!("replication.factor={rf}"),
                ok: false,
                finding: if rf <= 1 {
                    "a single copy: losing its broker's disk loses the records".into()
                } else {
                    format!("only {rf} copies: one broker down leaves a single copy")
                },
                fix: Some(format!(
                    "raise the topic's replication factor to 3 (kafka-reassign-partitions, or \
                     recreate '{topic}' with --replication-factor 3)"
                )),
            }
        });
        let min = min_insync_replicas;
        let min_setting = format!("min.insync.replicas={min} ({min_insync_source})");
        let alter = format!(
            "kafka-configs --alter --entity-type topics --entity-name {topic} --add-config \
             min.insync.replicas={}",
            if rf >= 3 { rf - 1 } else { 2 }
        );
        checks.push(if min < 2 {
            LayerCheck {
                layer: Layer::MinInsyncReplicas,
                setting: min_setting,
                ok: false,
                finding: "acks=all is satisfied by a single in-sync replica when the others \
                          fall behind: an acknowledged record can live on one broker only"
                    .into(),
                fix: Some(format!("set min.insync.replicas=2: {alter}")),
            }
        } else if min as usize >= rf {
            LayerCheck {
                layer: Layer::MinInsyncReplicas,
                setting: min_setting,
                ok: false,
                finding: format!(
                    "every one of the {rf} replicas must be in sync: one broker down stops all \
                     writes with NOT_ENOUGH_REPLICAS"
                ),
                fix: Some(if rf >= 3 {
                    format!("set min.insync.replicas={}: {alter}", rf - 1)
                } else {
                    "raise the replication factor to 3 and keep min.insync.replicas=2".into()
                }),
            }
        } else {
            LayerCheck {
                layer: Layer::MinInsyncReplicas,
                setting: min_setting,
                ok: true,
                finding: format!(
                    "a confirmed write is on at least {min} brokers, and {} broker(s) can be \
                     down without stopping writes",
                    rf - min as usize
                ),
                fix: None,
            }
        });
        DurabilityReport {
            topic: topic.to_string(),
            acks,
            idempotence,
            replication_factor,
            min_insync_replicas,
            min_insync_source,
            checks,
            max_message_bytes: None,
        }
    }

    /// Whether all three layers do their part.
    pub fn is_aligned(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The layers that do not.
    pub fn misaligned(&self) -> impl Iterator<Item = &LayerCheck> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// One line naming each misaligned layer and its fix (empty when aligned).
    pub fn summary(&self) -> String {
        self.misaligned()
            .map(|c| {
                format!(
                    "{} ({}): {}; fix: {}",
                    c.layer,
                    c.setting,
                    c.finding,
                    c.fix.as_deref().unwrap_or("-")
                )
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

impl fmt::Display for DurabilityReport {
    /// A table of the three layers and the verdict, as `courier doctor` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "durability of topic '{}'", self.topic)?;
        let width = self
            .checks
            .iter()
            .map(|c| c.setting.len())
            .max()
            .unwrap_or(0);
        for c in &self.checks {
            writeln!(
                f,
                "  {:<20} {:<width$}  {}  {}",
                c.layer.to_string(),
                c.setting,
                if c.ok { "ok " } else { "BAD" },
                c.finding,
            )?;
            if let Some(fix) = &c.fix {
                writeln!(f, "  {:<20} {:<width$}       fix: {fix}", "", "")?;
            }
        }
        if self.is_aligned() {
            write!(
                f,
                "verdict: aligned - all three layers protect acknowledged records"
            )
        } else {
            let n = self.misaligned().count();
            write!(f, "verdict: MISALIGNED - {n} of 3 layers need a fix")
        }
    }
}

/// How long the audit keeps trying when brokers do not answer.
const AUDIT_RETRY: Duration = Duration::from_millis(200);

/// Audits `topic` for a producer with `acks` and `idempotence`, over `pool`, trying for
/// up to `max_block` when brokers do not answer.
pub(crate) async fn audit_with_pool(
    pool: &ConnectionPool,
    acks: Acks,
    idempotence: bool,
    topic: &str,
    max_block: Duration,
) -> Result<DurabilityReport, ProducerError> {
    let deadline = tokio::time::Instant::now() + max_block;
    loop {
        match audit_once(pool, acks, idempotence, topic).await {
            Err(AuditFailure::Transient(cause)) => {
                if tokio::time::Instant::now() + AUDIT_RETRY >= deadline {
                    return Err(ProducerError::DurabilityUnverified {
                        topic: topic.to_string(),
                        cause,
                    });
                }
                tokio::time::sleep(AUDIT_RETRY).await;
            }
            Err(AuditFailure::Final(e)) => return Err(e),
            Ok(r) => return Ok(r),
        }
    }
}

enum AuditFailure {
    Transient(String),
    Final(ProducerError),
}

/// A refused TLS session or SASL login ends the audit at once (retrying cannot help);
/// anything else is retried until `max.block.ms`.
fn net_failure(e: net::NetError) -> AuditFailure {
    if e.is_definitive() {
        AuditFailure::Final(ProducerError::from_net(e))
    } else {
        AuditFailure::Transient(e.to_string())
    }
}

/// Connects to a bootstrap server as a producer with `config` would (TLS, SASL) and says
/// how: `courier doctor`'s connection check. A failure explains what to change.
pub async fn check_connection(config: &ProducerConfig) -> Result<String, ProducerError> {
    let pool = ConnectionPool::from_config(config).map_err(ProducerError::from_net)?;
    let result = match pool.get_bootstrap().await {
        Ok(conn) => Ok(format!("{} ({})", conn.addr(), conn.security())),
        Err(e) => Err(ProducerError::from_net(e)),
    };
    pool.close_all();
    result
}

async fn audit_once(
    pool: &ConnectionPool,
    acks: Acks,
    idempotence: bool,
    topic: &str,
) -> Result<DurabilityReport, AuditFailure> {
    let conn = match pool.least_loaded() {
        Some(c) => c,
        None => pool.get_bootstrap().await.map_err(net_failure)?,
    };
    let md = net::fetch_metadata(&conn, &[topic])
        .await
        .map_err(net_failure)?;
    pool.update_brokers(&md);
    let t = md
        .topic(topic)
        .ok_or_else(|| AuditFailure::Transient("metadata left the topic out".into()))?;
    match ErrorCode::from_i16(t.error_code) {
        ErrorCode::NONE => {}
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => {
            return Err(AuditFailure::Final(ProducerError::UnknownTopic {
                topic: topic.to_string(),
            }))
        }
        ErrorCode::TOPIC_AUTHORIZATION_FAILED => {
            return Err(AuditFailure::Final(
                ProducerError::TopicAuthorizationFailed {
                    topic: topic.to_string(),
                },
            ))
        }
        ErrorCode::LEADER_NOT_AVAILABLE => {
            return Err(AuditFailure::Transient(
                "the topic has no leader yet".into(),
            ))
        }
        other => {
            return Err(AuditFailure::Final(ProducerError::DurabilityUnverified {
                topic: topic.to_string(),
                cause: format!("metadata error {other}"),
            }))
        }
    }
    let rf = t
        .partitions
        .iter()
        .map(|p| p.replicas.len())
        .min()
        .unwrap_or(0);
    let entries =
        net::describe_topic_config(&conn, topic, &["min.insync.replicas", "max.message.bytes"])
            .await
            .map_err(|e| AuditFailure::Transient(e.to_string()))?
            .map_err(|(code, message)| {
                AuditFailure::Final(ProducerError::DurabilityUnverified {
                    topic: topic.to_string(),
                    cause: format!(
                        "DescribeConfigs answered {}{}: the audit needs DESCRIBE_CONFIGS on the \
                     topic",
                        ErrorCode::from_i16(code),
                        message.map(|m| format!(" ({m})")).unwrap_or_default()
                    ),
                })
            })?;
    let entry = entries
        .iter()
        .find(|e| e.name == "min.insync.replicas")
        .ok_or_else(|| {
            AuditFailure::Final(ProducerError::DurabilityUnverified {
                topic: topic.to_string(),
                cause: "the broker did not report min.insync.replicas".into(),
            })
        })?;
    let min: i32 = entry
        .value
        .as_deref()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            AuditFailure::Final(ProducerError::DurabilityUnverified {
                topic: topic.to_string(),
                cause: format!(
                    "min.insync.replicas has no readable value ({:?})",
                    entry.value
                ),
            })
        })?;
    let mut report = DurabilityReport::evaluate(topic, acks, idempotence, rf, min, entry.source);
    report.max_message_bytes = entries
        .iter()
        .find(|e| e.name == "max.message.bytes")
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&v| v > 0);
    Ok(report)
}

/// Audits `topic` as a producer with `config` would write to it: connects to
/// `bootstrap.servers`, reads the topic's replication factor and effective
/// `min.insync.replicas`, and compares them with the producer's `acks` and idempotence.
pub async fn audit(
    config: &ProducerConfig,
    topic: &str,
) -> Result<DurabilityReport, ProducerError> {
    let pool = ConnectionPool::from_config(config).map_err(ProducerError::from_net)?;
    let report = audit_with_pool(
        &pool,
        config.acks(),
        config.enable_idempotence(),
        topic,
        config.max_block(),
    )
    .await;
    pool.close_all();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(acks: Acks, idem: bool, rf: usize, min: i32) -> DurabilityReport {
        DurabilityReport::evaluate("orders", acks, idem, rf, min, ConfigSource::Topic)
    }

    #[test]
    fn rf3_min2_acks_all_is_aligned() {
        let r = eval(Acks::All, true, 3, 2);
        assert!(r.is_aligned(), "{r}");
        assert!(r.to_string().contains("verdict: aligned"));
        assert_eq!(r.summary(), "");
    }

    #[test]
    fn min_insync_one_is_misaligned_with_the_fix() {
        let r = eval(Acks::All, true, 3, 1);
        let bad: Vec<Layer> = r.misaligned().map(|c| c.layer).collect();
        assert_eq!(bad, vec![Layer::MinInsyncReplicas]);
        let s = r.summary();
        assert!(
            s.contains("min.insync.replicas=2") && s.contains("kafka-configs"),
            "{s}"
        );
    }

    #[test]
    fn rf1_is_misaligned_on_replication_and_min_insync() {
        let r = eval(Acks::All, true, 1, 1);
        let bad: Vec<Layer> = r.misaligned().map(|c| c.layer).collect();
        assert_eq!(bad, vec![Layer::Replication, Layer::MinInsyncReplicas]);
        assert!(r.to_string().contains("MISALIGNED - 2 of 3"), "{r}");
    }

    #[test]
    fn min_insync_equal_to_rf_stops_writes_on_one_failure() {
        let r = eval(Acks::All, true, 3, 3);
        let c = r.misaligned().next().unwrap();
        assert_eq!(c.layer, Layer::MinInsyncReplicas);
        assert!(c.finding.contains("NOT_ENOUGH_REPLICAS"));
        assert!(c.fix.as_deref().unwrap().contains("min.insync.replicas=2"));
    }

    #[test]
    fn weak_producer_layers_are_named() {
        for (acks, idem) in [
            (Acks::Leader, false),
            (Acks::None, false),
            (Acks::All, false),
        ] {
            let r = eval(acks, idem, 3, 2);
            let c = r.misaligned().next().unwrap();
            assert_eq!(c.layer, Layer::Producer, "{acks:?}");
            assert!(c.fix.as_deref().unwrap().contains("idempotence=true"));
        }
    }
}
