//! SaslHandshake (API key 17) v0..=1 and SaslAuthenticate (API key 36) v0..=2 responses.

use super::{DecodeError, Reader, Response};

/// A SaslHandshake response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslHandshakeResponse {
    /// Error code, 0 for none.
    pub error_code: i16,
    /// The mechanisms the broker enables.
    pub mechanisms: Vec<String>,
}

impl Response for SaslHandshakeResponse {
    const NAME: &'static str = "SaslHandshake";
    const API_KEY: i16 = 17;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 1;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = None;

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, DecodeError> {
        Ok(SaslHandshakeResponse {
            error_code: r.i16("error_code")?,
            mechanisms: r.string_array("mechanisms")?,
        })
    }
}

/// A SaslAuthenticate response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslAuthenticateResponse {
    /// Error code, 0 for none.
    pub error_code: i16,
    /// Error message, if any (invalid UTF-8 replaced).
    pub error_message: Option<String>,
    /// The mechanism's bytes from the broker.
    pub auth_bytes: Vec<u8>,
    /// Milliseconds until the session must re-authenticate, 0 for never (v1+; 0
    /// before).
    pub session_lifetime_ms: i64,
}

impl Response for SaslAuthenticateResponse {
    const NAME: &'static str = "SaslAuthenticate";
    const API_KEY: i16 = 36;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 2;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(2);

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let out = SaslAuthenticateResponse {
            error_code: r.i16("error_code")?,
            error_message: r.nullable_string_lossy("error_message")?,
            auth_bytes: r.bytes("auth_bytes")?.to_vec(),
            session_lifetime_ms: if version >= 1 {
                r.i64("session_lifetime_ms")?
            } else {
                0
            },
        };
        r.skip_tagged_fields("tagged_fields")?;
        Ok(out)
    }
}
