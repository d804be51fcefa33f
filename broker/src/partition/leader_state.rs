//! The leader's view of its followers, as pure bookkeeping (no I/O, no clock): each follower's
//! log end offset (its last fetch offset) and when it was last caught up, the high watermark
//! they allow, and the ISR changes the leader should propose. Kept apart from
//! [`crate::partition`] so the rules are unit-tested on their own.
//!
//! Kafka's rules: a follower is caught up at a fetch whose offset reaches the leader's log end
//! (or the leader's log end at its previous fetch, which it then was caught up to at that
//! previous time). The high watermark is the smallest log end offset over the ISR (the leader
//! counting with its own), and never moves backwards. The ISR shrinks by the followers not
//! caught up within `replica.lag.time.max.ms`, and grows by a follower whose log end reached the
//! high watermark and the start of the current leader epoch. While a change is being committed
//! by the controller, the high watermark counts every replica of either ISR (the old one for a
//! shrink, the new one for an expansion), which is never less safe than either.

use std::collections::HashMap;

/// The controller's state of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaderAndIsr {
    /// The leader's broker id (-1: no leader).
    pub(crate) leader: i32,
    /// Bumped at every leader change.
    pub(crate) leader_epoch: i32,
    /// Bumped at every change of the partition's state (ISR, replicas, leader).
    pub(crate) partition_epoch: i32,
    /// Every replica's broker id.
    pub(crate) replicas: Vec<i32>,
    /// The in-sync replicas, leader included.
    pub(crate) isr: Vec<i32>,
}

/// What the leader knows about one follower.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FollowerProgress {
    /// The follower's log end offset: its last fetch offset; -1 until it fetched.
    pub(crate) log_end: i64,
    /// Last time (ms) the follower was caught up with the leader's log end.
    pub(crate) last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    last_fetch_leader_end: i64,
    /// Time (ms) of the follower's previous fetch.
    last_fetch_ms: i64,
}

/// A hosted partition's leader state.
#[derive(Debug, Clone)]
pub(crate) struct LeaderState {
    /// This broker's id (-1 before the metadata has named it, see [`LeaderState::single`]).
    pub(crate) local: i32,
    /// The leader epoch this broker leads in.
    pub(crate) leader_epoch: i32,
    /// The controller's partition epoch of the committed state.
    pub(crate) partition_epoch: i32,
    /// All replicas, this broker included.
    pub(crate) replicas: Vec<i32>,
    /// The committed in-sync replicas, this broker included.
    pub(crate) isr: Vec<i32>,
    /// An ISR proposed to the controller and not yet committed.
    pub(crate) pending_isr: Option<Vec<i32>>,
    /// Log end offset at which the current leader epoch started.
    pub(crate) epoch_start_offset: i64,
    /// Progress of every other replica.
    followers: HashMap<i32, FollowerProgress>,
}

impl LeaderState {
    /// The role of a partition just opened, before the metadata says who leads it (and of the
    /// partitions unit tests lead alone): leader of epoch `epoch`, ISR = replicas = itself.
    pub(crate) fn single(epoch: i32, log_end: i64) -> LeaderState {
        LeaderState {
            local: -1,
            leader_epoch: epoch,
            partition_epoch: 0,
            replicas: vec![-1],
            isr: vec![-1],
            pending_isr: None,
            epoch_start_offset: log_end,
            followers: HashMap::new(),
        }
    }

    /// Leadership as the controller assigned it. ISR members start caught up `now_ms` (they
    /// get a full lag time to fetch from the new leader), with an unknown log end.
    pub(crate) fn new(local: i32, state: &LeaderAndIsr, log_end: i64, now_ms: i64) -> Self {
        let mut s = LeaderState {
            local,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_isr: None,
            epoch_start_offset: log_end,
            followers: HashMap::new(),
        };
        s.update(state, now_ms);
        s
    }

    /// Takes a committed state of the same leader epoch (replicas or ISR changed).
    pub(crate) fn update(&mut self, state: &LeaderAndIsr, now_ms: i64) {
        self.partition_epoch = state.partition_epoch;
        self.replicas = state.replicas.clone();
        self.isr = state.isr.clone();
        if !self.isr.contains(&self.local) {
            self.isr.push(self.local);
        }
        self.pending_isr = None;
        let local = self.local;
        self.followers.retain(|r, _| state.replicas.contains(r));
        for &r in state.replicas.iter().filter(|&&r| r != local) {
            self.followers.entry(r).or_insert(FollowerProgress {
                log_end: -1,
                last_caught_up_ms: now_ms,
                last_fetch_leader_end: -1,
                last_fetch_ms: now_ms,
            });
        }
    }

    /// The progress of `replica`, if it is a follower (tests).
    #[cfg(test)]
    pub(crate) fn progress(&self, replica: i32) -> Option<&FollowerProgress> {
        self.followers.get(&replica)
    }

    /// Records a fetch of `replica` from `fetch_offset` while the leader's log ends at
    /// `leader_end`. Returns false (and records nothing) when `replica` is not a follower.
    pub(crate) fn record_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(p) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now_ms);
        } else if p.last_fetch_leader_end >= 0 && fetch_offset >= p.last_fetch_leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.log_end = fetch_offset;
        p.last_fetch_leader_end = leader_end;
        p.last_fetch_ms = now_ms;
        true
    }

    /// The replicas whose log end bounds the high watermark: the committed ISR and any
    /// pending one.
    fn hw_members(&self) -> impl Iterator<Item = i32> + '_ {
        self.isr
            .iter()
            .chain(self.pending_isr.iter().flatten())
            .copied()
    }

    /// The high watermark the ISR allows, given the leader's `log_end` and the current `hw`
    /// (never lower than it).
    pub(crate) fn high_watermark(&self, log_end: i64, hw: i64) -> i64 {
        let mut min = log_end;
        for r in self.hw_members() {
            if r == self.local {
                continue;
            }
            let end = self.followers.get(&r).map_or(-1, |p| p.log_end);
            min = min.min(end);
        }
        hw.max(min)
    }

    /// The ISR change to propose now, if any (none while one is pending): first a shrink by
    /// every follower not caught up within `lag_ms`, else an expansion by every caught-up
    /// follower outside the ISR. Sorted by broker id, this broker always included.
    pub(crate) fn isr_proposal(&self, hw: i64, now_ms: i64, lag_ms: i64) -> Option<Vec<i32>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let lagging = |r: &i32| {
            *r != self.local
                && self
                    .followers
                    .get(r)
                    .is_none_or(|p| now_ms - p.last_caught_up_ms > lag_ms)
        };
        if self.isr.iter().any(lagging) {
            let mut isr: Vec<i32> = self.isr.iter().copied().filter(|r| !lagging(r)).collect();
            isr.sort_unstable();
            return Some(isr);
        }
        let joining: Vec<i32> = self
            .followers
            .iter()
            .filter(|(r, p)| {
                !self.isr.contains(r)
                    && p.log_end >= hw
                    && p.log_end >= self.epoch_start_offset
                    && now_ms - p.last_caught_up_ms <= lag_ms
            })
            .map(|(r, _)| *r)
            .collect();
        if joining.is_empty() {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.extend(joining);
        isr.sort_unstable();
        Some(isr)
    }

    /// The state to send the controller for a proposed ISR.
    pub(crate) fn proposal_state(&self, isr: Vec<i32>) -> LeaderAndIsr {
        LeaderAndIsr {
            leader: self.local,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            replicas: self.replicas.clone(),
            isr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(isr: &[i32]) -> LeaderAndIsr {
        LeaderAndIsr {
            leader: 1,
            leader_epoch: 3,
            partition_epoch: 7,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn high_watermark_is_the_smallest_isr_log_end_and_never_goes_back() {
        let mut s = LeaderState::new(1, &state(&[1, 2, 3]), 10, 0);
        assert_eq!(s.high_watermark(10, 4), 4, "followers unknown: HW stays");
        s.record_fetch(2, 8, 10, 1);
        s.record_fetch(3, 6, 10, 1);
        assert_eq!(s.high_watermark(10, 4), 6);
        s.record_fetch(3, 10, 10, 2);
        assert_eq!(s.high_watermark(10, 6), 8);
        // A replica outside the ISR does not hold the HW.
        s.update(&state(&[1, 3]), 3);
        assert_eq!(s.high_watermark(10, 8), 10);
        // A follower re-fetching from lower (after a truncation) never lowers the HW.
        s.record_fetch(3, 5, 10, 4);
        assert_eq!(s.high_watermark(10, 10), 10);
        assert!(
            !s.record_fetch(9, 1, 10, 4),
            "not a replica: nothing recorded"
        );
        // Single broker: HW is the log end.
        assert_eq!(LeaderState::single(0, 0).high_watermark(42, 0), 42);
    }

    #[test]
    fn a_pending_expansion_counts_for_the_high_watermark() {
        let mut s = LeaderState::new(1, &state(&[1, 2]), 10, 0);
        s.record_fetch(2, 10, 10, 1);
        s.record_fetch(3, 9, 10, 1);
        assert_eq!(s.high_watermark(10, 0), 10);
        s.pending_isr = Some(vec![1, 2, 3]);
        assert_eq!(s.high_watermark(12, 0), 9);
    }

    #[test]
    fn lagging_followers_are_shrunk_after_the_lag_time() {
        let mut s = LeaderState::new(1, &state(&[1, 2, 3]), 10, 0);
        s.record_fetch(2, 10, 10, 100);
        s.record_fetch(3, 4, 10, 100);
        assert_eq!(s.isr_proposal(4, 1000, 1000), None, "within the lag time");
        // 3 fetches again having reached the leader's end at its previous fetch: caught up then.
        s.record_fetch(3, 10, 12, 900);
        s.record_fetch(2, 12, 12, 1500);
        assert_eq!(s.progress(3).unwrap().last_caught_up_ms, 100);
        assert_eq!(s.isr_proposal(10, 1100, 1000), None);
        assert_eq!(s.isr_proposal(10, 1101, 1000), Some(vec![1, 2]));
        s.pending_isr = Some(vec![1, 2]);
        assert_eq!(s.isr_proposal(10, 3000, 1000), None, "one change at a time");
        // The stopped follower comes back and catches up: it is proposed back.
        s.update(&state(&[1, 2]), 3000);
        s.record_fetch(2, 12, 12, 3100);
        s.record_fetch(3, 12, 12, 3100);
        assert_eq!(s.isr_proposal(12, 3100, 1000), Some(vec![1, 2, 3]));
    }

    #[test]
    fn expansion_needs_the_high_watermark_and_the_epoch_start() {
        let mut s = LeaderState::new(1, &state(&[1]), 50, 0);
        s.record_fetch(2, 40, 60, 10);
        assert_eq!(s.isr_proposal(40, 10, 1000), None, "below the epoch start");
        s.record_fetch(2, 55, 60, 20);
        assert_eq!(s.isr_proposal(58, 20, 1000), None, "below the HW");
        s.record_fetch(2, 60, 60, 30);
        assert_eq!(s.isr_proposal(58, 30, 1000), Some(vec![1, 2]));
    }
}
