//! The key/value formats of `__consumer_offsets` records, byte for byte as Apache Kafka writes
//! them (`OffsetCommitKey`/`OffsetCommitValue`, `GroupMetadataKey`/`GroupMetadataValue`), so
//! the internal log reads like Kafka's and tools that decode Kafka's formats work on it.
//!
//! A key's leading version says what the record is: 0 or 1 = a committed offset, 2 = group
//! metadata. A null value is a tombstone (the offset or group was deleted).

use bytes::{BufMut, Bytes, BytesMut};

use crate::record_fields::{
    get_bytes, get_i16, get_i32, get_i64, get_nullable_str, get_str, put_bytes, put_nullable_str,
    put_str,
};

use super::state::CommittedOffset;

/// Group metadata as stored (Kafka's `GroupMetadataValue` v3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSnapshot {
    /// Protocol type ("" for groups that never had members).
    pub(crate) protocol_type: String,
    /// Generation.
    pub(crate) generation_id: i32,
    /// Chosen protocol.
    pub(crate) protocol_name: Option<String>,
    /// Leader member id.
    pub(crate) leader_id: Option<String>,
    /// When the group entered its state (ms since the epoch).
    pub(crate) state_timestamp_ms: i64,
    /// Members of the generation.
    pub(crate) members: Vec<MemberSnapshot>,
}

/// One member in a [`GroupSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberSnapshot {
    /// Member id.
    pub(crate) member_id: String,
    /// Static membership id.
    pub(crate) group_instance_id: Option<String>,
    /// Client id.
    pub(crate) client_id: String,
    /// Client host.
    pub(crate) client_host: String,
    /// Rebalance timeout (ms).
    pub(crate) rebalance_timeout_ms: i32,
    /// Session timeout (ms).
    pub(crate) session_timeout_ms: i32,
    /// Metadata for the chosen protocol.
    pub(crate) subscription: Bytes,
    /// Assignment.
    pub(crate) assignment: Bytes,
}

/// One record of the offsets log, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreRecord {
    /// A committed offset (`None` = deleted).
    Offset {
        /// Group id.
        group: String,
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The commit, or `None` for a tombstone.
        value: Option<CommittedOffset>,
    },
    /// Group metadata (`None` = the group was deleted).
    Group {
        /// Group id.
        group: String,
        /// The metadata, or `None` for a tombstone.
        value: Option<GroupSnapshot>,
    },
}

impl StoreRecord {
    /// A committed offset as `((topic, partition), commit)`; `None` for anything else (group
    /// metadata, a tombstone).
    pub(crate) fn into_commit(self) -> Option<((String, i32), CommittedOffset)> {
        match self {
            StoreRecord::Offset {
                topic,
                partition,
                value: Some(v),
                ..
            } => Some(((topic, partition), v)),
            _ => None,
        }
    }
}

impl StoreRecord {
    /// The group the record belongs to.
    #[cfg(test)]
    pub(crate) fn group(&self) -> &str {
        match self {
            StoreRecord::Offset { group, .. } | StoreRecord::Group { group, .. } => group,
        }
    }

    /// Encodes the record as (key, value) bytes.
    pub(crate) fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            StoreRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(1);
                put_str(&mut key, group);
                put_str(&mut key, topic);
                key.put_i32(*partition);
                let value = value.as_ref().map(|v| {
                    let mut b = BytesMut::new();
                    match v.expire_timestamp_ms {
                        Some(expire) => {
                            b.put_i16(1);
                            b.put_i64(v.offset);
                            put_str(&mut b, &v.metadata);
                            b.put_i64(v.commit_timestamp_ms);
                            b.put_i64(expire);
                        }
                        None => {
                            b.put_i16(3);
                            b.put_i64(v.offset);
                            b.put_i32(v.leader_epoch);
                            put_str(&mut b, &v.metadata);
                            b.put_i64(v.commit_timestamp_ms);
                        }
                    }
                    b.freeze()
                });
                (key.freeze(), value)
            }
            StoreRecord::Group { group, value } => {
                key.put_i16(2);
                put_str(&mut key, group);
                let value = value.as_ref().map(|g| {
                    let mut b = BytesMut::new();
                    b.put_i16(3);
                    put_str(&mut b, &g.protocol_type);
                    b.put_i32(g.generation_id);
                    put_nullable_str(&mut b, g.protocol_name.as_deref());
                    put_nullable_str(&mut b, g.leader_id.as_deref());
                    b.put_i64(g.state_timestamp_ms);
                    b.put_i32(g.members.len() as i32);
                    for m in &g.members {
                        put_str(&mut b, &m.member_id);
                        put_nullable_str(&mut b, m.group_instance_id.as_deref());
                        put_str(&mut b, &m.client_id);
                        put_str(&mut b, &m.client_host);
                        b.put_i32(m.rebalance_timeout_ms);
                        b.put_i32(m.session_timeout_ms);
                        put_bytes(&mut b, &m.subscription);
                        put_bytes(&mut b, &m.assignment);
                    }
                    b.freeze()
                });
                (key.freeze(), value)
            }
        }
    }

    /// Decodes a record; `None` when the bytes are not a record this broker understands.
    pub(crate) fn decode(key: &[u8], value: Option<&[u8]>) -> Option<StoreRecord> {
        let mut k = key;
        let key_version = get_i16(&mut k)?;
        match key_version {
            0 | 1 => {
                let group = get_str(&mut k)?;
                let topic = get_str(&mut k)?;
                let partition = get_i32(&mut k)?;
                let value = match value {
                    None => None,
                    Some(mut v) => Some(decode_offset_value(&mut v)?),
                };
                Some(StoreRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                })
            }
            2 => {
                let group = get_str(&mut k)?;
                let value = match value {
                    None => None,
                    Some(mut v) => Some(decode_group_value(&mut v)?),
                };
                Some(StoreRecord::Group { group, value })
            }
            _ => None,
        }
    }
}

fn decode_offset_value(v: &mut &[u8]) -> Option<CommittedOffset> {
    let version = get_i16(v)?;
    let offset = get_i64(v)?;
    let leader_epoch = if version >= 3 { get_i32(v)? } else { -1 };
    let metadata = get_str(v)?;
    let commit_timestamp_ms = get_i64(v)?;
    let expire_timestamp_ms = if version == 1 {
        Some(get_i64(v)?).filter(|t| *t >= 0)
    } else {
        None
    };
    (version <= 4).then_some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
        expire_timestamp_ms,
    })
}

fn decode_group_value(v: &mut &[u8]) -> Option<GroupSnapshot> {
    let version = get_i16(v)?;
    if !(0..=4).contains(&version) {
        return None;
    }
    let protocol_type = get_str(v)?;
    let generation_id = get_i32(v)?;
    let protocol_name = get_nullable_str(v)?;
    let leader_id = get_nullable_str(v)?;
    let state_timestamp_ms = if version >= 2 { get_i64(v)? } else { -1 };
    let count = get_i32(v)?;
    let mut members = Vec::with_capacity(usize::try_from(count).ok()?.min(v.len() / 8));
    for _ in 0..count {
        let member_id = get_str(v)?;
        let group_instance_id = if version >= 3 {
            get_nullable_str(v)?
        } else {
            None
        };
        let client_id = get_str(v)?;
        let client_host = get_str(v)?;
        let rebalance_timeout_ms = if version >= 1 { get_i32(v)? } else { -1 };
        let session_timeout_ms = get_i32(v)?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        let subscription = get_bytes(v)?;
        let assignment = get_bytes(v)?;
        members.push(MemberSnapshot {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupSnapshot {
        protocol_type,
        generation_id,
        protocol_name,
        leader_id,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(r: StoreRecord) {
        let (k, v) = r.encode();
        assert_eq!(StoreRecord::decode(&k, v.as_deref()), Some(r));
    }

    #[test]
    fn offset_records_roundtrip_with_and_without_expiry_and_as_tombstones() {
        let v = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
            expire_timestamp_ms: None,
        };
        roundtrip(StoreRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: Some(v.clone()),
        });
        // The v1 value carries the expiry but no leader epoch.
        roundtrip(StoreRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: Some(CommittedOffset {
                leader_epoch: -1,
                expire_timestamp_ms: Some(1_800_000_000_000),
                ..v
            }),
        });
        roundtrip(StoreRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: None,
        });
    }

    #[test]
    fn group_records_roundtrip() {
        roundtrip(StoreRecord::Group {
            group: "g".into(),
            value: Some(GroupSnapshot {
                protocol_type: "consumer".into(),
                generation_id: 4,
                protocol_name: Some("range".into()),
                leader_id: Some("c-1".into()),
                state_timestamp_ms: 5,
                members: vec![MemberSnapshot {
                    member_id: "c-1".into(),
                    group_instance_id: Some("i".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 30_000,
                    session_timeout_ms: 10_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        });
        roundtrip(StoreRecord::Group {
            group: "g".into(),
            value: None,
        });
    }

    #[test]
    fn offset_key_layout_matches_kafka() {
        let (k, v) = StoreRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            value: Some(CommittedOffset {
                offset: 2,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 3,
                expire_timestamp_ms: None,
            }),
        }
        .encode();
        assert_eq!(&k[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        let v = v.unwrap();
        assert_eq!(&v[..2], &[0, 3]);
        assert_eq!(v.len(), 2 + 8 + 4 + 2 + 8);
    }

    #[test]
    fn garbage_does_not_decode() {
        assert_eq!(StoreRecord::decode(&[], None), None);
        assert_eq!(StoreRecord::decode(&[0, 9, 0, 0], None), None);
        assert_eq!(StoreRecord::decode(&[0, 1, 0, 5, b'a'], None), None);
        assert_eq!(
            StoreRecord::decode(&[0, 2, 0, 1, b'g'], Some(&[0, 3, 0])),
            None
        );
    }
}
