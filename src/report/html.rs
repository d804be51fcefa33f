//! `report.html`: one self-contained page (no external file, script or font) read top-down the
//! way a person asks: did it pass (the verdict), how fast and how safe (a row of headline
//! numbers), what happened over time (every chart as inline SVG, each with the table of its
//! numbered events, or a sentence saying why it is not drawn), then the detail tables and the
//! resolved configuration. A pure function: summary and rendered SVGs in, HTML text out.

use std::fmt::Write;

use super::terminal::bytes;
use crate::summary::{Percentiles, Summary};

/// One chart of the page.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    /// Caption.
    pub title: String,
    /// The drawn chart, `None` when it is not drawn.
    pub svg: Option<String>,
    /// Why it is not drawn.
    pub not_drawn: Option<String>,
    /// The numbered events on it, as (seconds, label); numbered from 1 in this order.
    pub events: Vec<(f64, String)>,
}

/// The report page. `charts` in display order.
pub fn report_html(s: &Summary, charts: &[Figure]) -> String {
    let mut o = String::new();
    let title = format!("kbench — {}", s.scenario.name);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(o, "<h1>{}</h1>", esc(&title));
    if !s.scenario.description.is_empty() {
        let _ = writeln!(o, "<p>{}</p>", esc(&s.scenario.description));
    }
    let (class, word) = if s.verdict.passed {
        ("pass", "PASSED")
    } else {
        ("fail", "FAILED")
    };
    let _ = writeln!(o, "<div class=\"verdict {class}\"><b>{word}</b>");
    if !s.verdict.failures.is_empty() {
        o.push_str("<ul>");
        for f in &s.verdict.failures {
            let _ = write!(o, "<li>{}</li>", esc(f));
        }
        o.push_str("</ul>");
    }
    o.push_str("</div>\n");
    if !s.warnings.is_empty() {
        o.push_str("<ul class=\"warnings\">");
        for w in &s.warnings {
            let _ = write!(o, "<li>warning: {}</li>", esc(w));
        }
        o.push_str("</ul>\n");
    }

    headline(&mut o, s);
    figures(&mut o, charts);
    o.push_str("<h2>Details</h2>\n");

    let mut run = vec![
        ("scenario file", s.scenario.file.clone()),
        (
            "target",
            format!(
                "{} ({} broker(s)) {}",
                s.target.kind.as_str(),
                s.target.brokers,
                s.target.bootstrap
            ),
        ),
        ("started", s.run.started_at.clone()),
        ("wall time", format!("{:.2} s", s.run.wall_s)),
        ("host", s.run.host.clone()),
        ("kbench", s.run.kbench_version.clone()),
    ];
    for (k, v) in &s.scenario.matrix_cell {
        run.push(("matrix", format!("{k} = {v}")));
    }
    kv_table(&mut o, "Run", &run);

    let p = &s.produce;
    let c = &s.consume;
    o.push_str("<h2>Throughput</h2><table><tr><th></th><th>messages</th><th>bytes</th><th>msgs/s</th><th>MiB/s</th><th>duration (s)</th><th>failed</th></tr>\n");
    let _ = writeln!(
        o,
        "<tr><td>produce (acked)</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
        p.acked, bytes(p.bytes), p.msgs_per_s, p.mib_per_s, p.duration_s, p.failed
    );
    let _ = writeln!(
        o,
        "<tr><td>consume ({} group(s))</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.2}</td><td>{:.2}</td><td></td></tr></table>",
        c.groups, c.messages, bytes(c.bytes), c.msgs_per_s, c.mib_per_s, c.duration_s
    );
    if let Some(rate) = p.target_msgs_per_s {
        let _ = writeln!(
            o,
            "<p>Target rate {rate:.0} msgs/s: {}</p>",
            match p.rate_reached {
                Some(true) => "reached",
                Some(false) => "<b>not reached</b>",
                None => "not judged",
            }
        );
    }

    o.push_str("<h2>Latency (ms, warm-up excluded)</h2><table><tr><th></th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th><th>count</th></tr>\n");
    latency_row(
        &mut o,
        if p.latency_means.starts_with("time to send") {
            "time to send (acks=0: nothing is acknowledged)"
        } else {
            "produce (send to acknowledgement)"
        },
        &p.latency_ms,
    );
    latency_row(
        &mut o,
        "failed deliveries (send to failure)",
        &p.failed_latency_ms,
    );
    latency_row(&mut o, "end-to-end", &c.e2e_latency_ms);
    o.push_str("</table>\n");
    let _ = writeln!(
        o,
        "<p>Error rate {:.2} % ({} of {} deliveries failed). Set-up before the first send {:.2} s (producer clients {:.2} s), outside the measured window.</p>",
        p.error_ratio * 100.0,
        p.failed,
        p.acked + p.failed,
        p.setup_s,
        p.clients_s
    );

    let d = &s.delivery;
    let _ = writeln!(o, "<h2>Delivery (expected: {})</h2>", esc(&d.expected));
    o.push_str("<table><tr><th>group</th><th>consumed</th><th>lost</th><th>duplicated</th><th>unexpected</th><th>reordered</th><th>aborted visible</th><th>corrupted</th></tr>\n");
    let _ = writeln!(
        o,
        "<tr><td><b>all (acked {})</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        d.acked, d.consumed, d.lost, d.duplicated, d.unexpected, d.reordered, d.aborted_visible, d.corrupted
    );
    for g in &d.per_group {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&g.group), g.consumed, g.lost, g.duplicated, g.unexpected, g.reordered, g.aborted_visible, g.corrupted
        );
    }
    if let Some(f) = &d.final_read {
        let _ = writeln!(
            o,
            "<tr><td>final read (the log after the run)</td><td>{}</td><td>{}</td><td></td><td></td><td></td><td></td><td>{}</td></tr>",
            f.read, f.lost, f.corrupted
        );
    }
    o.push_str("</table>\n");
    if let Some(f) = &d.final_read {
        if let Some(e) = &f.error {
            let _ = writeln!(o, "<p>Final read: {}</p>", esc(e));
        }
        for l in &f.partitions {
            let _ = writeln!(
                o,
                "<p>Final read: partition {} holds {} of {} acknowledged messages ({} missing)</p>",
                l.partition, l.held, l.acked, l.missing
            );
        }
    }

    let du = &s.durability;
    if !du.acks.is_empty() {
        kv_table(
            &mut o,
            "Durability",
            &[
                ("acks", du.acks.clone()),
                ("acknowledged means", du.acknowledged_means.clone()),
                ("replication factor", du.replication_factor.to_string()),
                (
                    "min.insync.replicas",
                    du.min_insync_replicas
                        .map_or("cluster default".into(), |m| m.to_string()),
                ),
                ("brokers", du.brokers.to_string()),
                ("acknowledged", du.acknowledged.to_string()),
                (
                    "acknowledged lost",
                    if du.verified {
                        du.acknowledged_lost.to_string()
                    } else {
                        "not verified (no consumer group)".into()
                    },
                ),
                ("duplicated", du.duplicated.to_string()),
                (
                    "recovery per fault",
                    if du.faults == 0 {
                        "no fault".into()
                    } else {
                        du.recovery_s
                            .iter()
                            .map(|r| r.map_or("not recovered".into(), |v| format!("{v:.2} s")))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                ),
                (
                    "writes held up per fault (over 1 s, or failed)",
                    if d.faults.is_empty() {
                        "no fault".into()
                    } else {
                        d.faults
                            .iter()
                            .map(|f| {
                                f.unavailable.as_ref().map_or("none".into(), |u| {
                                    format!(
                                        "{:.2}–{:.2} s ({:.2} s, {} writes)",
                                        u.from_s, u.to_s, u.duration_s, u.messages
                                    )
                                })
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                ),
                (
                    "produce errors",
                    du.produce_errors
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
            ],
        );
    }

    if !s.offsets.partitions.is_empty() {
        let _ = writeln!(
            o,
            "<h2>Offsets ({})</h2><table><tr><th>topic</th><th>partition</th><th>start</th><th>end</th><th>acked</th><th>ok</th></tr>",
            if s.offsets.ok { "all agree" } else { "MISMATCH" }
        );
        for po in &s.offsets.partitions {
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&po.topic),
                po.partition,
                po.start,
                po.end,
                po.acked,
                if po.ok { "yes" } else { "<b>no</b>" }
            );
        }
        o.push_str("</table>\n");
    }

    let od = &s.on_disk;
    kv_table(
        &mut o,
        "On disk",
        &[
            ("method", od.method.clone()),
            ("before", bytes(od.bytes_before)),
            ("after", bytes(od.bytes_after)),
            ("growth_bytes", format!("{} bytes", od.growth_bytes)),
            ("payload", bytes(od.payload_bytes)),
            ("replication factor", od.replication_factor.to_string()),
            (
                "growth / (payload × RF)",
                format!("{:.3}", od.overhead_ratio),
            ),
            (
                "ok",
                match od.ok {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "not checked".into(),
                },
            ),
            ("detail", od.detail.clone()),
        ],
    );

    let sy = &s.system;
    let mut sys = vec![
        (
            "CPU avg / max",
            format!(
                "{:.1} % / {:.1} % of the machine ({} cores)",
                sy.cpu_avg_pct, sy.cpu_max_pct, sy.cores
            ),
        ),
        (
            "memory max",
            format!(
                "{} of {}",
                bytes(sy.mem_max_bytes),
                bytes(sy.mem_total_bytes)
            ),
        ),
        (
            "network rx / tx",
            format!("{} / {}", bytes(sy.net_rx_bytes), bytes(sy.net_tx_bytes)),
        ),
        (
            "disk read / written",
            format!(
                "{} / {}",
                bytes(sy.disk_read_bytes),
                bytes(sy.disk_write_bytes)
            ),
        ),
    ];
    for pr in &sy.processes {
        sys.push((
            "process",
            format!(
                "{} (pid {}): CPU avg {:.1} % max {:.1} % of the machine, RSS max {}, wrote {}",
                pr.label,
                pr.pid,
                pr.cpu_avg_pct,
                pr.cpu_max_pct,
                bytes(pr.rss_max_bytes),
                bytes(pr.written_bytes)
            ),
        ));
    }
    kv_table(&mut o, "System", &sys);
    if !s.hosts.is_empty() {
        o.push_str("<h2>Hosts (one per shard; the System table above is shard 1's)</h2><table><tr><th>shard</th><th>host</th><th>acked</th><th>CPU avg / max (% of machine)</th><th>memory max</th><th>network rx / tx</th><th>disk written</th></tr>\n");
        for h in &s.hosts {
            let y = &h.system;
            if h.finished {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} / {:.1}</td><td>{}</td><td>{} / {}</td><td>{}</td></tr>",
                    esc(&h.shard),
                    esc(&h.host),
                    h.acked,
                    y.cpu_avg_pct,
                    y.cpu_max_pct,
                    bytes(y.mem_max_bytes),
                    bytes(y.net_rx_bytes),
                    bytes(y.net_tx_bytes),
                    bytes(y.disk_write_bytes)
                );
            } else {
                let _ = writeln!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td colspan=\"5\">did not finish</td></tr>",
                    esc(&h.shard),
                    esc(&h.host)
                );
            }
        }
        o.push_str("</table>\n");
    }
    if let Some(c) = &s.catch_up {
        let rows = [
            (
                "backlog",
                format!(
                    "{} messages, {}",
                    c.backlog_messages,
                    bytes(c.backlog_bytes)
                ),
            ),
            ("page cache", c.page_cache.clone()),
            (
                "drain",
                format!(
                    "{} messages in {:.2} s: {:.0} msgs/s, {:.1} MiB/s",
                    c.drained_messages, c.drain_s, c.drain_msgs_per_s, c.drain_mib_per_s
                ),
            ),
            (
                "first message / group settled",
                format!(
                    "{:.2} s / {:.2} s after the start",
                    c.first_message_s, c.assign_s
                ),
            ),
        ];
        kv_table(&mut o, "Catch-up", &rows);
    }

    if !s.errors.is_empty() {
        let rows: Vec<(&str, String)> = s
            .errors
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_string()))
            .collect();
        kv_table(&mut o, "Errors by kind", &rows);
    }
    if !s.events.is_empty() {
        o.push_str("<h2>Events</h2><table><tr><th>t (s)</th><th>kind</th><th>detail</th></tr>\n");
        for e in &s.events {
            let _ = writeln!(
                o,
                "<tr><td>{:.2}</td><td>{}</td><td>{}</td></tr>",
                e.t_s,
                esc(&e.kind),
                esc(&e.detail)
            );
        }
        o.push_str("</table>\n");
    }

    let config = serde_json::to_string_pretty(&s.config).unwrap_or_default();
    let _ = writeln!(
        o,
        "<h2>Configuration (resolved)</h2><pre>{}</pre>",
        esc(&config)
    );
    o.push_str("</body></html>\n");
    o
}

/// The headline numbers: throughput, p99 produce and end-to-end latency, lost/duplicated,
/// on-disk, each a tile with its unit and a line of context.
fn headline(o: &mut String, s: &Summary) {
    let p = &s.produce;
    let c = &s.consume;
    let d = &s.delivery;
    let mut tiles: Vec<(&str, String, String)> = vec![(
        "throughput",
        format!("{} msgs/s", thousands(p.msgs_per_s)),
        format!(
            "{:.1} MiB/s acknowledged{}",
            p.mib_per_s,
            match (p.target_msgs_per_s, p.rate_reached) {
                (Some(r), Some(false)) => format!(", target {} NOT reached", thousands(r)),
                (Some(r), _) => format!(", target {}", thousands(r)),
                _ => String::new(),
            }
        ),
    )];
    let produce_name = if p.latency_means.starts_with("time to send") {
        "p99 time to send"
    } else {
        "p99 produce latency"
    };
    tiles.push((
        produce_name,
        format!("{:.2} ms", p.latency_ms.p99),
        format!(
            "p50 {:.2} ms, max {:.2} ms",
            p.latency_ms.p50, p.latency_ms.max
        ),
    ));
    if c.e2e_latency_ms.count > 0 {
        tiles.push((
            "p99 end-to-end latency",
            format!("{:.2} ms", c.e2e_latency_ms.p99),
            format!(
                "p50 {:.2} ms; consumed {} msgs/s",
                c.e2e_latency_ms.p50,
                thousands(c.msgs_per_s)
            ),
        ));
    }
    tiles.push(if d.expected.is_empty() || d.expected == "none" {
        (
            "lost / duplicated",
            "not verified".into(),
            "no delivery check in this scenario".into(),
        )
    } else {
        (
            "lost / duplicated",
            format!("{} / {}", d.lost, d.duplicated),
            format!("of {} acknowledged ({})", d.acked, d.expected),
        )
    });
    let od = &s.on_disk;
    tiles.push((
        "on disk",
        match od.ok {
            Some(true) => "ok".into(),
            Some(false) => "MISMATCH".into(),
            None => "not checked".into(),
        },
        if od.payload_bytes > 0 {
            format!(
                "grew {} for {} payload × RF {} (ratio {:.3})",
                bytes(od.growth_bytes.max(0) as u64),
                bytes(od.payload_bytes),
                od.replication_factor,
                od.overhead_ratio
            )
        } else {
            String::new()
        },
    ));
    if p.failed > 0 {
        tiles.push((
            "failed deliveries",
            format!("{:.2} %", p.error_ratio * 100.0),
            format!("{} of {}", p.failed, p.acked + p.failed),
        ));
    }
    o.push_str("<div class=\"headline\">");
    for (name, value, note) in tiles {
        let _ = write!(
            o,
            "<div class=\"tile\"><div class=\"name\">{}</div><div class=\"value\">{}</div><div class=\"note\">{}</div></div>",
            esc(name),
            esc(&value),
            esc(&note)
        );
    }
    o.push_str("</div>\n");
}

/// The charts, inline, each followed by its event table or replaced by why it is not drawn.
/// The same events under several charts are tabled once, under the first of them; the others
/// point to it.
fn figures(o: &mut String, charts: &[Figure]) {
    o.push_str("<h2>Charts</h2>\n");
    let mut tabled: Option<&Figure> = None;
    for f in charts {
        match (&f.svg, &f.not_drawn) {
            (Some(svg), _) => {
                // The chart draws its own title: no caption over it.
                let _ = writeln!(o, "<figure class=\"chart\">{svg}");
                if let Some(first) = tabled.filter(|t| !f.events.is_empty() && t.events == f.events)
                {
                    let _ = write!(
                        o,
                        "<p class=\"events-ref\">Events numbered as in the table under {}.</p>",
                        esc(&first.title)
                    );
                } else if !f.events.is_empty() {
                    tabled = Some(f);
                    o.push_str(
                        "<table class=\"events\"><tr><th>#</th><th>t (s)</th><th>event</th></tr>",
                    );
                    for (i, (t, label)) in f.events.iter().enumerate() {
                        let _ = write!(
                            o,
                            "<tr><td>{}</td><td>{t:.2}</td><td>{}</td></tr>",
                            i + 1,
                            esc(label)
                        );
                    }
                    o.push_str("</table>");
                }
                o.push_str("</figure>\n");
            }
            (None, why) => {
                let _ = writeln!(
                    o,
                    "<p class=\"not-drawn\"><b>{}</b>: not drawn: {}.</p>",
                    esc(&f.title),
                    esc(why.as_deref().unwrap_or("no data"))
                );
            }
        }
    }
}

/// `327614` → `327,614`.
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}.verdict{padding:.8em 1em;border-radius:4px;font-size:1.2em}\
.pass{background:#dff0d8}.fail{background:#f2dede}figure{margin:1em 0}figcaption{font-weight:bold}\
pre{background:#f6f6f6;padding:1em;overflow:auto}svg{max-width:100%;height:auto}\
.headline{display:flex;flex-wrap:wrap;gap:.6em;margin:1em 0}.tile{flex:1 1 150px;border:1px solid #ccc;border-radius:4px;padding:.5em .8em}\
.tile .name{color:#555;font-size:.9em}.tile .value{font-size:1.4em;font-weight:bold}.tile .note{color:#555;font-size:.8em}\
table.events{font-size:.85em}table.events td,table.events th{text-align:left}.not-drawn{color:#555}";

fn kv_table(o: &mut String, title: &str, rows: &[(&str, String)]) {
    let _ = writeln!(o, "<h2>{}</h2><table>", esc(title));
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    o.push_str("</table>\n");
}

fn latency_row(o: &mut String, name: &str, p: &Percentiles) {
    let _ = writeln!(
        o,
        "<tr><td>{name}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{}</td></tr>",
        p.p50, p.p90, p.p99, p.p999, p.max, p.mean, p.count
    );
}

/// Escapes text for HTML.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testdata;

    #[test]
    fn page_has_verdict_first_tables_charts_and_config() {
        let s = testdata::run_data().summary;
        let figures = [
            Figure {
                title: "Throughput".into(),
                svg: Some("<svg>x</svg>".into()),
                not_drawn: None,
                events: vec![(1.5, "fault: kill broker 1".into())],
            },
            Figure {
                title: "CPU".into(),
                svg: None,
                not_drawn: Some("only 2 sampling interval(s) had a value".into()),
                events: Vec::new(),
            },
        ];
        let html = report_html(&s, &figures);
        let at = |needle: &str| {
            html.find(needle)
                .unwrap_or_else(|| panic!("{needle} missing"))
        };
        // Verdict, then the headline numbers, then the charts, then the detail tables.
        assert!(at("PASSED") < at("class=\"headline\""));
        assert!(at("class=\"headline\"") < at("<svg>x</svg>"));
        assert!(at("<svg>x</svg>") < at("<h2>Throughput"));
        assert!(html.contains("p99 end-to-end latency") && html.contains("lost / duplicated"));
        assert!(html.contains("<td>1</td><td>1.50</td><td>fault: kill broker 1</td>"));
        assert!(html.contains("<b>CPU</b>: not drawn: only 2 sampling interval(s)"));
        assert!(html.contains("Configuration (resolved)"));
        assert!(html.contains("&quot;acks&quot;"));
        assert!(!html.contains("<script"));
    }
}
