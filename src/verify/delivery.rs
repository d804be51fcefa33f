//! The delivery verdict: per consumer group, lost / duplicated / unexpected / reordered from the
//! ledger, judged against the scenario's expectation (exactly-once: nothing lost, nothing
//! duplicated; at-least-once: nothing lost; at-most-once: nothing duplicated; none: count only).

use roaring::RoaringBitmap;

use crate::ledger::{verdict, AckLedger, GroupLedger};
use crate::scenario::Delivery;
use crate::summary::{DeliverySummary, GroupDelivery};

/// The first acknowledged message `group` never received, as (producer, sequence).
fn first_lost(acks: &AckLedger, group: &GroupLedger) -> Option<(u32, u32)> {
    let empty = RoaringBitmap::new();
    acks.acked.iter().find_map(|(p, acked)| {
        let missing = acked - group.received.get(p).unwrap_or(&empty);
        missing.min().map(|s| (*p, s))
    })
}

/// Judges every group; returns the summary part and the failures.
pub fn check(
    expected: Delivery,
    order: bool,
    acks: &AckLedger,
    groups: &[(String, GroupLedger)],
) -> (DeliverySummary, Vec<String>) {
    let mut summary = DeliverySummary {
        expected: expected.as_str().to_string(),
        acked: acks.total(),
        ..Default::default()
    };
    let mut failures = Vec::new();
    for (name, g) in groups {
        let v = verdict(acks, g);
        summary.consumed += v.consumed;
        summary.lost += v.lost;
        summary.duplicated += v.duplicated;
        summary.unexpected += v.unexpected;
        summary.reordered += v.reordered;
        summary.per_group.push(GroupDelivery {
            group: name.clone(),
            consumed: v.consumed,
            lost: v.lost,
            duplicated: v.duplicated,
            unexpected: v.unexpected,
            reordered: v.reordered,
            aborted_visible: 0,
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
        let (s, f) = check(Delivery::ExactlyOnce, false, &a, &g);
        assert_eq!(s.lost, 1);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].contains("group g0 lost 1 of 100") && f[0].contains("sequence 5"),
            "{f:?}"
        );
        assert!(check(Delivery::AtMostOnce, false, &a, &g).1.is_empty());

        let (a, g) = ledgers(None, Some(7));
        let (s, f) = check(Delivery::AtLeastOnce, false, &a, &g);
        assert_eq!((s.duplicated, f.len()), (1, 0));
        let (_, f) = check(Delivery::ExactlyOnce, false, &a, &g);
        assert!(f[0].contains("1 duplicate"), "{f:?}");
        assert!(check(Delivery::None, false, &a, &g).1.is_empty());
    }
}
