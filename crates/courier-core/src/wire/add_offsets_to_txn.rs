//! AddOffsetsToTxn (API key 25) responses, v0..=4.

use super::{DecodeError, Reader, Response};

/// An AddOffsetsToTxn response: whether the consumer group's offsets partition was
/// added to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOffsetsToTxnResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// Error code, 0 for none.
    pub error_code: i16,
}

impl Response for AddOffsetsToTxnResponse {
    const NAME: &'static str = "AddOffsetsToTxn";
    const API_KEY: i16 = 25;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 4;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(3);

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, DecodeError> {
        let out = AddOffsetsToTxnResponse {
            throttle_time_ms: r.i32("throttle_time_ms")?,
            error_code: r.i16("error_code")?,
        };
        r.skip_tagged_fields("tagged_fields")?;
        Ok(out)
    }
}
