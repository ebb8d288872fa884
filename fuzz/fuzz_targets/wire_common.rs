//! Shared harness of the wire-decoder targets (included with `#[path]`, not a crate).
//!
//! The first input byte picks the version, so one target covers every version its
//! decoder knows; the rest is the body. Invariants: no panic, no allocation the RSS
//! limit catches, and an error always names the message it was decoding.

use courier_core::wire::Response;

/// Maps `selector` onto `R`'s versions.
pub fn version_of<R: Response>(selector: u8) -> i16 {
    let span = (R::MAX_VERSION - R::MIN_VERSION + 1) as u8;
    R::MIN_VERSION + i16::from(selector % span)
}

/// Decodes `body` as `R` at the version `selector` picks; checks the error text.
pub fn check<R: Response>(selector: u8, body: &[u8]) -> Option<R> {
    let version = version_of::<R>(selector);
    match R::decode(body, version) {
        Ok(r) => Some(r),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("{} v{version}: ", R::NAME)),
                "{text}"
            );
            assert!(e.offset() <= body.len(), "{text}");
            None
        }
    }
}
