//! EndTxn (API key 26) responses, v0..=5.
//!
//! From v5 (KIP-890, transaction version 2) the coordinator bumps the producer epoch as
//! it ends every transaction and returns the producer id and epoch the next transaction
//! must use; at the epoch's limit the id is a new one, with epoch 0.

use super::{DecodeError, Reader, Response};

/// An EndTxn response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// Error code, 0 for none.
    pub error_code: i16,
    /// The producer id for the next transaction (v5+; -1 before, and on error).
    pub producer_id: i64,
    /// The producer epoch for the next transaction (v5+; -1 before, and on error).
    pub producer_epoch: i16,
}

impl Response for EndTxnResponse {
    const NAME: &'static str = "EndTxn";
    const API_KEY: i16 = 26;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(3);

    fn read(r: &mut Reader<'_>, version: i16) -> Result<Self, DecodeError> {
        let throttle_time_ms = r.i32("throttle_time_ms")?;
        let error_code = r.i16("error_code")?;
        let (producer_id, producer_epoch) = if version >= 5 {
            (r.i64("producer_id")?, r.i16("producer_epoch")?)
        } else {
            (-1, -1)
        };
        r.skip_tagged_fields("tagged_fields")?;
        Ok(EndTxnResponse {
            throttle_time_ms,
            error_code,
            producer_id,
            producer_epoch,
        })
    }
}
