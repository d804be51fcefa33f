//! Scenarios: a TOML file (plus `--set` overrides and `[matrix]` expansion) turned into typed,
//! checked [`Scenario`]s before anything starts.
//!
//! Loading happens in stages so that every error can point at its cause: the file is parsed with
//! spans (syntax errors and unknown keys get `file:line:column` and the section they are in), the
//! typed schema in [`schema`] fills in defaults, [`Scenario::validate`] checks relations between
//! keys (located in the file by their key path), and only then are `--set` overrides and matrix
//! combinations applied, each re-checked and named in any error it causes.

pub mod overrides;
pub mod schema;
pub mod units;

use std::path::{Path, PathBuf};

pub use schema::*;

/// Why a scenario cannot run. The message names the file, line and column (or the `--set`
/// argument, or the matrix combination) and the key.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read the scenario: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file, an override or a matrix combination is not a valid scenario.
    #[error("{location}: {message}")]
    Invalid {
        /// `file:line:column`, or `file` plus the override or combination.
        location: String,
        /// What is wrong and, where there is one, the fix.
        message: String,
    },
}

/// Most runs one `[matrix]` may expand to. Each is a whole benchmark run, so more is a mistake,
/// and it is refused before the combinations are built: their number is the product of the
/// lists' lengths (ten keys of eight values are a billion), and building them took memory in
/// proportion until `kbench validate` ran out of memory (found while writing the `scenario` fuzz
/// target and confirmed with it: `fuzz/regressions/scenario/matrix-of-a-billion-runs.toml`).
pub const MAX_MATRIX_RUNS: usize = 1000;

/// One run of a loaded scenario: the whole scenario, or one combination of its matrix.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Matrix label (`acks-all`), or `None` for a scenario without a matrix.
    pub label: Option<String>,
    /// The overrides the matrix applied, in key order.
    pub matrix_values: Vec<(String, toml::Value)>,
    /// The checked scenario.
    pub scenario: Scenario,
}

/// A scenario file loaded, overridden, expanded and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file it came from.
    pub file: PathBuf,
    /// The scenario with overrides but without matrix expansion.
    pub base: Scenario,
    /// What to run: one variant, or one per matrix combination.
    pub variants: Vec<Variant>,
}

/// Reads, overrides (`--set`), expands and checks a scenario file.
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded, ScenarioError> {
    load_for(path, sets, false)
}

/// [`load`] for a run against an external cluster given by `--bootstrap` (`external`), where
/// faults that act on embedded broker processes are errors too.
pub fn load_for(path: &Path, sets: &[String], external: bool) -> Result<Loaded, ScenarioError> {
    let src = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
        file: path.display().to_string(),
        source,
    })?;
    let host = Host::current();
    let loaded = load_text(&src, path, sets, external, &host)?;
    if external {
        let doc = toml::de::DeTable::parse(&src).map_err(|e| ScenarioError::Invalid {
            location: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        for v in &loaded.variants {
            let mut s = v.scenario.clone();
            s.cluster.bootstrap = Some("--bootstrap".into());
            s.validate_on(&host).map_err(|inv| {
                let location = match locate(doc.get_ref(), &inv.key) {
                    Some(o) => {
                        let (line, col) = line_col(&src, o);
                        format!("{}:{line}:{col}", path.display())
                    }
                    None => path.display().to_string(),
                };
                ScenarioError::Invalid {
                    location,
                    message: format!("{}: {} (with --bootstrap)", inv.key, inv.message),
                }
            })?;
        }
    }
    Ok(loaded)
}

/// [`load`] on text already read; `path` is only used in messages and in the result.
pub fn load_str(src: &str, path: &Path, sets: &[String]) -> Result<Loaded, ScenarioError> {
    load_text(src, path, sets, false, &Host::current())
}

/// [`load_str`] as if on a machine described by `host` (what a test states).
pub fn load_str_on(
    src: &str,
    path: &Path,
    sets: &[String],
    host: &Host,
) -> Result<Loaded, ScenarioError> {
    load_text(src, path, sets, false, host)
}

/// Checks a scenario as it will run: against `--bootstrap` (`external`), what only embedded
/// brokers need (enough of them for the replication factor) does not apply.
fn validate_for(s: &Scenario, external: bool, host: &Host) -> Result<(), Invalid> {
    if external && s.cluster.bootstrap.is_none() {
        let mut s = s.clone();
        s.cluster.bootstrap = Some("--bootstrap".into());
        return s.validate_on(host);
    }
    s.validate_on(host)
}

fn load_text(
    src: &str,
    path: &Path,
    sets: &[String],
    external: bool,
    host: &Host,
) -> Result<Loaded, ScenarioError> {
    let file = path.display().to_string();
    let located = |offset: Option<usize>, message: String| ScenarioError::Invalid {
        location: match offset {
            Some(o) => {
                let (line, col) = line_col(src, o);
                format!("{file}:{line}:{col}")
            }
            None => file.clone(),
        },
        message,
    };
    let doc = toml::de::DeTable::parse(src)
        .map_err(|e| located(e.span().map(|s| s.start), e.message().to_string()))?;
    let doc = doc.get_ref();

    // Stage 1: the file alone, with spans.
    let from_file: Scenario = toml::from_str(src).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        let section = offset.map(|o| section_at(src, doc, o)).unwrap_or_default();
        located(offset, describe(e.message(), &section))
    })?;
    validate_for(&from_file, external, host).map_err(|inv| {
        located(
            locate(doc, &inv.key),
            format!("{}: {}", inv.key, inv.message),
        )
    })?;

    // Stage 2: overrides, each checked on its own so an error names the one at fault.
    let mut table: toml::Table =
        toml::from_str(src).map_err(|e| located(None, e.message().to_string()))?;
    let mut base = from_file;
    for arg in sets {
        let at = |message: String| ScenarioError::Invalid {
            location: format!("{file}: --set {arg}"),
            message,
        };
        let (key, value) = overrides::parse_set(arg).map_err(|m| ScenarioError::Invalid {
            location: file.clone(),
            message: m,
        })?;
        overrides::apply(&mut table, &key, value).map_err(at)?;
        base = typed(&table).map_err(at)?;
        validate_for(&base, external, host)
            .map_err(|inv| at(format!("{}: {}", inv.key, inv.message)))?;
    }

    // Stage 3: matrix expansion.
    let mut variants = Vec::new();
    if base.matrix.is_empty() {
        variants.push(Variant {
            label: None,
            matrix_values: Vec::new(),
            scenario: base.clone(),
        });
    } else {
        for (key, values) in &base.matrix {
            if values.is_empty() {
                return Err(located(
                    locate(doc, &format!("matrix.\"{key}\"")),
                    format!(
                        "matrix key \"{key}\" has no values; give a list such as [0, 1, \"all\"]"
                    ),
                ));
            }
            if key.starts_with("matrix") || key == "name" {
                return Err(located(
                    locate(doc, "matrix"),
                    format!("matrix key \"{key}\" cannot vary"),
                ));
            }
        }
        let runs = base
            .matrix
            .values()
            .fold(1u128, |n, values| n.saturating_mul(values.len() as u128));
        if runs > MAX_MATRIX_RUNS as u128 {
            let sizes: Vec<String> = base.matrix.values().map(|v| v.len().to_string()).collect();
            return Err(located(
                locate(doc, "matrix"),
                format!(
                    "[matrix] expands to {runs} runs ({}); at most {MAX_MATRIX_RUNS} run in one \
                     matrix: drop values or split it into several scenarios",
                    sizes.join(" × ")
                ),
            ));
        }
        let mut base_table = table.clone();
        base_table.remove("matrix");
        for combo in overrides::combinations(&base.matrix) {
            let label = overrides::label(&combo);
            let mut t = base_table.clone();
            let at = |message: String| ScenarioError::Invalid {
                location: format!("{file}: [matrix] combination {label}"),
                message,
            };
            for (key, value) in &combo {
                overrides::apply_merged(&mut t, key, value.clone()).map_err(at)?;
            }
            let scenario = typed(&t).map_err(at)?;
            validate_for(&scenario, external, host)
                .map_err(|inv| at(format!("{}: {}", inv.key, inv.message)))?;
            variants.push(Variant {
                label: Some(label),
                matrix_values: combo,
                scenario,
            });
        }
    }
    Ok(Loaded {
        file: path.to_path_buf(),
        base,
        variants,
    })
}

fn typed(table: &toml::Table) -> Result<Scenario, String> {
    use serde::Deserialize;
    let mut s = Scenario::deserialize(toml::Value::Table(table.clone()))
        .map_err(|e| describe(e.message(), &[]))?;
    s.verify.delivery = s.verify.delivery.resolve(
        s.producers.acks,
        s.topic.replication_factor,
        s.topic.min_insync(),
    );
    Ok(s)
}

/// Rewrites serde's messages into kbench's wording: `unknown field `x`, expected one of ...` →
/// `unknown key "x" in [section]; expected one of ... (did you mean ...?)`.
fn describe(message: &str, section: &[String]) -> String {
    let message = message.trim();
    let where_ = if section.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in [{}]", section.join("."))
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once('`') {
            let options: Vec<&str> = expected
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s)
                .collect();
            let hint = options
                .iter()
                .map(|o| (edit_distance(name, o), *o))
                .filter(|(d, o)| *d <= 3.max(o.len() / 3))
                .min()
                .map(|(_, o)| format!(" (did you mean \"{o}\"?)"))
                .unwrap_or_default();
            return format!(
                "unknown key \"{name}\" {where_}; expected one of {}{hint}",
                options.join(", ")
            );
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        if let Some((name, expected)) = rest.split_once('`') {
            let options: Vec<&str> = expected
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s)
                .collect();
            return format!(
                "\"{name}\" is not a valid value {where_}; use one of {}",
                options.join(", ")
            );
        }
    }
    if section.is_empty() {
        message.to_string()
    } else {
        format!("{} {where_}", message.trim_end_matches('.'))
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// 1-based line and column of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The section (`[producers]`, `[cluster.configs]`) the byte at `offset` is in: the last table
/// header before it, or, in the top-level part of the file, the table whose span holds it.
fn section_at(src: &str, doc: &toml::de::DeTable<'_>, offset: usize) -> Vec<String> {
    let before = &src[..offset.min(src.len())];
    for line in before.lines().rev() {
        let line = line.trim();
        if line.starts_with('[') {
            let name = line.trim_start_matches('[').split(']').next().unwrap_or("");
            return overrides::split_key(name.trim())
                .unwrap_or_else(|_| vec![name.trim().to_string()]);
        }
    }
    path_at(doc, offset)
}

/// The key path of the innermost table whose value contains `offset` (the section an error is in).
fn path_at(table: &toml::de::DeTable<'_>, offset: usize) -> Vec<String> {
    for (key, value) in table {
        let span = value.span();
        let inside = span.start <= offset && offset < span.end.max(span.start + 1);
        let on_key = key.span().start <= offset && offset < key.span().end;
        if let Some(inner) = value.get_ref().as_table() {
            if inside || on_key {
                let mut path = vec![key.get_ref().to_string()];
                if inside {
                    path.extend(path_at(inner, offset));
                }
                return path;
            }
        }
    }
    Vec::new()
}

/// Byte offset of a dotted key path in the file; the deepest part that exists if not all do.
/// A part may index an array of tables: `pipeline.kills[1].worker`.
fn locate(table: &toml::de::DeTable<'_>, key: &str) -> Option<usize> {
    let mut parts = Vec::new();
    for part in key.split('.') {
        match part.split_once('[') {
            Some((name, index)) => {
                let i = index.trim_end_matches(']').parse::<usize>().ok()?;
                parts.push((name.trim_matches('"').to_string(), Some(i)));
            }
            None => parts.push((part.trim_matches('"').to_string(), None)),
        }
    }
    if !key.contains('[') {
        // Quoted parts may hold dots: let TOML split them.
        parts = overrides::split_key(key)
            .ok()?
            .into_iter()
            .map(|p| (p, None))
            .collect();
    }
    let mut current = table;
    let mut found = None;
    for (part, index) in parts {
        let (k, v) = current
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == part.as_str())?;
        found = Some(k.span().start);
        let value = match index {
            Some(i) => match v.get_ref().as_array().and_then(|a| a.get(i)) {
                Some(item) => {
                    found = Some(item.span().start);
                    item
                }
                None => break,
            },
            None => v,
        };
        match value.get_ref().as_table() {
            Some(t) => current = t,
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(src: &str, sets: &[&str]) -> Result<Loaded, ScenarioError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        load_str(src, Path::new("x.toml"), &sets)
    }

    const GOOD: &str = r#"
name = "t"

[producers]
count = 2
messages_each = 100
message_size = "1KiB"
acks = 1

[consumers]
groups = 1
members = 2
"#;

    #[test]
    fn min_insync_replicas_becomes_a_topic_config_and_is_checked() {
        let l = load_text(
            "name = \"t\"\n[cluster]\nbrokers = 3\n[topic]\nreplication_factor = 3\nmin_insync_replicas = 2\nconfigs = { \"min.insync.replicas\" = 1, \"retention.ms\" = 1000 }\n",
            &[],
        )
        .unwrap();
        let t = &l.variants[0].scenario.topic;
        assert_eq!(t.min_insync(), Some(2));
        let mut c = t.create_configs();
        c.sort();
        assert_eq!(
            c,
            vec![
                ("min.insync.replicas".to_string(), "2".to_string()),
                ("retention.ms".to_string(), "1000".to_string()),
            ]
        );
        let err = load_text(
            "name = \"t\"\n[cluster]\nbrokers = 3\n[topic]\nreplication_factor = 2\nmin_insync_replicas = 3\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("min_insync_replicas = 3") && err.contains("replication_factor (2)"),
            "{err}"
        );
    }

    #[test]
    fn transactions_run_on_an_embedded_cluster() {
        let src = "name = \"t\"\n[cluster]\nbrokers = 3\n[producers]\nacks = \"all\"\ntransactional = true\n";
        assert!(load_text(src, &[]).is_ok());
        let one = src.replace("brokers = 3", "brokers = 1");
        assert!(load_text(&one, &[]).is_ok());
        let pipeline = "name = \"t\"\n[cluster]\nbrokers = 3\n[producers]\nacks = \"all\"\n[pipeline]\nworkers = 2\n";
        assert!(
            load_text(pipeline, &[]).is_ok(),
            "{:?}",
            load_text(pipeline, &[]).err()
        );
    }

    #[test]
    fn durable_delivery_is_judged_only_where_the_settings_promise_it() {
        let expect = |sets: &[&str]| {
            let mut all = vec!["verify.delivery=durable", "cluster.brokers=3"];
            all.extend_from_slice(sets);
            load_text("name = \"t\"", &all).unwrap().variants[0]
                .scenario
                .verify
                .delivery
        };
        let durable = [
            "producers.acks=all",
            "topic.replication_factor=3",
            "topic.min_insync_replicas=2",
        ];
        assert_eq!(expect(&durable), Delivery::AtLeastOnce);
        assert_eq!(
            expect(&[
                "producers.acks=1",
                "topic.replication_factor=3",
                "topic.min_insync_replicas=2"
            ]),
            Delivery::None
        );
        assert_eq!(
            expect(&["producers.acks=all", "topic.replication_factor=3"]),
            Delivery::None,
            "min.insync 1 lets one replica acknowledge alone"
        );
        assert_eq!(expect(&["producers.acks=all"]), Delivery::None);
        // Other expectations are left alone.
        let l = load_text("name = \"t\"\n[verify]\ndelivery = \"exactly-once\"\n", &[]).unwrap();
        assert_eq!(
            l.variants[0].scenario.verify.delivery,
            Delivery::ExactlyOnce
        );
    }

    #[test]
    fn cluster_mode_defaults_to_replicated() {
        use crate::scenario::schema::ClusterMode;
        let l = load_text("name = \"t\"\n[cluster]\nbrokers = 3\n", &[]).unwrap();
        assert_eq!(l.variants[0].scenario.cluster.mode, ClusterMode::Replicated);
        let l = load_text(
            "name = \"t\"\n[cluster]\nbrokers = 3\nmode = \"independent\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            l.variants[0].scenario.cluster.mode,
            ClusterMode::Independent
        );
        assert!(load_text("name = \"t\"\n[cluster]\nmode = \"raft\"\n", &[]).is_err());
    }

    #[test]
    fn defaults_fill_in_what_the_file_leaves_out() {
        let l = load_text("name = \"t\"", &[]).unwrap();
        let s = &l.variants[0].scenario;
        assert_eq!(s.cluster.brokers, 1);
        assert_eq!(s.topic.partitions, 8);
        assert_eq!(s.producers.stop(), Stop::Messages(10_000));
        assert_eq!(s.producers.acks, Acks::All);
        assert_eq!(s.consumers.groups, 1);
        assert_eq!(s.verify.delivery, Delivery::AtLeastOnce);
    }

    #[test]
    fn typo_is_located_with_section_and_suggestion() {
        let src = GOOD.replace("messages_each", "messages_eahc");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("x.toml:6:1: unknown key \"messages_eahc\" in [producers]"),
            "{e}"
        );
        assert!(e.contains("did you mean \"messages_each\""), "{e}");
        let e = load_text("name = \"t\"\nnaem = 1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml:2:1: unknown key \"naem\" at the top level"),
            "{e}"
        );
    }

    #[test]
    fn bad_unit_is_located() {
        let src = GOOD.replace("\"1KiB\"", "\"1 parsec\"");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(e.starts_with("x.toml:7:"), "{e}");
        assert!(e.contains("unknown size unit"), "{e}");
    }

    #[test]
    fn bad_enum_names_the_choices() {
        let src = GOOD.replace("groups = 1", "groups = 1\ncommit = \"sometimes\"");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(e.contains("x.toml:12:"), "{e}");
        assert!(e.contains("manual-sync"), "{e}");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = load_text("name = \"t\"\n[producers\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:2:"), "{e}");
    }

    #[test]
    fn validation_error_points_at_the_key() {
        let src = GOOD.replace("count = 2", "count = 0");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(e.starts_with("x.toml:5:1: producers.count:"), "{e}");
        let src = GOOD.replace("message_size = \"1KiB\"", "message_size = 8");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(
            e.contains("x.toml:7:1") && e.contains("identity header"),
            "{e}"
        );
    }

    #[test]
    fn set_overrides_any_key() {
        let l = load_text(
            GOOD,
            &[
                "producers.count=5",
                "producers.acks=all",
                "topic.partitions=3",
                "producers.client_configs.\"linger.ms\"=7",
            ],
        )
        .unwrap();
        let s = &l.variants[0].scenario;
        assert_eq!(s.producers.count, 5);
        assert_eq!(s.producers.acks, Acks::All);
        assert_eq!(s.topic.partitions, 3);
        assert_eq!(s.producers.client_configs["linger.ms"].0, "7");
    }

    #[test]
    fn set_errors_name_the_override() {
        let e = load_text(GOOD, &["producers.cuont=5"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--set producers.cuont=5") && e.contains("unknown key \"cuont\""),
            "{e}"
        );
        let e = load_text(GOOD, &["producers.count=0"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--set producers.count=0") && e.contains("at least") || e.contains("1..="),
            "{e}"
        );
    }

    #[test]
    fn matrix_expands_to_checked_variants() {
        let src = format!("{GOOD}\n[matrix]\n\"producers.acks\" = [0, 1, \"all\"]\n");
        let l = load_text(&src, &[]).unwrap();
        assert_eq!(l.variants.len(), 3);
        assert_eq!(l.variants[0].scenario.producers.acks, Acks::None);
        assert_eq!(l.variants[2].scenario.producers.acks, Acks::All);
        assert_eq!(l.variants[2].label.as_deref(), Some("acks-all"));
        assert!(l.variants[0].scenario.matrix.is_empty());
        let src = format!("{GOOD}\n[matrix]\n\"producers.acks\" = [2]\n");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(
            e.contains("combination acks-2") && e.contains("acks = 2"),
            "{e}"
        );
    }

    #[test]
    fn a_matrix_of_more_than_a_thousand_runs_is_refused_before_it_is_expanded() {
        // 8^10: a billion combinations, which the expansion tried to hold in memory.
        let keys: String = (0..10)
            .map(|i| format!("\"producers.k{i}\" = [1, 2, 3, 4, 5, 6, 7, 8]\n"))
            .collect();
        let src = format!("{GOOD}\n[matrix]\n{keys}");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("x.toml:14:2:") && e.contains("expands to 1073741824 runs (8 × 8"),
            "{e}"
        );
        // 7 × 11 × 13 = 1001, one past the limit, also through --set.
        let list = |n: u32| {
            format!(
                "[{}]",
                (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
            )
        };
        let sets = [
            format!("matrix.\"producers.count\"={}", list(7)),
            format!("matrix.\"producers.messages_each\"={}", list(11)),
            format!("matrix.\"consumers.members\"={}", list(13)),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let e = load_text(GOOD, &sets).unwrap_err().to_string();
        assert!(e.contains("1001 runs") && e.contains("at most 1000"), "{e}");
        // 10 × 10 × 10 is allowed.
        let sets = [
            format!("matrix.\"producers.count\"={}", list(10)),
            format!("matrix.\"producers.messages_each\"={}", list(10)),
            format!("matrix.\"consumers.members\"={}", list(10)),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        assert_eq!(load_text(GOOD, &sets).unwrap().variants.len(), 1000);
    }

    #[test]
    fn transaction_keys_are_checked_together() {
        let e = load_text(GOOD, &["producers.abort_ratio=0.1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("producers.abort_ratio") && e.contains("producers.transactional = true"),
            "{e}"
        );
        let e = load_text(GOOD, &["producers.transactional=true"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("producers.acks") && e.contains("implies idempotence"),
            "{e}"
        );
        let l = load_text(
            GOOD,
            &[
                "producers.acks=all",
                "producers.transactional=true",
                "producers.abort_ratio=0.2",
            ],
        )
        .unwrap();
        let p = &l.variants[0].scenario.producers;
        assert!(p.idempotent() && p.messages_per_transaction == 100);
        let e = load_text(
            GOOD,
            &[
                "producers.acks=all",
                "producers.transactional=true",
                "producers.abort_ratio=1.5",
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("between 0.0 and 1.0"), "{e}");
    }

    #[test]
    fn a_bad_kill_is_located_in_its_array_entry() {
        let src = format!(
            "{GOOD}\n[pipeline]\nworkers = 2\n\n[[pipeline.kills]]\nworker = 0\nat = \"1s\"\n\n[[pipeline.kills]]\nworker = 5\nat = \"2s\"\n"
        );
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(e.starts_with("x.toml:22:1:"), "{e}");
        assert!(
            e.contains("pipeline.kills[1].worker") && e.contains("there are 2 workers"),
            "{e}"
        );
        let src = format!("{GOOD}\n[pipeline]\n[[pipeline.kills]]\nworker = 0\n");
        let e = load_text(&src, &[]).unwrap_err().to_string();
        assert!(e.contains("exactly one of at"), "{e}");
    }

    #[test]
    fn resolved_config_round_trips() {
        let l = load_text(GOOD, &[]).unwrap();
        let json = l.variants[0].scenario.resolved();
        assert_eq!(json["producers"]["message_size"], "1KiB");
        assert_eq!(json["producers"]["acks"], "1");
        let back: Scenario = serde_json::from_value(json).unwrap();
        assert_eq!(back.producers.message_size.0, 1024);
    }

    #[test]
    fn secret_client_settings_never_reach_the_report() {
        let l = load_text(
            GOOD,
            &[
                "cluster.client_configs.\"sasl.password\"=hunter2",
                "producers.client_configs.\"ssl.key.password\"=k3y",
                "cluster.client_configs.\"sasl.username\"=alice",
            ],
        )
        .unwrap();
        let json = l.variants[0].scenario.resolved().to_string();
        assert!(!json.contains("hunter2") && !json.contains("k3y"), "{json}");
        assert!(json.contains("alice"), "{json}");
    }
}
