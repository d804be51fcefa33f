//! Membership and rebalancing: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, and the timers that
//! expire members and end rebalances (Kafka's classic protocol, as its `GroupCoordinator`
//! runs it). Committed offsets are apart, in [`super::offsets`]; both work on the groups behind
//! the coordinator's one lock.

use super::*;

impl Inner {
    // ----- JoinGroup -------------------------------------------------------------------

    pub(super) fn join(self: &Arc<Self>, req: JoinRequest) -> Pending<JoinOutcome> {
        if req.group_id.is_empty() {
            return Pending::Ready(JoinOutcome::error(req.member_id, E::InvalidGroupId.code()));
        }
        let session = i64::from(req.session_timeout_ms);
        if session < self.cfg.min_session_timeout_ms as i64
            || session > self.cfg.max_session_timeout_ms as i64
        {
            return Pending::Ready(JoinOutcome::error(
                req.member_id,
                E::InvalidSessionTimeout.code(),
            ));
        }
        let mut groups = self.lock();
        let unknown_member = req.member_id.is_empty();
        if !groups.contains_key(&req.group_id) {
            // Only a new member may create a group; a known member id for a group we do not
            // have (e.g. the group expired) must start over.
            if !unknown_member {
                return Pending::Ready(JoinOutcome::error(
                    req.member_id,
                    E::UnknownMemberId.code(),
                ));
            }
            groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms()),
            );
        }
        let Some(group) = groups.get_mut(&req.group_id) else {
            return Pending::Ready(JoinOutcome::error(req.member_id, E::UnknownMemberId.code()));
        };
        let out = if unknown_member {
            self.join_unknown_member(group, req)
        } else {
            self.join_known_member(group, req)
        };
        if group.state == GroupState::PreparingRebalance {
            self.try_complete_join(group);
        }
        out
    }

    pub(super) fn join_unknown_member(
        self: &Arc<Self>,
        group: &mut Group,
        req: JoinRequest,
    ) -> Pending<JoinOutcome> {
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Pending::Ready(JoinOutcome::error(
                String::new(),
                E::InconsistentGroupProtocol.code(),
            ));
        }
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let member_id = format!("{prefix}-{}", Uuid::new_v4());
        if let Some(instance) = &req.group_instance_id {
            // Static member coming back with a new incarnation: the old one is fenced and the
            // new one joins without the MEMBER_ID_REQUIRED round trip, as in Kafka.
            if let Some(old) = group.member_by_instance(instance).map(|m| m.id.clone()) {
                let keeps_protocol = group
                    .protocol_name
                    .as_ref()
                    .is_some_and(|p| req.protocols.iter().any(|x| &x.name == p));
                if group.state == GroupState::Stable && keeps_protocol {
                    return Pending::Ready(self.replace_static_member(group, &old, member_id, req));
                }
                if let Some(mut m) = group.remove_member(&old) {
                    if let Some(tx) = m.join_waiter.take() {
                        let _ =
                            tx.send(JoinOutcome::error(old.clone(), E::FencedInstanceId.code()));
                    }
                    if let Some(tx) = m.sync_waiter.take() {
                        let _ = tx.send(SyncOutcome::error(E::FencedInstanceId.code()));
                    }
                }
            }
            return Pending::Wait(self.add_member_and_rebalance(group, member_id, req));
        }
        if req.require_known_member_id {
            group.pending_members.insert(member_id.clone());
            self.schedule_pending_member_expiry(
                group,
                &member_id,
                Duration::from_millis(req.session_timeout_ms as u64),
            );
            return Pending::Ready(JoinOutcome::error(member_id, E::MemberIdRequired.code()));
        }
        Pending::Wait(self.add_member_and_rebalance(group, member_id, req))
    }

    /// A static member's new incarnation joining a stable group that keeps its protocol
    /// (Kafka's `updateStaticMemberAndRebalance`): it takes the old member's place and
    /// assignment without a rebalance, and the old incarnation is fenced. The answer names the
    /// leader as it was before (the old id when the old incarnation led), so the new one does
    /// not run an assignment a stable group would never hand out.
    pub(super) fn replace_static_member(
        self: &Arc<Self>,
        group: &mut Group,
        old: &str,
        member_id: String,
        req: JoinRequest,
    ) -> JoinOutcome {
        let current_leader = group.leader_id.clone().unwrap_or_default();
        let Some(mut m) = group.members.shift_remove(old) else {
            return JoinOutcome::error(member_id, E::UnknownMemberId.code());
        };
        if let Some(tx) = m.join_waiter.take() {
            let _ = tx.send(JoinOutcome::error(
                old.to_owned(),
                E::FencedInstanceId.code(),
            ));
        }
        if let Some(tx) = m.sync_waiter.take() {
            let _ = tx.send(SyncOutcome::error(E::FencedInstanceId.code()));
        }
        m.id = member_id.clone();
        m.protocols = req.protocols;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout_ms = req.session_timeout_ms.max(0) as u64;
        m.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as u64;
        m.timer_wakes_at = None;
        let session = Duration::from_millis(m.session_timeout_ms);
        group.members.insert(member_id.clone(), m);
        if group.leader_id.as_deref() == Some(old) {
            group.leader_id = Some(member_id.clone());
        }
        self.schedule_member_expiry(group, &member_id, session);
        if let Err(e) = self.store_group(group) {
            tracing::warn!(group = %group.id, "cannot store group metadata: {e}");
        }
        tracing::info!(group = %group.id, old, new = %member_id,
            "static member replaced without a rebalance");
        JoinOutcome {
            error_code: 0,
            generation_id: group.generation_id,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            leader_id: current_leader,
            member_id,
            members: Vec::new(),
        }
    }

    pub(super) fn join_known_member(
        self: &Arc<Self>,
        group: &mut Group,
        req: JoinRequest,
    ) -> Pending<JoinOutcome> {
        let member_id = req.member_id.clone();
        if !group.supports_protocols(&req.protocol_type, &req.protocols) {
            return Pending::Ready(JoinOutcome::error(
                member_id,
                E::InconsistentGroupProtocol.code(),
            ));
        }
        if group.pending_members.remove(&member_id) {
            return Pending::Wait(self.add_member_and_rebalance(group, member_id, req));
        }
        let Some(member) = group.members.get(&member_id) else {
            return Pending::Ready(JoinOutcome::error(member_id, E::UnknownMemberId.code()));
        };
        let is_leader = group.leader_id.as_deref() == Some(member_id.as_str());
        let matches = member.matches(&req.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                Pending::Wait(self.update_member_and_rebalance(group, req))
            }
            GroupState::CompletingRebalance if matches => {
                // The member lost our JoinGroup answer: give it the current generation again.
                Pending::Ready(current_generation(group, &member_id, is_leader))
            }
            GroupState::Stable if !is_leader && matches => {
                Pending::Ready(current_generation(group, &member_id, false))
            }
            // The leader rejoining a stable group asks for a rebalance (e.g. topic metadata
            // changed); so does any member whose protocols changed.
            GroupState::CompletingRebalance | GroupState::Stable => {
                Pending::Wait(self.update_member_and_rebalance(group, req))
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(JoinOutcome::error(member_id, E::UnknownMemberId.code()))
            }
        }
    }

    pub(super) fn add_member_and_rebalance(
        self: &Arc<Self>,
        group: &mut Group,
        member_id: String,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if group.state == GroupState::PreparingRebalance && group.generation_id == 0 {
            group.new_member_added = true;
        }
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        if group.leader_id.is_none() {
            group.leader_id = Some(member_id.clone());
        }
        let member = Member {
            id: member_id.clone(),
            group_instance_id: req.group_instance_id,
            client_id: req.client_id,
            client_host: req.client_host,
            session_timeout_ms: req.session_timeout_ms.max(0) as u64,
            rebalance_timeout_ms: req.rebalance_timeout_ms.max(0) as u64,
            protocols: req.protocols,
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            is_new: true,
            deadline: Instant::now() + NEW_MEMBER_JOIN_TIMEOUT,
            timer_id: 0,
            timer_wakes_at: None,
        };
        group.members.insert(member_id.clone(), member);
        self.schedule_member_expiry(group, &member_id, NEW_MEMBER_JOIN_TIMEOUT);
        self.maybe_prepare_rebalance(group);
        rx
    }

    pub(super) fn update_member_and_rebalance(
        self: &Arc<Self>,
        group: &mut Group,
        req: JoinRequest,
    ) -> oneshot::Receiver<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(member) = group.members.get_mut(&req.member_id) {
            member.protocols = req.protocols;
            member.session_timeout_ms = req.session_timeout_ms.max(0) as u64;
            member.rebalance_timeout_ms = req.rebalance_timeout_ms.max(0) as u64;
            member.client_host = req.client_host;
            if let Some(old) = member.join_waiter.replace(tx) {
                // A retried JoinGroup supersedes the earlier one.
                let _ = old.send(JoinOutcome::error(
                    req.member_id.clone(),
                    E::RebalanceInProgress.code(),
                ));
            }
        }
        self.maybe_prepare_rebalance(group);
        rx
    }

    pub(super) fn maybe_prepare_rebalance(self: &Arc<Self>, group: &mut Group) {
        if matches!(
            group.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(group);
        }
    }

    pub(super) fn prepare_rebalance(self: &Arc<Self>, group: &mut Group) {
        if group.state == GroupState::CompletingRebalance {
            // Members waiting for their assignment must rejoin instead.
            reset_and_propagate_assignment_error(group, E::RebalanceInProgress.code());
        }
        group.pending_sync.clear();
        group.sync_epoch += 1;
        let was_empty = group.state == GroupState::Empty;
        group.transition(GroupState::PreparingRebalance, now_ms());
        group.rebalance_epoch += 1;
        let timeout = group.rebalance_timeout_ms();
        if was_empty {
            let delay = self.cfg.initial_rebalance_delay_ms;
            group.new_member_added = false;
            group.initial_delay_remaining_ms = Some(timeout.saturating_sub(delay));
            self.schedule_rebalance_timer(group, Duration::from_millis(delay));
        } else {
            group.initial_delay_remaining_ms = None;
            self.schedule_rebalance_timer(group, Duration::from_millis(timeout));
            self.try_complete_join(group);
        }
        tracing::info!(
            group = %group.id,
            generation = group.generation_id,
            members = group.members.len(),
            "preparing to rebalance"
        );
    }

    /// Completes the join phase now if every member is back (not during the initial delay,
    /// which only ends by its timer).
    pub(super) fn try_complete_join(self: &Arc<Self>, group: &mut Group) {
        if group.state == GroupState::PreparingRebalance
            && group.initial_delay_remaining_ms.is_none()
            && group.all_members_joined()
        {
            self.complete_join(group);
        }
    }

    /// The rebalance timer fired.
    pub(super) fn on_rebalance_timer(self: &Arc<Self>, group: &mut Group) {
        if let Some(remaining) = group.initial_delay_remaining_ms {
            if group.new_member_added && remaining > 0 {
                // Members keep arriving: wait a little longer, within the rebalance timeout.
                group.new_member_added = false;
                let delay = self.cfg.initial_rebalance_delay_ms.min(remaining);
                group.initial_delay_remaining_ms = Some(remaining - delay);
                group.rebalance_epoch += 1;
                self.schedule_rebalance_timer(group, Duration::from_millis(delay));
                return;
            }
            group.initial_delay_remaining_ms = None;
        }
        self.complete_join(group);
    }

    pub(super) fn complete_join(self: &Arc<Self>, group: &mut Group) {
        group.rebalance_epoch += 1;
        group.initial_delay_remaining_ms = None;
        // Members that did not rejoin in time are out.
        let gone: Vec<String> = group
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(group = %group.id, member = %id, "member did not rejoin in time; removed");
            group.remove_member(&id);
        }
        if !group.elect_joined_leader() && !group.members.is_empty() {
            let timeout = group.rebalance_timeout_ms();
            self.schedule_rebalance_timer(group, Duration::from_millis(timeout));
            return;
        }
        group.init_next_generation(now_ms());
        if group.state == GroupState::Empty {
            tracing::info!(group = %group.id, generation = group.generation_id, "group is now empty");
            if let Err(e) = self.store_group(group) {
                tracing::warn!(group = %group.id, "cannot store group metadata: {e}");
            }
            return;
        }
        tracing::info!(
            group = %group.id,
            generation = group.generation_id,
            members = group.members.len(),
            protocol = group.protocol_name.as_deref().unwrap_or(""),
            "stabilized group"
        );
        let all = group.member_metadata();
        let leader = group.leader_id.clone().unwrap_or_default();
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in &ids {
            let out = JoinOutcome {
                error_code: 0,
                generation_id: group.generation_id,
                protocol_type: group.protocol_type.clone(),
                protocol_name: group.protocol_name.clone(),
                leader_id: leader.clone(),
                member_id: id.clone(),
                members: if *id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
            };
            if let Some(m) = group.members.get_mut(id) {
                if let Some(tx) = m.join_waiter.take() {
                    let _ = tx.send(out);
                }
                m.is_new = false;
                let timeout = m.session_timeout_ms;
                self.schedule_member_expiry(group, id, Duration::from_millis(timeout));
            }
        }
        group.pending_sync = ids.into_iter().collect();
        group.sync_epoch += 1;
        let timeout = group.rebalance_timeout_ms();
        self.schedule_sync_expiry(group, Duration::from_millis(timeout));
    }

    // ----- SyncGroup -------------------------------------------------------------------

    pub(super) fn sync(self: &Arc<Self>, req: SyncRequest) -> Pending<SyncOutcome> {
        let ready = |code: i16| Pending::Ready(SyncOutcome::error(code));
        if req.group_id.is_empty() {
            return ready(E::InvalidGroupId.code());
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(&req.group_id) else {
            return ready(E::UnknownMemberId.code());
        };
        if !group.members.contains_key(&req.member_id) {
            return ready(E::UnknownMemberId.code());
        }
        if req.generation_id != group.generation_id {
            return ready(E::IllegalGeneration.code());
        }
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| group.protocol_type.as_ref() != Some(t))
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| group.protocol_name.as_ref() != Some(n))
        {
            return ready(E::InconsistentGroupProtocol.code());
        }
        match group.state {
            GroupState::Empty => ready(E::UnknownMemberId.code()),
            GroupState::Dead => ready(E::CoordinatorNotAvailable.code()),
            GroupState::PreparingRebalance => ready(E::RebalanceInProgress.code()),
            GroupState::Stable => {
                group.pending_sync.remove(&req.member_id);
                let Some(member) = group.members.get(&req.member_id) else {
                    return ready(E::UnknownMemberId.code());
                };
                let out = SyncOutcome {
                    error_code: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                let timeout = member.session_timeout_ms;
                self.schedule_member_expiry(group, &req.member_id, Duration::from_millis(timeout));
                Pending::Ready(out)
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(&req.member_id) {
                    m.sync_waiter = Some(tx);
                }
                group.pending_sync.remove(&req.member_id);
                if group.leader_id.as_deref() == Some(req.member_id.as_str()) {
                    let mut given: HashMap<String, Bytes> = req.assignments.into_iter().collect();
                    for m in group.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    match self.store_group(group) {
                        Ok(()) => {
                            self.propagate_assignment(group);
                            group.transition(GroupState::Stable, now_ms());
                            tracing::info!(
                                group = %group.id,
                                generation = group.generation_id,
                                "assignment received; group is stable"
                            );
                        }
                        Err(e) => {
                            tracing::warn!(group = %group.id, "cannot store group metadata: {e}");
                            reset_and_propagate_assignment_error(
                                group,
                                E::CoordinatorNotAvailable.code(),
                            );
                            self.maybe_prepare_rebalance(group);
                        }
                    }
                }
                Pending::Wait(rx)
            }
        }
    }

    pub(super) fn propagate_assignment(self: &Arc<Self>, group: &mut Group) {
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let Some(m) = group.members.get_mut(&id) else {
                continue;
            };
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send(SyncOutcome {
                    error_code: 0,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                });
                let timeout = m.session_timeout_ms;
                self.schedule_member_expiry(group, &id, Duration::from_millis(timeout));
            }
        }
    }

    // ----- Heartbeat, LeaveGroup -------------------------------------------------------

    pub(super) fn heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        generation_id: i32,
    ) -> i16 {
        if group_id.is_empty() {
            return E::InvalidGroupId.code();
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return E::UnknownMemberId.code();
        };
        let Some(member) = group.members.get(member_id) else {
            return E::UnknownMemberId.code();
        };
        if generation_id != group.generation_id {
            return E::IllegalGeneration.code();
        }
        let timeout = Duration::from_millis(member.session_timeout_ms);
        match group.state {
            GroupState::Empty => E::UnknownMemberId.code(),
            GroupState::Dead => E::CoordinatorNotAvailable.code(),
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.schedule_member_expiry(group, member_id, timeout);
                0
            }
            GroupState::PreparingRebalance => {
                self.schedule_member_expiry(group, member_id, timeout);
                E::RebalanceInProgress.code()
            }
        }
    }

    pub(super) fn leave(
        self: &Arc<Self>,
        group_id: &str,
        leaving: &[LeavingMember],
    ) -> (i16, Vec<i16>) {
        if group_id.is_empty() {
            return (
                E::InvalidGroupId.code(),
                vec![E::InvalidGroupId.code(); leaving.len()],
            );
        }
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return (0, vec![E::UnknownMemberId.code(); leaving.len()]);
        };
        let mut codes = Vec::with_capacity(leaving.len());
        for l in leaving {
            let member_id = if l.member_id.is_empty() {
                l.group_instance_id
                    .as_deref()
                    .and_then(|i| group.member_by_instance(i))
                    .map(|m| m.id.clone())
            } else {
                Some(l.member_id.clone())
            };
            let Some(member_id) = member_id else {
                codes.push(E::UnknownMemberId.code());
                continue;
            };
            if group.pending_members.remove(&member_id) {
                if group.state == GroupState::PreparingRebalance {
                    self.try_complete_join(group);
                }
                codes.push(0);
                continue;
            }
            let Some(member) = group.members.get(&member_id) else {
                codes.push(E::UnknownMemberId.code());
                continue;
            };
            if let (Some(given), Some(known)) = (&l.group_instance_id, &member.group_instance_id) {
                if given != known {
                    codes.push(E::FencedInstanceId.code());
                    continue;
                }
            }
            tracing::info!(group = %group.id, member = %member_id, "member left the group");
            self.remove_member_and_update_group(group, &member_id);
            codes.push(0);
        }
        (0, codes)
    }

    /// Removes a member (it left or expired) and moves the group on.
    pub(super) fn remove_member_and_update_group(
        self: &Arc<Self>,
        group: &mut Group,
        member_id: &str,
    ) {
        if let Some(mut m) = group.remove_member(member_id) {
            if let Some(tx) = m.join_waiter.take() {
                let _ = tx.send(JoinOutcome::error(String::new(), E::UnknownMemberId.code()));
            }
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send(SyncOutcome::error(E::UnknownMemberId.code()));
            }
        }
        match group.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(group)
            }
            GroupState::PreparingRebalance => self.try_complete_join(group),
        }
    }

    // ----- Timers ----------------------------------------------------------------------

    /// Pushes the member's expiry to `timeout` from now, starting its expiry task if needed.
    pub(super) fn schedule_member_expiry(
        self: &Arc<Self>,
        group: &mut Group,
        member_id: &str,
        timeout: Duration,
    ) {
        let Some(member) = group.members.get_mut(member_id) else {
            return;
        };
        member.deadline = Instant::now() + timeout;
        if member
            .timer_wakes_at
            .is_some_and(|wakes| wakes <= member.deadline)
        {
            // The running task wakes up in time and re-reads the deadline.
            return;
        }
        member.timer_id += 1;
        member.timer_wakes_at = Some(member.deadline);
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        let member_id = member_id.to_owned();
        tokio::spawn(member_expiry_task(
            weak,
            group_id,
            member_id,
            member.timer_id,
            member.deadline,
        ));
    }

    pub(super) fn schedule_rebalance_timer(self: &Arc<Self>, group: &Group, delay: Duration) {
        let epoch = group.rebalance_epoch;
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut groups = inner.lock();
            if let Some(group) = groups.get_mut(&group_id) {
                if group.rebalance_epoch == epoch && group.state == GroupState::PreparingRebalance {
                    inner.on_rebalance_timer(group);
                }
            }
        });
    }

    pub(super) fn schedule_sync_expiry(self: &Arc<Self>, group: &Group, delay: Duration) {
        let epoch = group.sync_epoch;
        let generation = group.generation_id;
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut groups = inner.lock();
            let Some(group) = groups.get_mut(&group_id) else {
                return;
            };
            if group.sync_epoch != epoch
                || group.generation_id != generation
                || !matches!(
                    group.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                )
                || group.pending_sync.is_empty()
            {
                return;
            }
            let missing: Vec<String> = group.pending_sync.drain().collect();
            for id in &missing {
                tracing::info!(group = %group.id, member = %id, "member did not sync in time; removed");
                if let Some(mut m) = group.remove_member(id) {
                    if let Some(tx) = m.sync_waiter.take() {
                        let _ = tx.send(SyncOutcome::error(E::UnknownMemberId.code()));
                    }
                }
            }
            inner.prepare_rebalance(group);
        });
    }

    pub(super) fn schedule_pending_member_expiry(
        self: &Arc<Self>,
        group: &Group,
        member_id: &str,
        delay: Duration,
    ) {
        let weak = Arc::downgrade(self);
        let group_id = group.id.clone();
        let member_id = member_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let Some(inner) = weak.upgrade() else { return };
            let mut groups = inner.lock();
            if let Some(group) = groups.get_mut(&group_id) {
                if group.pending_members.remove(&member_id)
                    && group.state == GroupState::PreparingRebalance
                {
                    inner.try_complete_join(group);
                }
            }
        });
    }
}

/// Watches one member's deadline until it expires (then removes it) or the member is gone.
async fn member_expiry_task(
    weak: Weak<Inner>,
    group_id: String,
    member_id: String,
    timer_id: u64,
    first_deadline: Instant,
) {
    let mut deadline = first_deadline;
    loop {
        tokio::time::sleep_until(deadline).await;
        let Some(inner) = weak.upgrade() else { return };
        let mut groups = inner.lock();
        let Some(group) = groups.get_mut(&group_id) else {
            return;
        };
        let Some(member) = group.members.get_mut(&member_id) else {
            return;
        };
        if member.timer_id != timer_id {
            return;
        }
        let now = Instant::now();
        if now < member.deadline {
            deadline = member.deadline;
            member.timer_wakes_at = Some(deadline);
            continue;
        }
        if !member.is_new && (member.awaiting_join() || member.awaiting_sync()) {
            // Waiting in a rebalance counts as alive; the rebalance has its own timeout.
            member.deadline = now + Duration::from_millis(member.session_timeout_ms);
            deadline = member.deadline;
            member.timer_wakes_at = Some(deadline);
            continue;
        }
        member.timer_wakes_at = None;
        tracing::info!(group = %group_id, member = %member_id, "member session expired");
        inner.remove_member_and_update_group(group, &member_id);
        return;
    }
}

/// The JoinGroup answer for a member of the current generation (after a lost response).
fn current_generation(group: &Group, member_id: &str, is_leader: bool) -> JoinOutcome {
    JoinOutcome {
        error_code: 0,
        generation_id: group.generation_id,
        protocol_type: group.protocol_type.clone(),
        protocol_name: group.protocol_name.clone(),
        leader_id: group.leader_id.clone().unwrap_or_default(),
        member_id: member_id.to_owned(),
        members: if is_leader {
            group.member_metadata()
        } else {
            Vec::new()
        },
    }
}

/// Clears assignments and answers waiting SyncGroups with `code`.
fn reset_and_propagate_assignment_error(group: &mut Group, code: i16) {
    for m in group.members.values_mut() {
        m.assignment = Bytes::new();
        if let Some(tx) = m.sync_waiter.take() {
            let _ = tx.send(SyncOutcome::error(code));
        }
    }
}
