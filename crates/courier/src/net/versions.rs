//! API version negotiation (KIP-35): the versions courier speaks, and per connection the
//! highest version both sides support.

use std::collections::BTreeMap;

use kafka_protocol::messages::ApiKey;

use super::NetError;

/// One API courier uses and the versions it can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedApi {
    /// The API.
    pub key: ApiKey,
    /// Oldest version courier can speak.
    pub min: i16,
    /// Newest version courier can speak.
    pub max: i16,
    /// Whether a broker without a common version is refused at connect time (a producer
    /// can do nothing without Produce and Metadata). Others fail only when used.
    pub required: bool,
}

/// The APIs courier speaks.
///
/// * Produce v3..=12: v3 is the first with RecordBatch v2 (KIP-98, Kafka 0.11; Kafka 4
///   rejects v0-v2). v13 addresses topics by id only (KIP-516); we address them by name.
/// * Metadata v4..=13: v4 is Kafka 0.11's (auto-creation flag); v7 adds leader epochs.
/// * InitProducerId v0..=5 (v3 adds KIP-360 epoch bumps, v4/v5 carry no new fields for an
///   idempotent producer).
/// * ApiVersions v0..=3: v3 is flexible and carries the client's software name and
///   version (KIP-511, KIP-482).
/// * DescribeConfigs v1..=4, for the durability audit.
pub const SUPPORTED_APIS: &[SupportedApi] = &[
    SupportedApi {
        key: ApiKey::Produce,
        min: 3,
        max: 12,
        required: true,
    },
    SupportedApi {
        key: ApiKey::Metadata,
        min: 4,
        max: 13,
        required: true,
    },
    SupportedApi {
        key: ApiKey::InitProducerId,
        min: 0,
        max: 5,
        required: false,
    },
    SupportedApi {
        key: ApiKey::ApiVersions,
        min: 0,
        max: 3,
        required: true,
    },
    // The durability audit reads `min.insync.replicas` (v1 is Kafka 1.1's; v4 is
    // flexible, KIP-482).
    SupportedApi {
        key: ApiKey::DescribeConfigs,
        min: 1,
        max: 4,
        required: false,
    },
    // SASL (KIP-43, KIP-152, KIP-368): SaslHandshake v1 hands the exchange to
    // SaslAuthenticate (v0 is Kafka 0.10's raw framing); SaslAuthenticate v1 carries the
    // session lifetime, v2 is flexible.
    SupportedApi {
        key: ApiKey::SaslHandshake,
        min: 1,
        max: 1,
        required: false,
    },
    SupportedApi {
        key: ApiKey::SaslAuthenticate,
        min: 0,
        max: 2,
        required: false,
    },
    // Transactions (KIP-98; docs/TRANSACTIONS.md): the coordinator's requests, decoded
    // by courier_core::wire at every version listed. FindCoordinator v4 batches keys
    // (KIP-699); AddPartitionsToTxn v4+ is broker-to-broker (KIP-890); TxnOffsetCommit
    // v3 carries the group member (KIP-447); EndTxn and TxnOffsetCommit v5 mean
    // transaction version 2 (KIP-890).
    SupportedApi {
        key: ApiKey::FindCoordinator,
        min: 0,
        max: 6,
        required: false,
    },
    SupportedApi {
        key: ApiKey::AddPartitionsToTxn,
        min: 0,
        max: 3,
        required: false,
    },
    SupportedApi {
        key: ApiKey::AddOffsetsToTxn,
        min: 0,
        max: 4,
        required: false,
    },
    SupportedApi {
        key: ApiKey::TxnOffsetCommit,
        min: 0,
        max: 5,
        required: false,
    },
    SupportedApi {
        key: ApiKey::EndTxn,
        min: 0,
        max: 5,
        required: false,
    },
];

/// The ApiVersions version courier sends first.
pub(crate) const API_VERSIONS_FIRST: i16 = 3;

/// The name of an API as Kafka's docs and logs spell it.
pub fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Metadata => "Metadata",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::AddPartitionsToTxn => "AddPartitionsToTxn",
        ApiKey::AddOffsetsToTxn => "AddOffsetsToTxn",
        ApiKey::EndTxn => "EndTxn",
        ApiKey::TxnOffsetCommit => "TxnOffsetCommit",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        _ => "(other API)",
    }
}

/// The name of the feature that selects the transaction protocol (KIP-890, KIP-1022).
pub const TRANSACTION_VERSION_FEATURE: &str = "transaction.version";

/// The cluster-wide finalized features (KIP-584) as one broker reported them in its
/// ApiVersions v3+ reply, with the epoch that orders such reports: every change of a
/// feature level is a newer epoch (KRaft uses the metadata log offset), so of two
/// reports the one with the higher epoch is the newer view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedFeatures {
    /// The finalized features epoch; -1 when the broker reported none (ApiVersions
    /// before v3, Kafka before 2.7, Redpanda), and then [`level`](Self::level) knows no
    /// feature.
    pub epoch: i64,
    /// Feature name to finalized max version level.
    levels: BTreeMap<String, i16>,
}

impl Default for FinalizedFeatures {
    fn default() -> Self {
        FinalizedFeatures::NONE
    }
}

impl FinalizedFeatures {
    /// No finalized features known (epoch -1).
    pub const NONE: FinalizedFeatures = FinalizedFeatures {
        epoch: -1,
        levels: BTreeMap::new(),
    };

    /// Reads them from an ApiVersions reply. The decoder has bounded the counts and
    /// lengths already; this refuses what it cannot: a feature listed twice (which level
    /// holds?) and a negative level (levels are 0 or more, KIP-584), so a broker that
    /// sends them gets a protocol error rather than a guess. The features count only
    /// with an epoch of 0 or more: the schema says the list is valid only then.
    pub fn from_wire(resp: &courier_core::wire::ApiVersionsResponse) -> Result<Self, String> {
        if resp.finalized_features_epoch < 0 {
            return Ok(FinalizedFeatures::NONE);
        }
        let mut levels = BTreeMap::new();
        for f in &resp.finalized_features {
            if f.max_version_level < 0 {
                return Err(format!(
                    "finalized feature {:?} has the negative max_version_level {}",
                    f.name, f.max_version_level
                ));
            }
            if levels.insert(f.name.clone(), f.max_version_level).is_some() {
                return Err(format!("finalized feature {:?} is listed twice", f.name));
            }
        }
        Ok(FinalizedFeatures {
            epoch: resp.finalized_features_epoch,
            levels,
        })
    }

    /// The finalized level of feature `name`, if the broker reported it.
    pub fn level(&self, name: &str) -> Option<i16> {
        self.levels.get(name).copied()
    }

    /// The finalized `transaction.version`: 2 or more lets a producer use transaction
    /// version 2 (KIP-890); `None` on brokers without the feature (Kafka before 4.0,
    /// Redpanda).
    pub fn transaction_version(&self) -> Option<i16> {
        self.level(TRANSACTION_VERSION_FEATURE)
    }
}

/// Versions one broker connection may use, from the broker's ApiVersions response
/// intersected with [`SUPPORTED_APIS`], and the finalized features it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionTable {
    /// What the broker offered, per API key: (min, max).
    broker: BTreeMap<i16, (i16, i16)>,
    /// Per API courier uses: the usable range, or `None` when there is no common version.
    usable: BTreeMap<i16, Option<(i16, i16)>>,
    /// The cluster's finalized features in this broker's view (ApiVersions v3+).
    finalized: FinalizedFeatures,
}

impl ApiVersionTable {
    /// A table with no usable API (before the handshake).
    pub const EMPTY: ApiVersionTable = ApiVersionTable {
        broker: BTreeMap::new(),
        usable: BTreeMap::new(),
        finalized: FinalizedFeatures::NONE,
    };

    /// Intersects what the broker offered with `ours`. Fails if a required API has no
    /// common version.
    pub fn negotiate(
        broker: impl IntoIterator<Item = (i16, i16, i16)>,
        ours: &[SupportedApi],
    ) -> Result<Self, NetError> {
        let broker: BTreeMap<i16, (i16, i16)> = broker
            .into_iter()
            .map(|(key, min, max)| (key, (min, max)))
            .collect();
        let mut usable = BTreeMap::new();
        for api in ours {
            let common = broker.get(&(api.key as i16)).and_then(|&(bmin, bmax)| {
                let (min, max) = (bmin.max(api.min), bmax.min(api.max));
                (min <= max).then_some((min, max))
            });
            if common.is_none() && api.required {
                return Err(NetError::UnsupportedVersion {
                    api: api_name(api.key),
                    broker: broker.get(&(api.key as i16)).copied(),
                    ours: (api.min, api.max),
                });
            }
            usable.insert(api.key as i16, common);
        }
        Ok(ApiVersionTable {
            broker,
            usable,
            finalized: FinalizedFeatures::NONE,
        })
    }

    /// Builds the table from an ApiVersions response and the finalized features read
    /// from it ([`FinalizedFeatures::from_wire`], which the caller checks first so that
    /// a bad list is a protocol error of the connection).
    pub fn from_wire(
        resp: &courier_core::wire::ApiVersionsResponse,
        finalized: FinalizedFeatures,
    ) -> Result<Self, NetError> {
        let mut table = Self::negotiate(
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version)),
            SUPPORTED_APIS,
        )?;
        table.finalized = finalized;
        Ok(table)
    }

    /// The cluster's finalized features as this broker reported them.
    pub fn finalized_features(&self) -> &FinalizedFeatures {
        &self.finalized
    }

    /// The highest version of `key` both sides support.
    pub fn version(&self, key: ApiKey) -> Result<i16, NetError> {
        self.range(key).map(|(_, max)| max)
    }

    /// The versions of `key` both sides support, or why there are none.
    pub fn range(&self, key: ApiKey) -> Result<(i16, i16), NetError> {
        match self.usable.get(&(key as i16)) {
            Some(Some(range)) => Ok(*range),
            _ => {
                let ours = SUPPORTED_APIS
                    .iter()
                    .find(|a| a.key == key)
                    .map_or((0, -1), |a| (a.min, a.max));
                Err(NetError::UnsupportedVersion {
                    api: api_name(key),
                    broker: self.broker.get(&(key as i16)).copied(),
                    ours,
                })
            }
        }
    }

    /// What the broker offered for `key` (min, max), whether courier uses that API or not.
    pub fn broker_range(&self, key: ApiKey) -> Option<(i16, i16)> {
        self.broker.get(&(key as i16)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka_4_like() -> Vec<(i16, i16, i16)> {
        vec![
            (ApiKey::Produce as i16, 3, 13),
            (ApiKey::Metadata as i16, 0, 13),
            (ApiKey::InitProducerId as i16, 0, 6),
            (ApiKey::ApiVersions as i16, 0, 4),
            (ApiKey::Fetch as i16, 4, 17),
        ]
    }

    #[test]
    fn negotiation_takes_the_highest_common_version_per_api() {
        let t = ApiVersionTable::negotiate(kafka_4_like(), SUPPORTED_APIS).unwrap();
        assert_eq!(t.range(ApiKey::Produce).unwrap(), (3, 12));
        assert_eq!(t.version(ApiKey::Metadata).unwrap(), 13);
        assert_eq!(t.version(ApiKey::InitProducerId).unwrap(), 5);
        assert_eq!(t.version(ApiKey::ApiVersions).unwrap(), 3);
        assert_eq!(t.broker_range(ApiKey::Fetch), Some((4, 17)));
        // An API we do not speak is not usable even though the broker offers it.
        assert!(t.version(ApiKey::Fetch).is_err());
    }

    #[test]
    fn negotiation_caps_at_the_brokers_max_when_it_is_older() {
        let broker = vec![
            (ApiKey::Produce as i16, 0, 7),
            (ApiKey::Metadata as i16, 0, 9),
            (ApiKey::ApiVersions as i16, 0, 2),
        ];
        let t = ApiVersionTable::negotiate(broker, SUPPORTED_APIS).unwrap();
        assert_eq!(t.range(ApiKey::Produce).unwrap(), (3, 7));
        assert_eq!(t.version(ApiKey::Metadata).unwrap(), 9);
        assert_eq!(t.version(ApiKey::ApiVersions).unwrap(), 2);
        // Optional API missing: the connection works, using it fails with a clear error.
        let e = t.version(ApiKey::InitProducerId).unwrap_err();
        assert_eq!(
            e.to_string(),
            "broker does not support the InitProducerId API; courier needs v0..5"
        );
    }

    #[test]
    fn broker_without_produce_v3_is_refused_with_the_kafka_version_needed() {
        let broker = vec![
            (ApiKey::Produce as i16, 0, 2),
            (ApiKey::Metadata as i16, 0, 4),
            (ApiKey::ApiVersions as i16, 0, 1),
        ];
        let e = ApiVersionTable::negotiate(broker, SUPPORTED_APIS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "broker supports Produce v0..2 only; courier needs v3+ (Kafka 0.11+)"
        );
    }

    fn reply(epoch: i64, features: &[(&str, i16)]) -> courier_core::wire::ApiVersionsResponse {
        courier_core::wire::ApiVersionsResponse {
            error_code: 0,
            api_keys: Vec::new(),
            throttle_time_ms: 0,
            supported_features: Vec::new(),
            finalized_features_epoch: epoch,
            finalized_features: features
                .iter()
                .map(|&(name, level)| courier_core::wire::FinalizedFeatureKey {
                    name: name.to_owned(),
                    max_version_level: level,
                    min_version_level: level,
                })
                .collect(),
            zk_migration_ready: false,
        }
    }

    #[test]
    fn finalized_features_count_only_with_an_epoch() {
        let f = FinalizedFeatures::from_wire(&reply(78, &[("transaction.version", 2)])).unwrap();
        assert_eq!((f.epoch, f.transaction_version()), (78, Some(2)));
        assert_eq!(f.level("metadata.version"), None);
        // Epoch -1: the list is not valid (the schema's rule), whatever it holds.
        let f = FinalizedFeatures::from_wire(&reply(-1, &[("transaction.version", 2)])).unwrap();
        assert_eq!(f, FinalizedFeatures::NONE);
        assert_eq!(f.transaction_version(), None);
    }

    #[test]
    fn a_feature_listed_twice_or_a_negative_level_is_refused() {
        let twice = reply(5, &[("transaction.version", 1), ("transaction.version", 2)]);
        assert_eq!(
            FinalizedFeatures::from_wire(&twice).unwrap_err(),
            "finalized feature \"transaction.version\" is listed twice"
        );
        let negative = reply(5, &[("transaction.version", -2)]);
        assert_eq!(
            FinalizedFeatures::from_wire(&negative).unwrap_err(),
            "finalized feature \"transaction.version\" has the negative max_version_level -2"
        );
    }

    #[test]
    fn supported_ranges_are_within_what_kafka_protocol_can_encode() {
        for api in SUPPORTED_APIS {
            let theirs = api.key.valid_versions();
            assert!(
                theirs.min <= api.min && api.max <= theirs.max,
                "{:?}: ours {}..={} vs kafka-protocol {theirs}",
                api.key,
                api.min,
                api.max
            );
        }
    }
}
