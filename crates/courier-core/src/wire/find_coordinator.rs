//! FindCoordinator (API key 10) responses, v0..=6.
//!
//! Versions 0..=3 answer for one key with top-level fields; from v4 (KIP-699) a request
//! may ask for several keys and the reply lists one [`Coordinator`] per key instead, the
//! top-level fields no longer sent. [`FindCoordinatorResponse::for_key`] reads either
//! shape.

use super::{DecodeError, Reader, Response};

/// `KeyType` of a FindCoordinator request: a consumer group's coordinator.
pub const KEY_TYPE_GROUP: i8 = 0;
/// `KeyType` of a FindCoordinator request: a transactional id's coordinator.
pub const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator for one key (an entry of `coordinators`, v4+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinator {
    /// The key asked for (a group id or a transactional id).
    pub key: String,
    /// The coordinator's broker id.
    pub node_id: i32,
    /// The coordinator's host name.
    pub host: String,
    /// The coordinator's port.
    pub port: i32,
    /// Error code, 0 for none.
    pub error_code: i16,
    /// Error message, if the broker sent one (invalid UTF-8 replaced).
    pub error_message: Option<String>,
}

/// A FindCoordinator response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindCoordinatorResponse {
    /// Throttle time in milliseconds (v1+; 0 before).
    pub throttle_time_ms: i32,
    /// Error code (v0..=3; 0 from v4, where each coordinator has its own).
    pub error_code: i16,
    /// Error message (v1..=3; `None` otherwise; invalid UTF-8 replaced).
    pub error_message: Option<String>,
    /// The coordinator's broker id (v0..=3; 0 from v4).
    pub node_id: i32,
    /// The coordinator's host (v0..=3; empty from v4).
    pub host: String,
    /// The coordinator's port (v0..=3; 0 from v4).
    pub port: i32,
    /// One entry per key asked for (v4+; empty before).
    pub coordinators: Vec<Coordinator>,
}

/// Smallest coordinator entry (flexible versions only): key, node_id, host, port,
/// error_code, error_message, tags.
const MIN_COORDINATOR_SIZE: usize = 1 + 4 + 1 + 4 + 2 + 1 + 1;

impl FindCoordinatorResponse {
    /// The answer for `key` in a reply decoded at `version`: the top-level fields (with
    /// `key` as asked) before v4, else the entry of `coordinators` with that key.
    /// `None` if a v4+ reply has no entry for `key`, which a caller should treat as an
    /// error of the broker (Java fails the lookup when the list is not exactly the one
    /// key it asked for).
    pub fn for_key(&self, version: i16, key: &str) -> Option<Coordinator> {
        if version < 4 {
            return Some(Coordinator {
                key: key.to_owned(),
                node_id: self.node_id,
                host: self.host.clone(),
                port: self.port,
                error_code: self.error_code,
                error_message: self.error_message.clone(),
            });
        }
        self.coordinators.iter().find(|c| c.key == key).cloned()
    }
}

impl Response for FindCoordinatorResponse {
    const NAME: &'static str = "FindCoordinator";
    const API_KEY: i16 = 10;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 6;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(3);

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let throttle_time_ms = if version >= 1 {
            r.i32("throttle_time_ms")?
        } else {
            0
        };
        let mut out = FindCoordinatorResponse {
            throttle_time_ms,
            error_code: 0,
            error_message: None,
            node_id: 0,
            host: String::new(),
            port: 0,
            coordinators: Vec::new(),
        };
        if version <= 3 {
            out.error_code = r.i16("error_code")?;
            if version >= 1 {
                out.error_message = r.nullable_string_lossy("error_message")?;
            }
            out.node_id = r.i32("node_id")?;
            out.host = r.string("host")?;
            out.port = r.i32("port")?;
        } else {
            out.coordinators = r.array("coordinators", MIN_COORDINATOR_SIZE, |r| {
                let c = Coordinator {
                    key: r.string("key")?,
                    node_id: r.i32("node_id")?,
                    host: r.string("host")?,
                    port: r.i32("port")?,
                    error_code: r.i16("error_code")?,
                    error_message: r.nullable_string_lossy("error_message")?,
                };
                r.skip_tagged_fields("tagged_fields")?;
                Ok(c)
            })?;
        }
        r.skip_tagged_fields("tagged_fields")?;
        Ok(out)
    }
}
