//! What a run writes about itself besides the measurements: when and where it ran, which
//! scenario, the summary of a run that could not start, events, produce errors by kind.

use super::*;

/// What `summary.json` says of this kbench process and its run.
pub(super) fn run_info(started_at: chrono::DateTime<chrono::Utc>, wall_s: f64) -> RunInfo {
    RunInfo {
        kbench_version: env!("CARGO_PKG_VERSION").into(),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        wall_s,
        host: hostname(),
    }
}

/// What `summary.json` says of the scenario (and its matrix cell) that ran.
pub(super) fn scenario_info(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
) -> ScenarioInfo {
    ScenarioInfo {
        name: s.name.clone(),
        description: s.description.clone(),
        file: file.display().to_string(),
        matrix_cell: matrix_values
            .iter()
            .map(|(k, v)| (k.clone(), cell_value(v)))
            .collect(),
    }
}

/// `summary.json` of a run that could not start, and nothing else beside it (the empty
/// report files [`crate::report::prepare_dir`] made are removed; broker logs stay).
pub(super) fn write_not_started(
    s: &Scenario,
    file: &Path,
    matrix_values: &[(String, toml::Value)],
    out: &Path,
    started_at: chrono::DateTime<chrono::Utc>,
    why: &str,
) {
    let summary = Summary {
        schema_version: SCHEMA_VERSION,
        run: run_info(
            started_at,
            (chrono::Utc::now() - started_at).num_milliseconds() as f64 / 1000.0,
        ),
        scenario: scenario_info(s, file, matrix_values),
        config: s.resolved(),
        events: vec![Event {
            t_s: 0.0,
            kind: Event::NOT_STARTED.into(),
            detail: why.to_string(),
        }],
        verdict: Verdict {
            passed: false,
            failures: vec![format!("could not start: {why}")],
        },
        ..Default::default()
    };
    for name in [
        crate::report::TIMESERIES_CSV,
        crate::report::SYSTEM_CSV,
        crate::report::REPORT_HTML,
    ] {
        let path = out.join(name);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
            let _ = std::fs::remove_file(path);
        }
    }
    match summary.to_json() {
        Ok(json) => {
            if let Err(e) = std::fs::write(out.join(crate::report::SUMMARY_JSON), json) {
                eprintln!(
                    "kbench: cannot write {}: {e}",
                    out.join("summary.json").display()
                );
            }
        }
        Err(e) => eprintln!("kbench: cannot write summary.json: {e}"),
    }
}

/// The producers' errors so far, by kind.
pub(super) fn producer_errors(
    meters: &[Arc<ProducerMeter>],
) -> std::collections::BTreeMap<String, u64> {
    let mut all = std::collections::BTreeMap::new();
    for m in meters {
        m.with_state(|st| {
            for (k, v) in &st.errors {
                *all.entry(k.clone()).or_insert(0) += v;
            }
        });
    }
    all
}

/// Messages the producers saw refused with a storage error so far, if any.
pub(super) fn storage_refusals(meters: &[Arc<ProducerMeter>]) -> Option<u64> {
    let key = format!("produce:{}", crate::workload::STORAGE_ERROR_KIND);
    let refused: u64 = meters
        .iter()
        .map(|m| m.with_state(|st| st.errors.get(&key).copied().unwrap_or(0)))
        .sum();
    (refused > 0).then_some(refused)
}

/// The producer errors by kind, most frequent first: `storage 120, MessageTimedOut 3`.
pub(super) fn produce_error_list(errors: &std::collections::BTreeMap<String, u64>) -> String {
    let mut kinds: Vec<(&str, u64)> = errors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("produce:").map(|k| (k, *v)))
        .collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if kinds.is_empty() {
        return "none counted".into();
    }
    kinds
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records a phase boundary as an event (and in the trace log).
pub(super) fn phase(events: &mut Vec<Event>, t_s: f64, kind: &str, detail: &str) {
    tracing::debug!(t_s, kind, detail, "phase");
    events.push(Event {
        t_s,
        kind: kind.into(),
        detail: detail.into(),
    });
}

/// The summary of transaction counts.
pub(super) fn transactions_summary(
    t: &crate::measure::TxnCounts,
    left_open: u64,
) -> crate::summary::TransactionsSummary {
    crate::summary::TransactionsSummary {
        committed: t.committed,
        aborted: t.aborted,
        aborted_on_error: t.aborted_on_error,
        left_open,
        commit_latency_ms: Percentiles::from_histogram(&t.commit_latency),
    }
}

pub(super) fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produce_error_list_names_kinds_most_frequent_first() {
        let errors = std::collections::BTreeMap::from([
            ("produce:MessageTimedOut".to_string(), 3),
            ("produce:storage".to_string(), 120),
            ("consume:BrokerTransportFailure".to_string(), 9),
        ]);
        assert_eq!(
            produce_error_list(&errors),
            "storage 120, MessageTimedOut 3"
        );
        assert_eq!(
            produce_error_list(&std::collections::BTreeMap::new()),
            "none counted"
        );
    }
}
