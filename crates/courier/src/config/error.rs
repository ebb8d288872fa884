//! Why a configuration was rejected, and what building it changed or found weak.

use std::fmt;
use std::time::Duration;

use super::values::Acks;

/// A configuration that cannot be used. Every variant names the key at fault
/// ([`ConfigError::key`]) and its message says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The key is not a courier setting (keys are case-sensitive, as in Java and librdkafka).
    #[error("unknown configuration key '{key}'{}", DidYouMean(*suggestion))]
    UnknownKey {
        /// The key as given.
        key: String,
        /// The accepted key it most likely was meant to be.
        suggestion: Option<&'static str>,
    },

    /// A Java client or librdkafka key that courier knowingly does not accept.
    #[error("configuration key '{key}' is not supported by courier: {reason}")]
    UnsupportedKey {
        /// The key as given.
        key: String,
        /// Why, and what to use instead.
        reason: &'static str,
    },

    /// The value could not be parsed for this key.
    #[error("{key}: expected {expected}, got {}", ShownValue(value.as_deref()))]
    InvalidValue {
        /// The key as given (an alias stays an alias, so the user finds the line).
        key: String,
        /// What the key accepts.
        expected: String,
        /// The value as given; `None` for secrets, which are never repeated.
        value: Option<String>,
    },

    /// A required setting was not given.
    #[error("{key} is required: {hint}")]
    Missing {
        /// The missing key.
        key: &'static str,
        /// How to provide it.
        hint: &'static str,
    },

    /// A value is out of range, or settings contradict each other.
    #[error("{key}: {message}")]
    Invalid {
        /// The key whose value must change (for conflicts, the one most likely to be wrong).
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// `durability.check=enforce` and the configuration may lose or duplicate records.
    #[error(
        "durability.check=enforce refuses this configuration: {}; fix these settings, \
         or set durability.check=warn to accept the risk",
        IssueList(issues)
    )]
    NotDurable {
        /// Every weakness found.
        issues: Vec<DurabilityIssue>,
    },
}

impl ConfigError {
    /// The configuration key the error is about.
    pub fn key(&self) -> &str {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::UnsupportedKey { key, .. }
            | ConfigError::InvalidValue { key, .. } => key,
            ConfigError::Missing { key, .. } | ConfigError::Invalid { key, .. } => key,
            ConfigError::NotDurable { .. } => "durability.check",
        }
    }
}

struct DidYouMean(Option<&'static str>);

impl fmt::Display for DidYouMean {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " (did you mean '{s}'?)"),
            None => Ok(()),
        }
    }
}

struct ShownValue<'a>(Option<&'a str>);

impl fmt::Display for ShownValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => write!(f, "'{v}'"),
            None => f.write_str("a value that is not shown because it is secret"),
        }
    }
}

struct IssueList<'a>(&'a [DurabilityIssue]);

impl fmt::Display for IssueList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// A setting that gives up some durability. Found by [`durability.check`](super::DurabilityCheck).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DurabilityIssue {
    /// `acks` is not `all`.
    AcksNotAll(Acks),
    /// Idempotence is off (explicitly, or because a conflicting setting turned it off).
    IdempotenceDisabled,
    /// `retries=0`.
    NoRetries,
}

impl fmt::Display for DurabilityIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurabilityIssue::AcksNotAll(Acks::None) => f.write_str(
                "acks=0 sends without waiting for any acknowledgement: records can be lost \
                 and failures are never reported",
            ),
            DurabilityIssue::AcksNotAll(acks) => write!(
                f,
                "acks={acks} waits for the partition leader only: an acknowledged record is \
                 lost if the leader fails before a follower copies it (use acks=all)"
            ),
            DurabilityIssue::IdempotenceDisabled => f.write_str(
                "idempotence is disabled: a retried batch can be written twice, and with more \
                 than one request in flight records can be reordered",
            ),
            DurabilityIssue::NoRetries => f.write_str(
                "retries=0: a transient error such as a leader election fails records \
                 instead of retrying them",
            ),
        }
    }
}

/// Something [`build`](super::ProducerConfigBuilder::build) changed or noticed in a valid
/// configuration, the way the Java client adjusts some settings and logs it.
///
/// Each notice is also logged (`tracing::info!`) when the configuration is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigNotice {
    /// `enable.idempotence` was not set and another setting is incompatible with it, so
    /// idempotence was turned off instead of failing (the Java client since KAFKA-13673, the
    /// follow-up of KIP-679).
    IdempotenceDisabled {
        /// The incompatible setting: `acks` or `retries`.
        because_of: &'static str,
    },
    /// `delivery.timeout.ms` was not set and its default is below
    /// `linger.ms + request.timeout.ms`, so it was raised to that sum (as the Java client does).
    DeliveryTimeoutRaised {
        /// The new value.
        to: Duration,
    },
    /// A `*.max.ms` backoff cap was not set and was below its base, so it was raised to the
    /// base: the backoff is constant.
    BackoffMaxRaised {
        /// The cap that was raised, e.g. `reconnect.backoff.max.ms`.
        key: &'static str,
        /// The new value.
        to: Duration,
    },
}

impl fmt::Display for ConfigNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigNotice::IdempotenceDisabled { because_of } => write!(
                f,
                "idempotence disabled because {because_of} is incompatible with it and \
                 enable.idempotence was not set; set enable.idempotence=false to make this \
                 explicit, or fix {because_of} to keep idempotence"
            ),
            ConfigNotice::DeliveryTimeoutRaised { to } => write!(
                f,
                "delivery.timeout.ms raised to {} ms (linger.ms + request.timeout.ms)",
                to.as_millis()
            ),
            ConfigNotice::BackoffMaxRaised { key, to } => write!(
                f,
                "{key} raised to {} ms to match its base value; the backoff is constant",
                to.as_millis()
            ),
        }
    }
}
