//! The transaction coordinator's requests (KIP-98, KIP-447, KIP-890), one function each:
//! encoded with `kafka-protocol` at the highest version both the broker and the
//! transaction protocol allow, decoded by `courier_core::wire`'s hostile-input decoders.
//!
//! These carry no policy: which request comes next, and what an answer's error means, is
//! the state machine's (`courier_core::producer::txn`). Every function returns the
//! broker's error codes as they came.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, EndTxnRequest,
    FindCoordinatorRequest, GroupId, InitProducerIdRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;

use courier_core::producer::txn::{TransactionVersion, TxnApi, TxnOffset};
use courier_core::wire::{
    self, AddPartitionsToTxnResponse, Coordinator, EndTxnResponse, TxnOffsetCommitResponse,
};

use super::{BrokerConnection, NetError};

/// The version to send `key` at: the highest the connection's broker and courier both
/// speak, within what transaction protocol `txn` allows for `api`.
fn txn_version(
    conn: &BrokerConnection,
    key: ApiKey,
    txn: TransactionVersion,
    api: TxnApi,
) -> Result<i16, NetError> {
    let (lo, hi) = conn.versions().range(key)?;
    let allowed = txn.request_versions(api);
    let v = hi.min(*allowed.end());
    if v < lo || v < *allowed.start() {
        // No version both sides speak is one this transaction protocol may use.
        return Err(NetError::UnsupportedVersion {
            api: super::api_name(key),
            broker: conn.versions().broker_range(key),
            ours: (lo.max(*allowed.start()), hi.min(*allowed.end())),
        });
    }
    Ok(v)
}

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_owned()))
}

/// Finds the coordinator of `key`: a transactional id (`key_type`
/// [`wire::KEY_TYPE_TRANSACTION`]) or a consumer group ([`wire::KEY_TYPE_GROUP`]). Any
/// broker answers. The coordinator's own error code (e.g. COORDINATOR_NOT_AVAILABLE)
/// is in the result; a v4+ reply without an entry for `key` is a protocol error.
pub async fn find_coordinator(
    conn: &BrokerConnection,
    key_type: i8,
    key: &str,
) -> Result<Coordinator, NetError> {
    let (version, resp) = find_coordinator_reply(conn, key_type, key).await?;
    resp.for_key(version, key).ok_or_else(|| NetError::Decode {
        addr: conn.addr().to_string(),
        api: "FindCoordinator",
        version,
        message: format!("the reply has no coordinator for the key asked for ({key})"),
    })
}

/// [`find_coordinator`]'s request, with the reply as it came and the version it was
/// decoded at (the transaction machine reads the entry for its key itself, and treats a
/// reply without one as Java does).
pub async fn find_coordinator_reply(
    conn: &BrokerConnection,
    key_type: i8,
    key: &str,
) -> Result<(i16, wire::FindCoordinatorResponse), NetError> {
    let version = conn.version(ApiKey::FindCoordinator)?;
    let mut req = FindCoordinatorRequest::default().with_key_type(key_type);
    req = if version >= 4 {
        // KIP-699: batched keys; one here.
        req.with_coordinator_keys(vec![StrBytes::from_string(key.to_owned())])
    } else {
        req.with_key(StrBytes::from_string(key.to_owned()))
    };
    Ok((version, conn.send(req, version).await?))
}

/// InitProducerId for a transactional producer, sent to its coordinator: a new id and
/// epoch (`producer_id` and `producer_epoch` -1), which fences older instances, or the
/// epoch bump of the current ones after an abort (KIP-360, v3+).
pub async fn init_producer_id(
    conn: &BrokerConnection,
    transactional_id: &str,
    transaction_timeout_ms: i32,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<wire::InitProducerIdResponse, NetError> {
    let version = conn.version(ApiKey::InitProducerId)?;
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(txn_id(transactional_id)))
        .with_transaction_timeout_ms(transaction_timeout_ms)
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch);
    conn.send(req, version).await
}

/// Registers partitions with the transaction (transaction version 1 only: with version
/// 2 the Produce request does it, KIP-890). Per topic and partition, the error code.
pub async fn add_partitions_to_txn(
    conn: &BrokerConnection,
    txn: TransactionVersion,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[(&str, Vec<i32>)],
) -> Result<AddPartitionsToTxnResponse, NetError> {
    let version = txn_version(
        conn,
        ApiKey::AddPartitionsToTxn,
        txn,
        TxnApi::AddPartitionsToTxn,
    )?;
    let topics = partitions
        .iter()
        .map(|(topic, parts)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string((*topic).to_owned())))
                .with_partitions(parts.clone())
        })
        .collect();
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(transactional_id))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(producer_epoch)
        .with_v3_and_below_topics(topics);
    conn.send(req, version).await
}

/// Adds a consumer group's offsets to the transaction (transaction version 1; version 2
/// sends TxnOffsetCommit v5 directly). The error code.
pub async fn add_offsets_to_txn(
    conn: &BrokerConnection,
    txn: TransactionVersion,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group_id: &str,
) -> Result<i16, NetError> {
    let version = txn_version(conn, ApiKey::AddOffsetsToTxn, txn, TxnApi::AddOffsetsToTxn)?;
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(transactional_id))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_group_id(GroupId(StrBytes::from_string(group_id.to_owned())));
    let resp: wire::AddOffsetsToTxnResponse = conn.send(req, version).await?;
    Ok(resp.error_code)
}

/// A consumer group's member, for TxnOffsetCommit's fencing of zombie consumers
/// (KIP-447): the generation and member id from the group's last rebalance. Without
/// them (`generation_id` -1, empty member id) the coordinator checks only the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The consumer group.
    pub group_id: String,
    /// The group's generation, or -1.
    pub generation_id: i32,
    /// The member's id, or empty.
    pub member_id: String,
    /// The static member's instance id (KIP-345), if any.
    pub group_instance_id: Option<String>,
}

/// One partition's offset to commit: `(partition, offset, its leader epoch or -1)`.
pub type PartitionOffset = (i32, i64, i32);

/// Commits offsets within the transaction, sent to the group's coordinator, per topic.
/// Per partition, the error code.
pub async fn txn_offset_commit(
    conn: &BrokerConnection,
    txn: TransactionVersion,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group: &GroupMember,
    offsets: &[(&str, Vec<PartitionOffset>)],
) -> Result<TxnOffsetCommitResponse, NetError> {
    let offsets: Vec<TxnOffset> = offsets
        .iter()
        .flat_map(|(topic, parts)| {
            parts
                .iter()
                .map(move |&(partition, offset, leader_epoch)| TxnOffset {
                    topic: (*topic).to_owned(),
                    partition,
                    offset,
                    leader_epoch,
                    metadata: None,
                })
        })
        .collect();
    txn_offset_commit_offsets(
        conn,
        txn,
        transactional_id,
        producer_id,
        producer_epoch,
        group,
        &offsets,
    )
    .await
}

/// [`txn_offset_commit`] for offsets as the transaction machine keeps them, with each
/// one's metadata string; partitions of one topic go together.
pub async fn txn_offset_commit_offsets(
    conn: &BrokerConnection,
    txn: TransactionVersion,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group: &GroupMember,
    offsets: &[TxnOffset],
) -> Result<TxnOffsetCommitResponse, NetError> {
    let version = txn_version(conn, ApiKey::TxnOffsetCommit, txn, TxnApi::TxnOffsetCommit)?;
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for o in offsets {
        let partition = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(o.partition)
            .with_committed_offset(o.offset)
            .with_committed_leader_epoch(o.leader_epoch)
            .with_committed_metadata(o.metadata.clone().map(StrBytes::from_string));
        match topics.iter_mut().find(|t| *t.name.0 == *o.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(o.topic.clone())))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(transactional_id))
        .with_group_id(GroupId(StrBytes::from_string(group.group_id.clone())))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_generation_id(group.generation_id)
        .with_member_id(StrBytes::from_string(group.member_id.clone()))
        .with_group_instance_id(group.group_instance_id.clone().map(StrBytes::from_string))
        .with_topics(topics);
    conn.send(req, version).await
}

/// Ends the transaction: commit or abort. With transaction version 2 the reply carries
/// the producer id and epoch of the next transaction (KIP-890).
pub async fn end_txn(
    conn: &BrokerConnection,
    txn: TransactionVersion,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
) -> Result<EndTxnResponse, NetError> {
    let version = txn_version(conn, ApiKey::EndTxn, txn, TxnApi::EndTxn)?;
    let req = EndTxnRequest::default()
        .with_transactional_id(txn_id(transactional_id))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
        .with_committed(commit);
    conn.send(req, version).await
}
