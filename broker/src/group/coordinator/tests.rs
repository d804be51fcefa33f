//! State-machine tests of the group coordinator, on tokio's paused clock: timers (initial
//! delay, rebalance timeout, session expiry) run instantly and deterministically.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError as E;
use tokio::task::JoinHandle;

use super::*;
use crate::group::GroupConfig;

fn cfg() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        ..GroupConfig::default()
    }
}

/// A coordinator over real `__consumer_offsets` partitions in `dir`, all led by this broker
/// alone (a lone broker's case), their groups replayed from what `dir` holds.
fn local(dir: &std::path::Path) -> GroupCoordinator {
    local_with(dir, cfg())
}

/// [`local`] with `cfg`.
fn local_with(dir: &std::path::Path, cfg: GroupConfig) -> GroupCoordinator {
    use crate::group::store::OFFSETS_TOPIC;
    let n = cfg.offsets_topic_num_partitions;
    let c = GroupCoordinator::new(cfg);
    for i in 0..n {
        let path = dir.join(format!("{OFFSETS_TOPIC}-{i}"));
        let p = crate::partition::Partition::open(
            OFFSETS_TOPIC,
            i,
            &path,
            crate::log::LogConfig::default(),
        )
        .unwrap();
        c.load_partition(i, Arc::new(p)).unwrap();
    }
    c
}

fn protocols(names: &[&str], tag: &str) -> Vec<Protocol> {
    names
        .iter()
        .map(|n| Protocol {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("{tag}/{n}")),
        })
        .collect()
}

fn join_req(group: &str, member_id: &str, client: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.to_owned(),
        member_id: member_id.to_owned(),
        group_instance_id: None,
        client_id: client.to_owned(),
        client_host: "127.0.0.1".to_owned(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".to_owned(),
        protocols: protocols(&["range", "roundrobin"], client),
        require_known_member_id: true,
    }
}

fn sync_req(
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &str)],
) -> SyncRequest {
    SyncRequest {
        group_id: group.to_owned(),
        generation_id: generation,
        member_id: member.to_owned(),
        protocol_type: Some("consumer".to_owned()),
        protocol_name: None,
        assignments: assignments
            .iter()
            .map(|(m, a)| ((*m).to_owned(), Bytes::from((*a).to_owned())))
            .collect(),
    }
}

fn spawn_join(c: &Arc<GroupCoordinator>, req: JoinRequest) -> JoinHandle<JoinOutcome> {
    let c = c.clone();
    tokio::spawn(async move { c.join_group(req).await })
}

fn spawn_sync(c: &Arc<GroupCoordinator>, req: SyncRequest) -> JoinHandle<SyncOutcome> {
    let c = c.clone();
    tokio::spawn(async move { c.sync_group(req).await })
}

/// Joins a new member through the MEMBER_ID_REQUIRED handshake; returns its member id and a
/// handle to the (deferred) second JoinGroup.
async fn handshake(
    c: &Arc<GroupCoordinator>,
    group: &str,
    client: &str,
) -> (String, JoinHandle<JoinOutcome>) {
    let first = c.join_group(join_req(group, "", client)).await;
    assert_eq!(first.error_code, E::MemberIdRequired.code());
    assert!(first.member_id.starts_with(&format!("{client}-")));
    let id = first.member_id.clone();
    (id.clone(), spawn_join(c, join_req(group, &id, client)))
}

/// Lets spawned tasks run (and paused time auto-advance past due timers).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// Forms a stable group of `clients`; returns member ids (in join order) and the generation.
async fn stable_group(
    c: &Arc<GroupCoordinator>,
    group: &str,
    clients: &[&str],
) -> (Vec<String>, i32) {
    let mut ids = Vec::new();
    let mut joins = Vec::new();
    for client in clients {
        let (id, h) = handshake(c, group, client).await;
        ids.push(id);
        joins.push(h);
    }
    let mut outs = Vec::new();
    for h in joins {
        outs.push(h.await.unwrap());
    }
    let generation = outs[0].generation_id;
    let leader = outs[0].leader_id.clone();
    let assignments: Vec<(String, String)> = ids
        .iter()
        .map(|id| (id.clone(), format!("a-{id}")))
        .collect();
    let borrowed: Vec<(&str, &str)> = assignments
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut syncs = Vec::new();
    for id in &ids {
        let a = if *id == leader {
            borrowed.clone()
        } else {
            Vec::new()
        };
        syncs.push(spawn_sync(c, sync_req(group, generation, id, &a)));
    }
    for (s, id) in syncs.into_iter().zip(&ids) {
        let out = s.await.unwrap();
        assert_eq!(out.error_code, 0);
        assert_eq!(out.assignment, Bytes::from(format!("a-{id}")));
    }
    (ids, generation)
}

/// Commits `offset` for partition 0 of topic "t" as `member` of `group` at `generation`.
fn commit_t0(
    c: &GroupCoordinator,
    group: &str,
    member: &str,
    generation: i32,
    offset: i64,
) -> Vec<i16> {
    c.commit_offsets(&CommitRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    })
}

fn state(c: &GroupCoordinator, group: &str) -> Option<GroupState> {
    c.with_group(group, |g| g.state)
}

#[tokio::test(start_paused = true)]
async fn new_member_gets_an_id_with_member_id_required_then_leads_generation_1() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (id, h) = handshake(&c, "g", "client-a").await;
    let out = h.await.unwrap();
    assert_eq!(out.error_code, 0);
    assert_eq!(out.generation_id, 1);
    assert_eq!(out.member_id, id);
    assert_eq!(out.leader_id, id);
    assert_eq!(out.protocol_name.as_deref(), Some("range"));
    assert_eq!(out.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(out.members.len(), 1);
    assert_eq!(out.members[0].metadata, Bytes::from("client-a/range"));
    assert_eq!(state(&c, "g"), Some(GroupState::CompletingRebalance));
}

#[tokio::test(start_paused = true)]
async fn old_versions_join_without_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let mut req = join_req("g", "", "old");
    req.require_known_member_id = false;
    let out = c.join_group(req).await;
    assert_eq!(out.error_code, 0);
    assert!(out.member_id.starts_with("old-"));
    assert_eq!(out.generation_id, 1);
}

#[tokio::test(start_paused = true)]
async fn three_members_share_one_generation_and_only_the_leader_sees_members() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(
        dir.path(),
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            ..GroupConfig::default()
        },
    ));
    let (a, ha) = handshake(&c, "g", "a").await;
    let (b, hb) = handshake(&c, "g", "b").await;
    let (cc, hc) = handshake(&c, "g", "c").await;
    let (oa, ob, oc) = (ha.await.unwrap(), hb.await.unwrap(), hc.await.unwrap());
    for o in [&oa, &ob, &oc] {
        assert_eq!(o.error_code, 0);
        assert_eq!(o.generation_id, 1);
        assert_eq!(o.leader_id, a);
    }
    let ids: Vec<&str> = oa.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(ids, vec![a.as_str(), b.as_str(), cc.as_str()]);
    assert!(ob.members.is_empty() && oc.members.is_empty());

    // Followers wait in SyncGroup until the leader's assignment arrives.
    let sb = spawn_sync(&c, sync_req("g", 1, &b, &[]));
    let sc = spawn_sync(&c, sync_req("g", 1, &cc, &[]));
    settle().await;
    assert!(!sb.is_finished());
    let sa = c
        .sync_group(sync_req("g", 1, &a, &[(&a, "A"), (&b, "B")]))
        .await;
    assert_eq!(sa.assignment, Bytes::from("A"));
    assert_eq!(sb.await.unwrap().assignment, Bytes::from("B"));
    // No assignment for c: an empty one.
    let oc = sc.await.unwrap();
    assert_eq!(oc.error_code, 0);
    assert!(oc.assignment.is_empty());
    assert_eq!(state(&c, "g"), Some(GroupState::Stable));
    let d = c.describe_group("g");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.protocol, "range");
    assert_eq!(d.members.len(), 3);
    assert_eq!(d.members[1].assignment, Bytes::from("B"));
}

#[tokio::test(start_paused = true)]
async fn initial_delay_waits_for_more_members() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(
        dir.path(),
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            ..GroupConfig::default()
        },
    ));
    let (_a, ha) = handshake(&c, "g", "a").await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(!ha.is_finished());
    // A member arriving during the delay extends it.
    let (_b, hb) = handshake(&c, "g", "b").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!ha.is_finished(), "delay should have been extended");
    let (oa, ob) = (ha.await.unwrap(), hb.await.unwrap());
    assert_eq!(oa.generation_id, 1);
    assert_eq!(ob.generation_id, 1);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_errors_follow_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a", "b"]).await;
    assert_eq!(c.heartbeat("g", &ids[0], generation), 0);
    assert_eq!(
        c.heartbeat("g", &ids[0], generation + 1),
        E::IllegalGeneration.code()
    );
    assert_eq!(
        c.heartbeat("g", "nobody", generation),
        E::UnknownMemberId.code()
    );
    assert_eq!(
        c.heartbeat("nogroup", &ids[0], generation),
        E::UnknownMemberId.code()
    );
    assert_eq!(
        c.heartbeat("", &ids[0], generation),
        E::InvalidGroupId.code()
    );
    // A new member starts a rebalance: the others learn it from their heartbeat.
    let (_x, hx) = handshake(&c, "g", "x").await;
    settle().await;
    assert_eq!(
        c.heartbeat("g", &ids[1], generation),
        E::RebalanceInProgress.code()
    );
    // They rejoin; the generation moves on.
    let ra = spawn_join(&c, join_req("g", &ids[0], "a"));
    let rb = spawn_join(&c, join_req("g", &ids[1], "b"));
    let (oa, ob, ox) = (ra.await.unwrap(), rb.await.unwrap(), hx.await.unwrap());
    assert_eq!(oa.generation_id, generation + 1);
    assert_eq!(ob.generation_id, generation + 1);
    assert_eq!(ox.generation_id, generation + 1);
    assert_eq!(oa.leader_id, ids[0]);
    assert_eq!(oa.members.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn join_validation_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let out = c.join_group(join_req("", "", "a")).await;
    assert_eq!(out.error_code, E::InvalidGroupId.code());
    let mut r = join_req("g", "", "a");
    r.session_timeout_ms = 10;
    assert_eq!(
        c.join_group(r).await.error_code,
        E::InvalidSessionTimeout.code()
    );
    let mut r = join_req("g", "", "a");
    r.session_timeout_ms = 1_800_001;
    assert_eq!(
        c.join_group(r).await.error_code,
        E::InvalidSessionTimeout.code()
    );
    // Unknown member id for an unknown group.
    let out = c.join_group(join_req("g2", "ghost", "a")).await;
    assert_eq!(out.error_code, E::UnknownMemberId.code());

    let (_ids, _) = stable_group(&c, "g", &["a"]).await;
    let mut r = join_req("g", "", "b");
    r.protocols = protocols(&["sticky"], "b");
    assert_eq!(
        c.join_group(r).await.error_code,
        E::InconsistentGroupProtocol.code()
    );
    let mut r = join_req("g", "", "b");
    r.protocol_type = "connect".into();
    assert_eq!(
        c.join_group(r).await.error_code,
        E::InconsistentGroupProtocol.code()
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a", "b"]).await;
    // b keeps heartbeating, a goes silent.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert_eq!(c.heartbeat("g", &ids[1], generation), 0);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    settle().await;
    assert!(
        !member_ids(&c, "g").contains(&ids[0]),
        "a should have expired"
    );
    assert_eq!(
        c.heartbeat("g", &ids[1], generation),
        E::RebalanceInProgress.code()
    );
    // b rejoins alone and becomes leader of the next generation.
    let out = c.join_group(join_req("g", &ids[1], "b")).await;
    assert_eq!(out.error_code, 0);
    assert_eq!(out.generation_id, generation + 1);
    assert_eq!(out.leader_id, ids[1]);
    assert_eq!(out.members.len(), 1);
    // The expired member is told it is unknown.
    assert_eq!(
        c.heartbeat("g", &ids[0], generation),
        E::UnknownMemberId.code()
    );
}

#[tokio::test(start_paused = true)]
async fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a", "b"]).await;
    // b keeps heartbeating but a new member comes; a rejoins, b never does.
    let (_x, hx) = handshake(&c, "g", "x").await;
    let ra = spawn_join(&c, join_req("g", &ids[0], "a"));
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        if ra.is_finished() {
            break;
        }
        // Heartbeats during the rebalance keep b's session but do not rejoin it.
        let _ = c.heartbeat("g", &ids[1], generation);
    }
    let (oa, ox) = (ra.await.unwrap(), hx.await.unwrap());
    assert_eq!(oa.generation_id, generation + 1);
    assert_eq!(oa.members.len(), 2);
    assert_eq!(ox.generation_id, generation + 1);
    assert!(!member_ids(&c, "g").contains(&ids[1]));
}

#[tokio::test(start_paused = true)]
async fn leaving_triggers_a_rebalance_and_the_leader_role_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a", "b", "c"]).await;
    let (top, codes) = c.leave_group(
        "g",
        &[LeavingMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
        }],
    );
    assert_eq!((top, codes), (0, vec![0]));
    assert_eq!(state(&c, "g"), Some(GroupState::PreparingRebalance));
    let rb = spawn_join(&c, join_req("g", &ids[1], "b"));
    let rc = spawn_join(&c, join_req("g", &ids[2], "c"));
    let (ob, oc) = (rb.await.unwrap(), rc.await.unwrap());
    assert_eq!(ob.generation_id, generation + 1);
    assert_eq!(ob.leader_id, ids[1]);
    assert_eq!(oc.leader_id, ids[1]);
    assert_eq!(ob.members.len(), 2);
    // Unknown members in a batch get their own error.
    let (_, codes) = c.leave_group(
        "g",
        &[
            LeavingMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: ids[2].clone(),
                group_instance_id: None,
            },
        ],
    );
    assert_eq!(codes, vec![E::UnknownMemberId.code(), 0]);
}

#[tokio::test(start_paused = true)]
async fn last_member_leaving_empties_the_group_but_keeps_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a"]).await;
    let codes = commit_t0(&c, "g", &ids[0], generation, 42);
    assert_eq!(codes, vec![0]);
    c.leave_group(
        "g",
        &[LeavingMember {
            member_id: ids[0].clone(),
            group_instance_id: None,
        }],
    );
    assert_eq!(state(&c, "g"), Some(GroupState::Empty));
    assert_eq!(c.with_group("g", |g| g.generation_id), Some(generation + 1));
    let got = c.fetch_offsets("g", None).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2.as_ref().map(|o| o.offset), Some(42));
    let listed = c.list_groups(&["empty".into()]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "Empty");
    assert!(c.list_groups(&["Stable".into()]).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_follower_waiting_for_a_leader_that_never_syncs_is_told_to_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (a, ha) = handshake(&c, "g", "a").await;
    let (b, hb) = handshake(&c, "g", "b").await;
    let (oa, _ob) = (ha.await.unwrap(), hb.await.unwrap());
    assert_eq!(oa.leader_id, a);
    let sb = spawn_sync(&c, sync_req("g", oa.generation_id, &b, &[]));
    tokio::time::sleep(Duration::from_millis(31_000)).await;
    let out = sb.await.unwrap();
    assert_eq!(out.error_code, E::RebalanceInProgress.code());
    // The leader that never synced is gone.
    assert!(!member_ids(&c, "g").contains(&a));
}

#[tokio::test(start_paused = true)]
async fn sync_errors() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a"]).await;
    let out = c
        .sync_group(sync_req("g", generation + 5, &ids[0], &[]))
        .await;
    assert_eq!(out.error_code, E::IllegalGeneration.code());
    let out = c.sync_group(sync_req("g", generation, "ghost", &[])).await;
    assert_eq!(out.error_code, E::UnknownMemberId.code());
    let mut r = sync_req("g", generation, &ids[0], &[]);
    r.protocol_name = Some("roundrobin".into());
    assert_eq!(
        c.sync_group(r).await.error_code,
        E::InconsistentGroupProtocol.code()
    );
    // Stable: a repeated SyncGroup returns the current assignment.
    let out = c.sync_group(sync_req("g", generation, &ids[0], &[])).await;
    assert_eq!(out.error_code, 0);
    assert_eq!(out.assignment, Bytes::from(format!("a-{}", ids[0])));
}

#[tokio::test(start_paused = true)]
async fn commits_are_checked_against_membership_and_generation() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let commit =
        |group: &str, generation: i32, member: &str, metadata: Option<String>| CommitRequest {
            group_id: group.into(),
            generation_id: generation,
            member_id: member.into(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions: vec![CommitPartition {
                topic: "t".into(),
                partition: 1,
                offset: 7,
                leader_epoch: 3,
                metadata,
            }],
        };
    // A simple consumer (no group management) may commit to a new group.
    assert_eq!(
        c.commit_offsets(&commit("simple", -1, "", Some("m".into()))),
        vec![0]
    );
    let got = c
        .fetch_offsets("simple", Some(&[("t".into(), vec![1, 2])]))
        .unwrap();
    assert_eq!(
        got[0]
            .2
            .as_ref()
            .map(|o| (o.offset, o.leader_epoch, o.metadata.as_str())),
        Some((7, 3, "m"))
    );
    assert!(got[1].2.is_none());
    // An unknown group with a generation: ILLEGAL_GENERATION.
    assert_eq!(
        c.commit_offsets(&commit("nogroup", 3, "x", None)),
        vec![E::IllegalGeneration.code()]
    );
    // Metadata too large.
    let big = "x".repeat(4097);
    assert_eq!(
        c.commit_offsets(&commit("simple", -1, "", Some(big))),
        vec![E::OffsetMetadataTooLarge.code()]
    );

    let (ids, generation) = stable_group(&c, "g", &["a"]).await;
    assert_eq!(
        c.commit_offsets(&commit("g", generation, &ids[0], None)),
        vec![0]
    );
    assert_eq!(
        c.commit_offsets(&commit("g", generation - 1, &ids[0], None)),
        vec![E::IllegalGeneration.code()]
    );
    assert_eq!(
        c.commit_offsets(&commit("g", generation, "ghost", None)),
        vec![E::UnknownMemberId.code()]
    );
    // Outsiders cannot commit while the group has members.
    assert_eq!(
        c.commit_offsets(&commit("g", -1, "", None)),
        vec![E::UnknownMemberId.code()]
    );
    // During CompletingRebalance: REBALANCE_IN_PROGRESS.
    let (_x, hx) = handshake(&c, "g", "x").await;
    let ra = spawn_join(&c, join_req("g", &ids[0], "a"));
    let (oa, _) = (ra.await.unwrap(), hx.await.unwrap());
    assert_eq!(
        c.commit_offsets(&commit("g", oa.generation_id, &ids[0], None)),
        vec![E::RebalanceInProgress.code()]
    );
}

#[tokio::test(start_paused = true)]
async fn explicit_retention_expires_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let req = CommitRequest {
        group_id: "s".into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_time_ms: 1000,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset: 1,
            leader_epoch: -1,
            metadata: None,
        }],
    };
    assert_eq!(c.commit_offsets(&req), vec![0]);
    assert_eq!(c.expire_offsets(now_ms()), 0);
    assert_eq!(c.expire_offsets(now_ms() + 2000), 1);
    // The group had nothing else: it is forgotten.
    assert!(state(&c, "s").is_none());
    assert_eq!(c.describe_group("s").state, "Dead");
}

#[tokio::test(start_paused = true)]
async fn a_rejoin_during_completing_rebalance_returns_the_current_generation() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (a, ha) = handshake(&c, "g", "a").await;
    let oa = ha.await.unwrap();
    // The member lost the answer and asks again with the same protocols.
    let again = c.join_group(join_req("g", &a, "a")).await;
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, oa.generation_id);
    assert_eq!(again.members.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn unanswered_member_ids_are_forgotten_after_the_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a"]).await;
    // A member gets an id but never comes back; the rebalance it started must still finish.
    let first = c.join_group(join_req("g", "", "b")).await;
    assert_eq!(first.error_code, E::MemberIdRequired.code());
    // No rebalance was started by the handshake alone.
    assert_eq!(state(&c, "g"), Some(GroupState::Stable));
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    assert_eq!(c.heartbeat("g", &ids[0], generation), 0);
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    settle().await;
    assert!(c.with_group("g", |g| g.pending_members.is_empty()).unwrap());
    let out = c.join_group(join_req("g", &first.member_id, "b")).await;
    assert_eq!(out.error_code, E::UnknownMemberId.code());
    assert!(member_ids(&c, "g").contains(&ids[0]));
}

#[tokio::test(start_paused = true)]
async fn commits_and_group_metadata_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let member;
    {
        let c = Arc::new(local(dir.path()));
        let (ids, generation) = stable_group(&c, "g", &["a"]).await;
        member = ids[0].clone();
        let codes = c.commit_offsets(&CommitRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.clone(),
            group_instance_id: None,
            retention_time_ms: -1,
            partitions: vec![
                CommitPartition {
                    topic: "t".into(),
                    partition: 0,
                    offset: 10,
                    leader_epoch: 1,
                    metadata: Some("x".into()),
                },
                CommitPartition {
                    topic: "t".into(),
                    partition: 1,
                    offset: 20,
                    leader_epoch: 1,
                    metadata: None,
                },
            ],
        });
        assert_eq!(codes, vec![0, 0]);
        // No shutdown: as after kill -9.
    }
    let c = local(dir.path());
    let got = c.fetch_offsets("g", None).unwrap();
    let offsets: Vec<(i32, i64)> = got
        .iter()
        .map(|(_, p, o)| (*p, o.as_ref().unwrap().offset))
        .collect();
    assert_eq!(offsets, vec![(0, 10), (1, 20)]);
    let d = c.describe_group("g");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id, member);
    assert_eq!(d.members[0].assignment, Bytes::from(format!("a-{member}")));
    assert_eq!(c.heartbeat("g", &member, 1), 0);
}

fn txn_commit(group: &str, pid: i64, partition: i32, offset: i64) -> TxnCommitRequest {
    TxnCommitRequest {
        group_id: group.into(),
        producer_id: pid,
        producer_epoch: 0,
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        partitions: vec![CommitPartition {
            topic: "t".into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: None,
        }],
    }
}

fn committed(c: &GroupCoordinator, group: &str) -> Vec<(i32, i64)> {
    c.fetch_offsets(group, None)
        .unwrap()
        .into_iter()
        .map(|(_, p, o)| (p, o.unwrap().offset))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn transactional_offsets_stay_pending_until_the_commit_marker() {
    let dir = tempfile::tempdir().unwrap();
    let c = local_with(dir.path(), cfg());
    let n = c.offsets_partition_for("g");
    assert_eq!(c.commit_txn_offsets(&txn_commit("g", 7, 0, 10)), vec![0]);
    assert_eq!(c.commit_txn_offsets(&txn_commit("g", 8, 1, 99)), vec![0]);
    assert!(
        committed(&c, "g").is_empty(),
        "pending offsets are invisible"
    );
    assert_eq!(
        c.unstable_partitions("g").into_iter().collect::<Vec<_>>(),
        vec![("t".to_owned(), 0), ("t".to_owned(), 1)]
    );
    // A marker on another offsets partition does not touch the group.
    c.complete_transaction(n + 1, 7, 0, true, 0).unwrap();
    assert!(committed(&c, "g").is_empty());
    c.complete_transaction(n, 7, 0, true, 0).unwrap();
    assert_eq!(committed(&c, "g"), vec![(0, 10)]);
    // Producer 8 aborts: its offsets are dropped.
    c.complete_transaction(n, 8, 0, false, 0).unwrap();
    assert_eq!(committed(&c, "g"), vec![(0, 10)]);
    assert!(c.unstable_partitions("g").is_empty());
}

#[tokio::test(start_paused = true)]
async fn transactional_offset_commits_check_member_and_generation() {
    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(local_with(dir.path(), cfg()));
    let (ids, generation) = stable_group(&c, "g", &["a"]).await;
    let mut req = txn_commit("g", 7, 0, 10);
    req.member_id = "stranger".into();
    assert_eq!(c.commit_txn_offsets(&req), vec![E::UnknownMemberId.code()]);
    req.member_id = ids[0].clone();
    req.generation_id = generation + 1;
    assert_eq!(
        c.commit_txn_offsets(&req),
        vec![E::IllegalGeneration.code()]
    );
    req.generation_id = generation;
    assert_eq!(c.commit_txn_offsets(&req), vec![0]);
}

#[tokio::test(start_paused = true)]
async fn replay_applies_markers_and_keeps_unfinished_transactions_pending() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = local(dir.path());
        let n = c.offsets_partition_for("g");
        assert_eq!(c.commit_txn_offsets(&txn_commit("g", 1, 0, 10)), vec![0]);
        assert_eq!(c.commit_txn_offsets(&txn_commit("g", 2, 1, 20)), vec![0]);
        assert_eq!(c.commit_txn_offsets(&txn_commit("g", 3, 2, 30)), vec![0]);
        c.complete_transaction(n, 1, 0, true, 0).unwrap();
        c.complete_transaction(n, 2, 0, false, 0).unwrap();
        // Producer 3's transaction is open at the "crash".
    }
    let c = local(dir.path());
    assert_eq!(committed(&c, "g"), vec![(0, 10)]);
    assert_eq!(
        c.unstable_partitions("g").into_iter().collect::<Vec<_>>(),
        vec![("t".to_owned(), 2)]
    );
    // The coordinator's recovery completes it later.
    let n = c.offsets_partition_for("g");
    c.complete_transaction(n, 3, 0, true, 0).unwrap();
    assert_eq!(committed(&c, "g"), vec![(0, 10), (2, 30)]);
    drop(c);
    let c = local(dir.path());
    assert_eq!(committed(&c, "g"), vec![(0, 10), (2, 30)]);
    assert!(c.unstable_partitions("g").is_empty());
}

#[tokio::test(start_paused = true)]
async fn cluster_mode_answers_for_a_partition_only_while_its_groups_are_loaded() {
    use crate::log::LogConfig;
    use crate::partition::LeaderAndIsr;
    use crate::partition::Partition;

    let dir = tempfile::tempdir().unwrap();
    let c = Arc::new(GroupCoordinator::new(cfg()));
    let index = c.offsets_partition_for("g");
    assert!(!c.is_coordinating("g"), "nothing is loaded yet");
    let partition = Arc::new(
        Partition::open(
            super::super::store::OFFSETS_TOPIC,
            index,
            &dir.path().join(format!("__consumer_offsets-{index}")),
            LogConfig::default(),
        )
        .unwrap(),
    );
    let alone = LeaderAndIsr {
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
        replicas: vec![1],
        isr: vec![1],
    };
    partition.become_leader(1, &alone, 0).unwrap();
    c.load_partition(index, partition.clone()).unwrap();
    assert!(c.is_coordinating("g"));
    let other = (0..100)
        .map(|i| format!("other-{i}"))
        .find(|g| c.offsets_partition_for(g) != index)
        .expect("a group of another partition");
    assert!(
        !c.is_coordinating(&other),
        "{other}'s partition is not loaded"
    );

    let (ids, generation) = stable_group(&c, "g", &["a"]).await;
    let codes = commit_t0(&c, "g", &ids[0], generation, 42);
    assert_eq!(codes, vec![0]);

    c.unload_partition(index);
    assert!(!c.is_coordinating("g"));
    assert_eq!(
        state(&c, "g"),
        None,
        "a resigned partition's groups are forgotten"
    );

    c.load_partition(index, partition).unwrap();
    assert!(c.is_coordinating("g"));
    assert_eq!(state(&c, "g"), Some(GroupState::Stable));
    let rows = c.fetch_offsets("g", None).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2.as_ref().map(|o| o.offset), Some(42));
}
