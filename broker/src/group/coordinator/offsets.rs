//! Committed offsets: OffsetCommit (plain and transactional), OffsetFetch and their expiry
//! (`offsets.retention.minutes`), apart from membership as Kafka keeps its offset manager apart
//! from its group manager. A commit is written to the store before it is answered.

use super::*;

impl Inner {
    // ----- Offsets ---------------------------------------------------------------------

    pub(super) fn commit(self: &Arc<Self>, req: &CommitRequest) -> Vec<i16> {
        let mut groups = self.lock();
        self.commit_locked(&mut groups, req)
    }

    pub(super) fn commit_locked(
        self: &Arc<Self>,
        groups: &mut HashMap<String, Group>,
        req: &CommitRequest,
    ) -> Vec<i16> {
        let all = |code: i16| vec![code; req.partitions.len()];
        if !groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A member of a generation we do not know: reject, as Kafka.
                return all(E::IllegalGeneration.code());
            }
            // Not using group management: the commit creates an empty group.
            groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms()),
            );
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return all(E::CoordinatorNotAvailable.code());
        };
        if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
            let Some(member) = group.members.get(&req.member_id) else {
                return all(E::UnknownMemberId.code());
            };
            if let (Some(given), Some(known)) = (&req.group_instance_id, &member.group_instance_id)
            {
                if given != known {
                    return all(E::FencedInstanceId.code());
                }
            }
            if req.generation_id != group.generation_id {
                return all(E::IllegalGeneration.code());
            }
        } else if group.state != GroupState::Empty {
            // While the group has members, only they may commit.
            return all(E::UnknownMemberId.code());
        }
        match group.state {
            GroupState::CompletingRebalance => return all(E::RebalanceInProgress.code()),
            GroupState::Dead => return all(E::CoordinatorNotAvailable.code()),
            GroupState::Stable | GroupState::PreparingRebalance => {
                // A commit counts as a sign of life, as in Kafka.
                if let Some(m) = group.members.get(&req.member_id) {
                    let timeout = Duration::from_millis(m.session_timeout_ms);
                    self.schedule_member_expiry(group, &req.member_id, timeout);
                }
            }
            GroupState::Empty => {}
        }
        let now = now_ms();
        let expire =
            (req.retention_time_ms >= 0).then(|| now.saturating_add(req.retention_time_ms));
        let (codes, records) = offset_records(
            self.cfg.offset_metadata_max_bytes,
            &group.id,
            &req.partitions,
            now,
            expire,
        );
        if records.is_empty() {
            return codes;
        }
        let store = &self.store;
        if let Err(e) = store.append(&group.id, &records) {
            tracing::warn!(group = %group.id, "cannot write committed offsets: {e}");
            return codes
                .into_iter()
                .map(|c| if c == 0 { E::NotCoordinator.code() } else { c })
                .collect();
        }
        group
            .offsets
            .extend(records.into_iter().filter_map(StoreRecord::into_commit));
        codes
    }

    /// TxnOffsetCommit under the lock. The member checks are Kafka's
    /// `GroupCoordinator.doTxnCommitOffsets`: an unknown group is created, a given member id
    /// must be a member, a given generation must be the current one.
    pub(super) fn commit_txn_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        req: &TxnCommitRequest,
    ) -> Vec<i16> {
        let all = |code: i16| vec![code; req.partitions.len()];
        let group = groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(req.group_id.clone(), now_ms()));
        if group.state == GroupState::Dead {
            return all(E::CoordinatorNotAvailable.code());
        }
        if let Some(given) = &req.group_instance_id {
            let fenced = group
                .members
                .values()
                .any(|m| m.group_instance_id.as_ref() == Some(given) && m.id != req.member_id);
            if fenced {
                return all(E::FencedInstanceId.code());
            }
        }
        if !req.member_id.is_empty() && !group.members.contains_key(&req.member_id) {
            return all(E::UnknownMemberId.code());
        }
        if req.generation_id >= 0 && req.generation_id != group.generation_id {
            return all(E::IllegalGeneration.code());
        }
        let now = now_ms();
        let (codes, records) = offset_records(
            self.cfg.offset_metadata_max_bytes,
            &group.id,
            &req.partitions,
            now,
            None,
        );
        if records.is_empty() {
            return codes;
        }
        let store = &self.store;
        if let Err(e) =
            store.append_transactional(&group.id, req.producer_id, req.producer_epoch, &records)
        {
            tracing::warn!(group = %group.id, producer_id = req.producer_id, "cannot write transactional offsets: {e}");
            return codes
                .into_iter()
                .map(|c| if c == 0 { E::NotCoordinator.code() } else { c })
                .collect();
        }
        let pending = group
            .pending_txn_offsets
            .entry(req.producer_id)
            .or_default();
        pending.producer_epoch = req.producer_epoch;
        pending
            .offsets
            .extend(records.into_iter().filter_map(StoreRecord::into_commit));
        codes
    }

    #[allow(clippy::type_complexity)]
    pub(super) fn fetch(
        &self,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<Vec<(String, i32, Option<CommittedOffset>)>, i16> {
        let groups = self.lock();
        let group = groups.get(group_id);
        Ok(match partitions {
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), v)| (t.clone(), *p, Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
            Some(wanted) => wanted
                .iter()
                .flat_map(|(topic, parts)| {
                    parts.iter().map(move |p| {
                        let v = group.and_then(|g| g.offsets.get(&(topic.clone(), *p)).cloned());
                        (topic.clone(), *p, v)
                    })
                })
                .collect(),
        })
    }

    pub(super) fn expire_offsets(&self, now: i64) -> usize {
        let retention_ms = (self.cfg.offsets_retention_minutes as i64).saturating_mul(60_000);
        let mut groups = self.lock();
        let mut expired = 0;
        let mut forget = Vec::new();
        for group in groups.values_mut() {
            // Kafka (2.1+): offsets of a group with members never expire by retention; an empty
            // group's offsets expire `retention` after it became empty (or, for groups that
            // never used group management, after the commit). Explicit expiry always applies.
            let base_empty = (group.state == GroupState::Empty && group.protocol_type.is_some())
                .then_some(group.state_timestamp_ms);
            let gone: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, v)| match v.expire_timestamp_ms {
                    Some(t) => now >= t,
                    None => match (group.state, base_empty) {
                        (GroupState::Empty, Some(base)) => now >= base.saturating_add(retention_ms),
                        (GroupState::Empty, None) => {
                            now >= v.commit_timestamp_ms.saturating_add(retention_ms)
                        }
                        _ => false,
                    },
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !gone.is_empty() {
                let records: Vec<StoreRecord> = gone
                    .iter()
                    .map(|(t, p)| StoreRecord::Offset {
                        group: group.id.clone(),
                        topic: t.clone(),
                        partition: *p,
                        value: None,
                    })
                    .collect();
                let store = &self.store;
                if let Err(e) = store.append(&group.id, &records) {
                    tracing::warn!(group = %group.id, "cannot write offset tombstones: {e}");
                    continue;
                }
                for k in &gone {
                    group.offsets.remove(k);
                }
                expired += gone.len();
            }
            if group.is_disposable() {
                forget.push(group.id.clone());
            }
        }
        for id in forget {
            let store = &self.store;
            let tombstone = StoreRecord::Group {
                group: id.clone(),
                value: None,
            };
            if let Err(e) = store.append(&id, &[tombstone]) {
                tracing::warn!(group = %id, "cannot write group tombstone: {e}");
                continue;
            }
            groups.remove(&id);
        }
        expired
    }
}
