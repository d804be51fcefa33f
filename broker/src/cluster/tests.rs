//! In-process cluster tests: three `Cluster`s on 127.0.0.1, each with its own tempdir.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use super::*;

const START_DEADLINE: Duration = Duration::from_secs(15);

fn config(id: i32, voters: &BTreeMap<i32, SocketAddr>, dir: &Path) -> ClusterConfig {
    config_with(id, voters, dir, Duration::from_secs(9))
}

fn config_with(
    id: i32,
    voters: &BTreeMap<i32, SocketAddr>,
    dir: &Path,
    session_timeout: Duration,
) -> ClusterConfig {
    ClusterConfig {
        node_id: id,
        voters: voters.clone(),
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
        rack: Some(format!("rack-{}", id % 2)),
        metadata_dir: dir.to_path_buf(),
        session_timeout,
        unclean_leader_election: false,
        leader_rebalance: None,
    }
}

struct TestCluster {
    voters: BTreeMap<i32, SocketAddr>,
    dirs: BTreeMap<i32, tempfile::TempDir>,
    nodes: BTreeMap<i32, Arc<Cluster>>,
}

impl TestCluster {
    async fn start(n: i32) -> TestCluster {
        Self::start_with(n, Duration::from_secs(9)).await
    }

    async fn start_with(n: i32, session_timeout: Duration) -> TestCluster {
        let mut listeners = BTreeMap::new();
        let mut voters = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            voters.insert(id, l.local_addr().unwrap());
            listeners.insert(id, l);
        }
        let dirs: BTreeMap<i32, _> = (1..=n)
            .map(|id| (id, tempfile::tempdir().unwrap()))
            .collect();
        let mut starts = Vec::new();
        for (id, l) in listeners {
            let cfg = config_with(id, &voters, dirs[&id].path(), session_timeout);
            starts.push(tokio::spawn(async move {
                (id, Cluster::start(cfg, Some(l), START_DEADLINE).await)
            }));
        }
        let mut nodes = BTreeMap::new();
        for s in starts {
            let (id, res) = s.await.unwrap();
            nodes.insert(
                id,
                res.unwrap_or_else(|e| panic!("broker {id} failed to start: {e}")),
            );
        }
        TestCluster {
            voters,
            dirs,
            nodes,
        }
    }

    async fn restart(&mut self, id: i32) {
        let l = TcpListener::bind(self.voters[&id]).await.unwrap();
        let cfg = config(id, &self.voters, self.dirs[&id].path());
        let c = Cluster::start(cfg, Some(l), START_DEADLINE)
            .await
            .unwrap_or_else(|e| panic!("restart of {id}: {e}"));
        self.nodes.insert(id, c);
    }

    async fn stop(&mut self, id: i32) {
        if let Some(c) = self.nodes.remove(&id) {
            c.stop().await;
        }
    }

    fn any(&self) -> &Arc<Cluster> {
        self.nodes.values().next().unwrap()
    }

    /// Waits until every running node has the same image and `ok` holds for it.
    async fn converge(
        &self,
        what: &str,
        within: Duration,
        ok: impl Fn(&ClusterImage) -> bool,
    ) -> Arc<ClusterImage> {
        let until = Instant::now() + within;
        loop {
            let images: Vec<_> = self.nodes.values().map(|c| c.image()).collect();
            if images.windows(2).all(|w| w[0] == w[1]) && ok(&images[0]) {
                return images[0].clone();
            }
            if Instant::now() > until {
                panic!("{what} did not happen within {within:?}; images: {images:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn controller(&self) -> i32 {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(c) = self.any().controller_id() {
                if self.nodes.contains_key(&c) {
                    return c;
                }
            }
            assert!(
                Instant::now() < until,
                "no controller among the running nodes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shutdown(self) {
        for c in self.nodes.values() {
            c.stop().await;
        }
    }
}

fn all_unfenced(n: usize) -> impl Fn(&ClusterImage) -> bool {
    move |img: &ClusterImage| img.brokers.len() == n && img.brokers.values().all(|b| !b.fenced)
}

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(90), f)
        .await
        .expect("test exceeded 90 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_form_create_a_replicated_topic_and_converge() {
    bounded(async {
        let tc = TestCluster::start(3).await;
        tc.converge(
            "registration of 3 brokers",
            Duration::from_secs(5),
            all_unfenced(3),
        )
        .await;
        let ctl = tc.controller().await;
        let other = *tc.nodes.keys().find(|id| **id != ctl).unwrap();

        // Created through a node that is not the controller: the request is forwarded.
        let topic = tc.nodes[&other]
            .create_topic(CreateTopicSpec::plain("orders", 6, 3))
            .await
            .unwrap();
        assert_eq!(topic.partitions.len(), 6);
        let img = tc
            .converge("topic creation", Duration::from_secs(5), |i| {
                i.topics.contains_key("orders")
            })
            .await;
        assert_eq!(img.topics["orders"], topic);
        let mut leaders = BTreeMap::new();
        for p in &topic.partitions {
            assert_eq!(p.replicas.len(), 3);
            assert_eq!(p.isr, p.replicas);
            *leaders.entry(p.leader).or_insert(0) += 1;
        }
        assert_eq!(
            leaders.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2],
            "leaders balanced: {leaders:?}"
        );

        // Racks: 1 and 3 are in rack-1, 2 in rack-0; RF 2 must span both racks.
        let racked = tc
            .any()
            .create_topic(CreateTopicSpec::plain("racked", 6, 2))
            .await
            .unwrap();
        for p in &racked.partitions {
            let racks: std::collections::BTreeSet<_> = p.replicas.iter().map(|r| r % 2).collect();
            assert_eq!(racks.len(), 2, "replicas {:?} span both racks", p.replicas);
        }

        let err = tc.nodes[&other]
            .create_topic(CreateTopicSpec::plain("orders", 1, 1))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 36, "{err}");
        let err = tc.nodes[&other]
            .create_topic(CreateTopicSpec::plain("big", 1, 4))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 38, "{err}");
        assert!(
            err.to_string()
                .contains("replication factor 4 larger than the 3 available brokers"),
            "{err}"
        );

        // AlterPartition: a shrink from the leader succeeds once; the same request again is stale.
        let p0 = &topic.partitions[0];
        let req = AlterPartition {
            topic: "orders".into(),
            partition: 0,
            leader_id: p0.leader,
            leader_epoch: p0.leader_epoch,
            partition_epoch: p0.partition_epoch,
            new_isr: vec![p0.leader],
        };
        let changed = tc.nodes[&other].alter_partition(req.clone()).await.unwrap();
        assert_eq!(
            (changed.isr.clone(), changed.partition_epoch),
            (vec![p0.leader], 1)
        );
        let err = tc.nodes[&other]
            .alter_partition(req.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), 108, "{err}");
        let err = tc.nodes[&other]
            .alter_partition(AlterPartition {
                leader_epoch: -1,
                partition_epoch: 1,
                ..req.clone()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), 74, "{err}");

        // A garbage frame closes that connection only.
        let mut raw = tokio::net::TcpStream::connect(tc.voters[&ctl])
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        raw.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(2), raw.read(&mut buf))
            .await
            .expect("connection closed");
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "oversized frame must close the connection, got {n:?}"
        );

        let grown = tc.any().create_partitions("orders", 8).await.unwrap();
        assert_eq!(grown.partitions.len(), 8);
        tc.any().delete_topic("orders").await.unwrap();
        tc.converge("topic deletion", Duration::from_secs(5), |i| {
            !i.topics.contains_key("orders")
        })
        .await;
        tc.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopped_leaders_fail_over_within_three_seconds_and_a_restart_rejoins() {
    bounded(async {
        let mut tc = TestCluster::start(3).await;
        tc.converge(
            "registration of 3 brokers",
            Duration::from_secs(5),
            all_unfenced(3),
        )
        .await;
        let topic = tc
            .any()
            .create_topic(CreateTopicSpec::plain("t", 3, 3))
            .await
            .unwrap();
        tc.converge("topic creation", Duration::from_secs(5), |i| {
            i.topics.contains_key("t")
        })
        .await;

        // Stop the controller; one partition is led by it.
        let ctl = tc.controller().await;
        let p = topic
            .partitions
            .iter()
            .position(|p| p.leader == ctl)
            .expect("every broker leads a partition");
        let before = topic.partitions[p].clone();
        let stopped_at = Instant::now();
        tc.stop(ctl).await;
        let new_ctl = tc.controller().await;
        eprintln!(
            "controller {ctl} stopped: {new_ctl} elected after {:?}",
            stopped_at.elapsed()
        );
        let img = tc
            .converge(
                "fail-over after stopping the controller",
                Duration::from_secs(3),
                |i| {
                    let s = &i.topics["t"].partitions[p];
                    s.leader != ctl && s.leader != -1 && i.brokers[&ctl].fenced
                },
            )
            .await;
        let after = &img.topics["t"].partitions[p];
        assert!(
            before.isr.contains(&after.leader),
            "new leader {} came from the ISR {:?}",
            after.leader,
            before.isr
        );
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert!(!after.isr.contains(&ctl));
        assert!(img.topics["t"]
            .partitions
            .iter()
            .all(|s| s.leader != ctl && !s.isr.contains(&ctl)));
        eprintln!(
            "controller {ctl} stopped: partition {p} moved to {} in {:?}",
            after.leader,
            stopped_at.elapsed()
        );

        // Restart it with the same directory: it re-registers with a new incarnation.
        tc.restart(ctl).await;
        let inc = tc.nodes[&ctl].incarnation();
        let img = tc
            .converge(
                "rejoin of the restarted broker",
                Duration::from_secs(5),
                |i| {
                    i.brokers
                        .get(&ctl)
                        .is_some_and(|b| b.incarnation == inc && !b.fenced)
                },
            )
            .await;
        assert!(
            img.topics.contains_key("t"),
            "the restarted node recovered the topic"
        );

        // Now stop a partition leader that is not the controller.
        let ctl = tc.controller().await;
        let (p, before) = img.topics["t"]
            .partitions
            .iter()
            .enumerate()
            .find(|(_, s)| s.leader != ctl && s.leader != -1)
            .map(|(p, s)| (p, s.clone()))
            .expect("a partition led by a non-controller");
        let victim = before.leader;
        tc.stop(victim).await;
        let img = tc
            .converge(
                "fail-over after stopping a partition leader",
                Duration::from_secs(3),
                |i| {
                    let s = &i.topics["t"].partitions[p];
                    s.leader != victim && s.leader != -1
                },
            )
            .await;
        assert!(before.isr.contains(&img.topics["t"].partitions[p].leader));
        tc.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_node_catches_up_by_snapshot_and_a_full_restart_recovers_from_disk() {
    bounded(async {
        let mut tc = TestCluster::start(3).await;
        tc.converge("registration", Duration::from_secs(5), all_unfenced(3))
            .await;
        let lag = *tc
            .nodes
            .keys()
            .find(|id| Some(**id) != tc.any().controller_id())
            .unwrap();
        let lag_last = tc.nodes[&lag].raft_metrics().last_log_index.unwrap_or(0);
        tc.stop(lag).await;
        for i in 0..30 {
            tc.any()
                .create_topic(CreateTopicSpec::plain(&format!("t{i}"), 2, 2))
                .await
                .unwrap();
        }
        let ctl = tc.controller().await;
        let until = Instant::now() + Duration::from_secs(5);
        while tc.nodes[&ctl]
            .raft_metrics()
            .purged
            .is_none_or(|p| p.index <= lag_last)
        {
            assert!(
                Instant::now() < until,
                "the leader never purged its log: {:?}",
                tc.nodes[&ctl].raft_metrics()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The entries the lagging node misses are gone from the leader's log: only a snapshot helps.
        tc.restart(lag).await;
        let before = tc
            .converge(
                "catch-up of the lagging node",
                Duration::from_secs(10),
                |i| all_unfenced(3)(i) && i.topics.len() == 30,
            )
            .await;
        assert!(tc.dirs[&lag].path().join("snapshot.json").exists());

        for id in 1..=3 {
            tc.stop(id).await;
        }
        let restarts: Vec<_> = (1..=3)
            .map(|id| {
                let voters = tc.voters.clone();
                let dir = tc.dirs[&id].path().to_path_buf();
                tokio::spawn(async move {
                    let l = TcpListener::bind(voters[&id]).await.unwrap();
                    (
                        id,
                        Cluster::start(config(id, &voters, &dir), Some(l), START_DEADLINE).await,
                    )
                })
            })
            .collect();
        for r in restarts {
            let (id, c) = r.await.unwrap();
            tc.nodes
                .insert(id, c.unwrap_or_else(|e| panic!("restart of {id}: {e}")));
        }
        let after = tc
            .converge("recovery", Duration::from_secs(5), |i| {
                all_unfenced(3)(i) && i.topics.len() == 30
            })
            .await;
        // Leaders and epochs moved as brokers re-registered; topics and assignments did not.
        let shape = |i: &ClusterImage| {
            i.topics
                .values()
                .map(|t| {
                    (
                        t.id,
                        t.partitions
                            .iter()
                            .map(|p| p.replicas.clone())
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shape(&after),
            shape(&before),
            "topics survive a restart of every node"
        );
        tc.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_broker_is_fenced_after_the_session_timeout_and_unfenced_when_it_resumes() {
    bounded(async {
        let session = Duration::from_millis(1500);
        let mut tc = TestCluster::start_with(3, session).await;
        tc.converge("registration", Duration::from_secs(5), all_unfenced(3))
            .await;
        let topic = tc
            .any()
            .create_topic(CreateTopicSpec::plain("p", 3, 3))
            .await
            .unwrap();
        tc.converge("creation", Duration::from_secs(5), |i| {
            i.topics.contains_key("p")
        })
        .await;
        let ctl = tc.controller().await;
        let victim = *tc.nodes.keys().find(|id| **id != ctl).unwrap();
        let paused = tc.nodes.remove(&victim).unwrap();
        paused.freeze(true);
        let t0 = Instant::now();
        let img = tc
            .converge(
                "fencing of the paused broker",
                session + Duration::from_secs(2),
                |i| i.brokers[&victim].fenced,
            )
            .await;
        let took = t0.elapsed();
        assert!(
            took >= session - Duration::from_millis(200),
            "fenced after {took:?}, before the session timeout"
        );
        let led = topic
            .partitions
            .iter()
            .position(|p| p.leader == victim)
            .unwrap();
        assert_ne!(img.topics["p"].partitions[led].leader, victim);
        assert!(img.topics["p"]
            .partitions
            .iter()
            .all(|p| !p.isr.contains(&victim)));

        paused.freeze(false);
        tc.nodes.insert(victim, paused);
        tc.converge(
            "unfencing of the resumed broker",
            Duration::from_secs(3),
            all_unfenced(3),
        )
        .await;
        tc.shutdown().await;
    })
    .await;
}

/// What the replication layer does once a follower caught up: the leader asks the controller
/// to put every replica back into the ISR.
async fn expand_isrs(tc: &TestCluster, topic: &str) -> Arc<ClusterImage> {
    let img = tc.any().image();
    for (p, st) in img.topics[topic].partitions.iter().enumerate() {
        if st.isr.len() != st.replicas.len() {
            let req = AlterPartition {
                topic: topic.into(),
                partition: p as i32,
                leader_id: st.leader,
                leader_epoch: st.leader_epoch,
                partition_epoch: st.partition_epoch,
                new_isr: st.replicas.clone(),
            };
            tc.nodes[&st.leader].alter_partition(req).await.unwrap();
        }
    }
    tc.converge("ISR expansion", Duration::from_secs(5), |i| {
        i.topics[topic]
            .partitions
            .iter()
            .all(|p| p.isr.len() == p.replicas.len())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_stops_of_controller_and_leaders_keep_every_partition_led_from_its_isr() {
    bounded(async {
        let mut tc = TestCluster::start(3).await;
        tc.converge("registration", Duration::from_secs(5), all_unfenced(3))
            .await;
        tc.any()
            .create_topic(CreateTopicSpec::plain("r", 6, 3))
            .await
            .unwrap();
        let mut img = tc
            .converge("creation", Duration::from_secs(5), |i| {
                i.topics.contains_key("r")
            })
            .await;
        for round in 0..6 {
            // Even rounds stop the controller, odd rounds the broker leading most partitions.
            let victim = if round % 2 == 0 {
                tc.controller().await
            } else {
                let mut count = BTreeMap::new();
                for p in &img.topics["r"].partitions {
                    *count.entry(p.leader).or_insert(0) += 1;
                }
                count
                    .into_iter()
                    .max_by_key(|(_, n)| *n)
                    .map(|(id, _)| id)
                    .unwrap()
            };
            let before = img.topics["r"].clone();
            let t0 = Instant::now();
            tc.stop(victim).await;
            let after = tc
                .converge(
                    &format!("round {round}: fail-over from {victim}"),
                    Duration::from_secs(3),
                    |i| {
                        i.brokers[&victim].fenced
                            && i.topics["r"]
                                .partitions
                                .iter()
                                .all(|p| p.leader != victim && p.leader != -1)
                    },
                )
                .await;
            for (b, a) in before.partitions.iter().zip(&after.topics["r"].partitions) {
                assert!(
                    b.isr.contains(&a.leader),
                    "round {round}: leader {} not from ISR {:?}",
                    a.leader,
                    b.isr
                );
                if b.leader == victim {
                    assert_eq!(a.leader_epoch, b.leader_epoch + 1, "round {round}");
                }
            }
            let moved = before
                .partitions
                .iter()
                .filter(|p| p.leader == victim)
                .count();
            eprintln!(
                "round {round}: broker {victim} stopped, {moved} partitions led again after {:?}",
                t0.elapsed()
            );
            tc.restart(victim).await;
            tc.converge(
                &format!("round {round}: rejoin of {victim}"),
                Duration::from_secs(5),
                all_unfenced(3),
            )
            .await;
            img = expand_isrs(&tc, "r").await;
        }
        tc.shutdown().await;
    })
    .await;
}

/// Stopping every broker in turn: each but the last hands its leaderships over through the
/// controller; the last (the controller, its quorum gone with the others) sees every other
/// broker fenced and stops at once instead of waiting for an answer that cannot come.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_broker_of_a_stopping_cluster_does_not_wait_for_a_controller() {
    bounded(async {
        let mut tc = TestCluster::start(3).await;
        tc.converge("registration", Duration::from_secs(10), all_unfenced(3))
            .await;
        tc.any()
            .create_topic(CreateTopicSpec::plain("t", 3, 3))
            .await
            .unwrap();
        let controller = tc.controller().await;
        let others: Vec<i32> = tc
            .nodes
            .keys()
            .copied()
            .filter(|id| *id != controller)
            .collect();
        for id in others {
            let node = tc.nodes.remove(&id).unwrap();
            let handed_over = node.controlled_shutdown().await.unwrap();
            assert!(handed_over, "broker {id}");
        }
        let last = tc.nodes.remove(&controller).unwrap();
        let shown = last
            .watch()
            .wait_for(|i| i.brokers.values().filter(|b| b.fenced).count() == 2)
            .await
            .is_ok();
        assert!(shown, "the others' fencing reached the last broker");
        let started = Instant::now();
        let handed_over = last.controlled_shutdown().await.unwrap();
        assert!(!handed_over, "nothing to hand over");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_cluster_elects_itself_and_serves_requests() {
    bounded(async {
        let mut tc = TestCluster::start(1).await;
        assert_eq!(tc.controller().await, 1);
        let t = tc
            .any()
            .create_topic(CreateTopicSpec::plain("solo", 2, 1))
            .await
            .unwrap();
        assert!(t
            .partitions
            .iter()
            .all(|p| p.leader == 1 && p.isr == vec![1]));
        let err = tc
            .any()
            .create_topic(CreateTopicSpec::plain("rf2", 1, 2))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 38, "{err}");
        // Alone, there is no one to hand leadership to: it stops without asking.
        let node = tc.nodes.remove(&1).unwrap();
        let handed_over = node.controlled_shutdown().await.unwrap();
        assert!(!handed_over, "nothing to hand over");
    })
    .await;
}

/// Voters are fixed when a metadata log is first written: a dir used by a lone voter and then
/// started with other voters, or the reverse, is refused with a message saying both quorums
/// and what to do; the same voter ids start again even when their addresses changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_log_of_another_voter_set_is_refused() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let lone = BTreeMap::from([(1, "127.0.0.1:0".parse().unwrap())]);
        for _ in 0..2 {
            let c = Cluster::start(config(1, &lone, dir.path()), None, START_DEADLINE)
                .await
                .expect("a lone voter starts and restarts on its own log");
            assert_eq!(c.controller_id(), Some(1));
            c.stop().await;
        }
        let mut three = BTreeMap::new();
        let mut listener = None;
        for id in 1..=3 {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            three.insert(id, l.local_addr().unwrap());
            if id == 1 {
                listener = Some(l);
            }
        }
        let err = Cluster::start(config(1, &three, dir.path()), listener, START_DEADLINE)
            .await
            .err()
            .expect("a lone voter's log refuses three voters");
        let msg = err.to_string();
        assert!(
            msg.contains("one voter, broker 1")
                && msg.contains("voters 1,2,3")
                && msg.contains(&dir.path().display().to_string())
                && msg.contains("empty log dir"),
            "{msg}"
        );

        // The reverse: a member of a three-voter quorum restarted alone.
        let mut tc = TestCluster::start(3).await;
        tc.converge("registration", Duration::from_secs(5), all_unfenced(3))
            .await;
        for id in 1..=3 {
            tc.stop(id).await;
        }
        let err = Cluster::start(config(1, &lone, tc.dirs[&1].path()), None, START_DEADLINE)
            .await
            .err()
            .expect("a three-voter log refuses a lone voter");
        let msg = err.to_string();
        assert!(
            msg.contains("voters 1,2,3") && msg.contains("one voter, broker 1"),
            "{msg}"
        );
    })
    .await;
}
