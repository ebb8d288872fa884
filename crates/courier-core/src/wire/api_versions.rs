//! ApiVersions (API key 18) responses, v0..=3.

use super::{DecodeError, Reader, Response, UNSUPPORTED_VERSION};

/// The version range a broker supports for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiVersion {
    /// The API key.
    pub api_key: i16,
    /// Lowest supported version.
    pub min_version: i16,
    /// Highest supported version.
    pub max_version: i16,
}

/// A feature the broker supports (v3+, tagged field 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedFeatureKey {
    /// Feature name, e.g. `transaction.version`.
    pub name: String,
    /// Lowest supported version.
    pub min_version: i16,
    /// Highest supported version.
    pub max_version: i16,
}

/// A cluster-wide finalized feature (v3+, tagged field 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedFeatureKey {
    /// Feature name, e.g. `transaction.version`.
    pub name: String,
    /// Finalized maximum version level.
    pub max_version_level: i16,
    /// Finalized minimum version level.
    pub min_version_level: i16,
}

/// An ApiVersions response.
///
/// A broker that does not support the requested ApiVersions version answers with a
/// **v0 body** carrying [`UNSUPPORTED_VERSION`] and, since KIP-511, its own ApiVersions
/// range in `api_keys`. [`ApiVersionsResponse::peek_error_code`] reads the error code
/// alone (it is the first field of every version) and
/// [`ApiVersionsResponse::decode_negotiating`] falls back to v0 for that case. The
/// header before any ApiVersions body is always v0 (no tagged fields), also for v3+.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersionsResponse {
    /// Top-level error code.
    pub error_code: i16,
    /// The APIs the broker supports.
    pub api_keys: Vec<ApiVersion>,
    /// Throttle time in milliseconds (v1+; 0 before).
    pub throttle_time_ms: i32,
    /// Supported features (v3+, tag 0; empty if absent).
    pub supported_features: Vec<SupportedFeatureKey>,
    /// Epoch of the finalized features (v3+, tag 1; -1 if absent or unknown).
    pub finalized_features_epoch: i64,
    /// Cluster-wide finalized features, valid when the epoch is >= 0 (v3+, tag 2).
    pub finalized_features: Vec<FinalizedFeatureKey>,
    /// Set by a KRaft controller ready for ZK migration (v3+, tag 3; false if absent).
    pub zk_migration_ready: bool,
}

/// Smallest encoding of a feature entry (both kinds): compact name, two int16, tags.
const MIN_FEATURE_SIZE: usize = 1 + 2 + 2 + 1;

impl ApiVersionsResponse {
    /// Reads only the error code, the first field of every version, so that a caller
    /// can tell the v0 UNSUPPORTED_VERSION answer from a body of the version it asked
    /// for before decoding the rest.
    pub fn peek_error_code(body: &[u8]) -> Result<i16, DecodeError> {
        Reader::new(body, false)
            .i16("error_code")
            .map_err(|e| e.in_message(Self::NAME, 0))
    }

    /// Decodes a body answering a request of `requested_version`, and returns it with
    /// the version it was actually decoded at: v0 when the broker answered
    /// UNSUPPORTED_VERSION (its body is then always v0), else `requested_version`.
    pub fn decode_negotiating(
        body: &[u8],
        requested_version: i16,
    ) -> Result<(Self, i16), DecodeError> {
        let version = if Self::peek_error_code(body)? == UNSUPPORTED_VERSION {
            0
        } else {
            requested_version
        };
        Self::decode(body, version).map(|r| (r, version))
    }

    /// The broker's version range for `api_key`, if it supports the API.
    pub fn versions_of(&self, api_key: i16) -> Option<&ApiVersion> {
        self.api_keys.iter().find(|a| a.api_key == api_key)
    }

    /// The finalized max version level of feature `name` (e.g. `transaction.version`),
    /// if the broker sent one with a valid epoch.
    pub fn finalized_level(&self, name: &str) -> Option<i16> {
        if self.finalized_features_epoch < 0 {
            return None;
        }
        self.finalized_features
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.max_version_level)
    }
}

impl Response for ApiVersionsResponse {
    const NAME: &'static str = "ApiVersions";
    const API_KEY: i16 = 18;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 3;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(3);

    /// Always header v0: a client must read the header before it knows which version
    /// the broker answered with (KIP-511).
    fn header_version(_version: i16) -> i16 {
        0
    }

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let flexible = r.is_flexible();
        let error_code = r.i16("error_code")?;
        let api_keys = r.array("api_keys", 6 + usize::from(flexible), |r| {
            let v = ApiVersion {
                api_key: r.i16("api_key")?,
                min_version: r.i16("min_version")?,
                max_version: r.i16("max_version")?,
            };
            r.skip_tagged_fields("tagged_fields")?;
            Ok(v)
        })?;
        let throttle_time_ms = if version >= 1 {
            r.i32("throttle_time_ms")?
        } else {
            0
        };
        let mut out = ApiVersionsResponse {
            error_code,
            api_keys,
            throttle_time_ms,
            supported_features: Vec::new(),
            finalized_features_epoch: -1,
            finalized_features: Vec::new(),
            zk_migration_ready: false,
        };
        r.tagged_fields("tagged_fields", |tag, r| {
            match tag {
                0 => {
                    out.supported_features =
                        r.array("supported_features", MIN_FEATURE_SIZE, |r| {
                            let f = SupportedFeatureKey {
                                name: r.string("name")?,
                                min_version: r.i16("min_version")?,
                                max_version: r.i16("max_version")?,
                            };
                            r.skip_tagged_fields("tagged_fields")?;
                            Ok(f)
                        })?
                }
                1 => out.finalized_features_epoch = r.i64("finalized_features_epoch")?,
                2 => {
                    out.finalized_features =
                        r.array("finalized_features", MIN_FEATURE_SIZE, |r| {
                            let f = FinalizedFeatureKey {
                                name: r.string("name")?,
                                max_version_level: r.i16("max_version_level")?,
                                min_version_level: r.i16("min_version_level")?,
                            };
                            r.skip_tagged_fields("tagged_fields")?;
                            Ok(f)
                        })?
                }
                3 => out.zk_migration_ready = r.bool("zk_migration_ready")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(out)
    }
}
