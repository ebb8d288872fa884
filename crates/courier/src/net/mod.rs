//! The producer's connection layer: TCP connections to brokers, API version negotiation,
//! pipelined requests and the typed control-plane calls.
//!
//! * [`BrokerConnection`]: one connection to one broker. Connects with a setup timeout,
//!   negotiates versions with ApiVersions (KIP-35; v3 with the client's name and version,
//!   KIP-511), pipelines up to `max_in_flight` requests matched by correlation id, and
//!   writes Produce requests with the sealed record batches chained into a vectored
//!   write (no copy).
//! * [`ConnectionPool`]: connections by node id (and bootstrap address), opened lazily and
//!   reopened with exponential backoff.
//! * [`fetch_metadata`], [`init_producer_id`] and [`describe_topic_config`]: typed
//!   Metadata, InitProducerId and DescribeConfigs.
//! * [`sasl`]: the SASL mechanisms (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) as I/O-free
//!   state machines, and `sasl.jaas.config` parsing.
//! * [`NetError`]: every failure, with [`NetError::maybe_written`] telling whether the
//!   request may have reached the broker, which decides whether a failed Produce may have
//!   been persisted.
//!
//! The layer holds no retry or routing policy: that is the producer core's.

mod authenticate;
mod codec;
mod configs;
mod connection;
mod error;
mod metadata;
mod oidc;
mod pool;
pub mod sasl;
mod stream;
mod tls;
pub mod txn;
mod versions;

pub use authenticate::{SaslAuth, SaslAuthenticator, Session};
pub use codec::{PartitionRecords, ProduceRequestParts, TopicRecords};
pub use configs::{describe_topic_config, ConfigEntry, ConfigSource};
pub use connection::{BrokerConnection, ConnectOptions, InFlightPermit};
pub use error::{CloseReason, NetError};
pub use metadata::{
    fetch_metadata, fetch_metadata_with, init_producer_id, BrokerMetadata, ClusterMetadata,
    PartitionMetadata, ProducerIdGrant, TopicMetadata,
};
pub use pool::{BrokerKey, ConnectionPool, NetCounters, ReconnectBackoff};
pub use tls::{TlsConnector, TlsFailure};
pub use versions::{
    api_name, ApiVersionTable, FinalizedFeatures, SupportedApi, SUPPORTED_APIS,
    TRANSACTION_VERSION_FEATURE,
};
