//! The delivery verdict: per consumer group, lost / duplicated / unexpected / reordered /
//! aborted-visible / corrupted from the ledger, judged against the scenario's expectation (exactly-once:
//! nothing lost, nothing duplicated; at-least-once: nothing lost; at-most-once: nothing
//! duplicated; none: count only).
//!
//! With transactional producers, "acknowledged" means acknowledged *and committed*; a message
//! of an aborted transaction seen by a `read_committed` group is aborted-visible, a broken
//! isolation guarantee that fails the run under any expectation but `none`. Under
//! `read_uncommitted` such messages are legal: they are neither unexpected nor aborted-visible.

use roaring::RoaringBitmap;

use crate::ledger::{verdict, AckLedger, GroupLedger};
use crate::scenario::{Delivery, Isolation};
use crate::summary::{DeliverySummary, GroupDelivery};

/// The first acknowledged message `group` never received, as (producer, sequence).
fn first_lost(acks: &AckLedger, group: &GroupLedger) -> Option<(u32, u32)> {
    let empty = RoaringBitmap::new();
    acks.acked.iter().find_map(|(p, acked)| {
        let missing = acked - group.received.get(p).unwrap_or(&empty);
        missing.min().map(|s| (*p, s))
    })
}

/// The first message of an aborted transaction `group` received, as (producer, sequence).
fn first_aborted_seen(acks: &AckLedger, group: &GroupLedger) -> Option<(u32, u32)> {
    acks.aborted.iter().find_map(|(p, aborted)| {
        let got = group.received.get(p)?;
        let acked = acks.acked.get(p).cloned().unwrap_or_default();
        ((aborted & got) - acked).min().map(|s| (*p, s))
    })
}

/// Judges every group; returns the summary part and the failures.
pub fn check(
    expected: Delivery,
    order: bool,
    isolation: Isolation,
    acks: &AckLedger,
    groups: &[(String, GroupLedger)],
) -> (DeliverySummary, Vec<String>) {
    let mut summary = DeliverySummary {
        expected: expected.as_str().to_string(),
        acked: acks.total(),
        aborted: acks.aborted_total(),
        ..Default::default()
    };
    let committed_only = isolation == Isolation::ReadCommitted;
    let mut failures = Vec::new();
    for (name, g) in groups {
        let v = verdict(acks, g);
        let aborted_visible = if committed_only { v.aborted_seen } else { 0 };
        summary.aborted_visible += aborted_visible;
        summary.consumed += v.consumed;
        summary.lost += v.lost;
        summary.duplicated += v.duplicated;
        summary.unexpected += v.unexpected;
        summary.reordered += v.reordered;
        summary.corrupted += v.corrupted;
        summary.per_group.push(GroupDelivery {
            group: name.clone(),
            consumed: v.consumed,
            lost: v.lost,
            duplicated: v.duplicated,
            unexpected: v.unexpected,
            reordered: v.reordered,
            aborted_visible,
            corrupted: v.corrupted,
        });
        let what = expected.as_str();
        let no_loss = matches!(expected, Delivery::ExactlyOnce | Delivery::AtLeastOnce);
        let no_dup = matches!(expected, Delivery::ExactlyOnce | Delivery::AtMostOnce);
        if no_loss && v.lost > 0 {
            let example = first_lost(acks, g)
                .map(|(p, s)| format!(" (first: producer {p} sequence {s})"))
                .unwrap_or_default();
            failures.push(format!(
                "delivery ({what}): group {name} lost {} of {} acknowledged messages{example}",
                v.lost, v.acked
            ));
        }
        if no_dup && v.duplicated > 0 {
            failures.push(format!(
                "delivery ({what}): group {name} received {} duplicate copies ({} messages received for {} acknowledged)",
                v.duplicated, v.consumed, v.acked
            ));
        }
        if aborted_visible > 0 && expected != Delivery::None {
            let example = first_aborted_seen(acks, g)
                .map(|(p, s)| format!(" (first: producer {p} sequence {s})"))
                .unwrap_or_default();
            failures.push(format!(
                "delivery ({what}): group {name} (read_committed) saw {aborted_visible} messages of aborted transactions{example}"
            ));
        }
        if v.corrupted > 0 && expected != Delivery::None {
            failures.push(format!(
                "integrity: group {name} received {} corrupted messages (length, CRC32C or transform did not check out)",
                v.corrupted
            ));
        }
        if order && v.reordered > 0 {
            failures.push(format!(
                "order: group {name} saw {} messages out of per-producer order within a partition",
                v.reordered
            ));
        }
    }
    (summary, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RC: Isolation = Isolation::ReadCommitted;

    fn ledgers(lose: Option<u32>, dup: Option<u32>) -> (AckLedger, Vec<(String, GroupLedger)>) {
        let mut a = AckLedger::default();
        let mut g = GroupLedger::default();
        for s in 0..100 {
            a.ack(0, s);
            if lose != Some(s) {
                g.receive(0, s, 0);
            }
            if dup == Some(s) {
                g.receive(0, s, 0);
            }
        }
        (a, vec![("g0".to_string(), g)])
    }

    #[test]
    fn expectations_judge_the_right_counts() {
        let (a, g) = ledgers(Some(5), None);
        let (s, f) = check(Delivery::ExactlyOnce, false, RC, &a, &g);
        assert_eq!(s.lost, 1);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].contains("group g0 lost 1 of 100") && f[0].contains("sequence 5"),
            "{f:?}"
        );
        assert!(check(Delivery::AtMostOnce, false, RC, &a, &g).1.is_empty());

        let (a, g) = ledgers(None, Some(7));
        let (s, f) = check(Delivery::AtLeastOnce, false, RC, &a, &g);
        assert_eq!((s.duplicated, f.len()), (1, 0));
        let (_, f) = check(Delivery::ExactlyOnce, false, RC, &a, &g);
        assert!(f[0].contains("1 duplicate"), "{f:?}");
        assert!(check(Delivery::None, false, RC, &a, &g).1.is_empty());
    }

    #[test]
    fn an_aborted_message_seen_under_read_committed_fails_exactly_once() {
        // Producer 0 committed 0..100 and aborted a transaction of 100..150; the group saw
        // everything committed plus sequence 123 of the aborted transaction.
        let (mut a, mut g) = ledgers(None, None);
        a.abort_range(0, 100, 149);
        g[0].1.receive(0, 123, 0);
        let (s, f) = check(Delivery::ExactlyOnce, true, RC, &a, &g);
        assert_eq!((s.aborted, s.aborted_visible, s.unexpected), (50, 1, 0));
        assert_eq!(s.per_group[0].aborted_visible, 1);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].contains("saw 1 messages of aborted transactions")
                && f[0].contains("producer 0 sequence 123"),
            "{f:?}"
        );
        // Under read_uncommitted the same message is legal and not unexpected either.
        let (s, f) = check(
            Delivery::ExactlyOnce,
            true,
            Isolation::ReadUncommitted,
            &a,
            &g,
        );
        assert_eq!((s.aborted_visible, s.unexpected), (0, 0));
        assert!(f.is_empty(), "{f:?}");
        // A clean transactional run passes.
        let (a2, g2) = ledgers(None, None);
        let mut a2 = a2;
        a2.abort_range(0, 100, 149);
        assert!(check(Delivery::ExactlyOnce, true, RC, &a2, &g2)
            .1
            .is_empty());
    }
}
