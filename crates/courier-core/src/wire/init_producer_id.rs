//! InitProducerId (API key 22) responses, v0..=5.

use super::{DecodeError, Reader, Response};

/// An InitProducerId response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitProducerIdResponse {
    /// Throttle time in milliseconds.
    pub throttle_time_ms: i32,
    /// Error code, 0 for none.
    pub error_code: i16,
    /// The producer id, -1 on error.
    pub producer_id: i64,
    /// The producer epoch, -1 on error.
    pub producer_epoch: i16,
}

impl Response for InitProducerIdResponse {
    const NAME: &'static str = "InitProducerId";
    const API_KEY: i16 = 22;
    const MIN_VERSION: i16 = 0;
    const MAX_VERSION: i16 = 5;
    const FIRST_FLEXIBLE_VERSION: Option<i16> = Some(2);

    fn read(r: &mut Reader<'_>, _version: i16) -> Result<Self, DecodeError> {
        let out = InitProducerIdResponse {
            throttle_time_ms: r.i32("throttle_time_ms")?,
            error_code: r.i16("error_code")?,
            producer_id: r.i64("producer_id")?,
            producer_epoch: r.i16("producer_epoch")?,
        };
        r.skip_tagged_fields("tagged_fields")?;
        Ok(out)
    }
}
