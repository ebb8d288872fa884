//! Sans-I/O core of the courier Kafka producer.
//!
//! No sockets, no async runtime and no OS clock: time is passed in by the caller.
//!
//! Record batch hot path (issue 3): [`RecordBatchBuilder`] encodes records into a
//! RecordBatch v2 as they arrive and [`RecordBatchBuilder::seal`] turns them into a
//! [`SealedBatch`] (header, optional compression with a reusable [`Compressor`], one
//! CRC32C); [`decode`] reads batches back for tests and tools.
//!
//! Broker replies: [`wire`] decodes the responses the producer reads (ApiVersions,
//! Metadata, Produce, InitProducerId, DescribeConfigs, SASL, and for transactions
//! FindCoordinator, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn),
//! treating every byte as hostile; requests are still encoded with the `kafka-protocol`
//! crate.
//!
//! Transactions (issue 15): [`producer::txn::TransactionMachine`] is the transactional
//! producer's state machine, which says which coordinator request to send next and how
//! each reply moves the transaction; [`producer::ProducerEngine::transactional`] runs it
//! with the engine's batches (producer id and epoch from the coordinator, partitions
//! registered before their batches go, aborts failing what was not sent).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod batch;
pub mod compression;
pub mod decode;
pub mod errors;
pub mod partitioner;
pub mod producer;
pub mod sequence;
pub mod varint;
pub mod wire;

pub use batch::{
    encode_batch, encoded_record_size, rewrite_producer_fields, BuildError, Header, PreparedBatch,
    ProducerFields, RecordBatchBuilder, RecordRef, SealedBatch, RECORD_BATCH_OVERHEAD,
};
pub use compression::{Codec, Compression, Compressor};
pub use decode::{
    decode_batch, decode_batch_with, decode_batches, BatchHeader, DecodeError, DecodeOptions,
    DecodedBatch, DecodedHeader, DecodedRecord, TimestampType,
};
