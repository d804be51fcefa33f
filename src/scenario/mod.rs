//! Scenarios: a TOML file (plus `--set` overrides and `[matrix]` expansion) turned into typed,
//! checked [`Scenario`]s before anything starts.
//!
//! Loading happens in stages so that every error can point at its cause: the file is parsed with
//! spans (syntax errors and unknown keys get `file:line:column` and the section they are in), the
//! typed schema in [`schema`] fills in defaults, [`Scenario::validate`] checks relations between
//! keys (located in the file by their key path), and only then are `--set` overrides and matrix
//! combinations applied, each re-checked and named in any error it causes.

pub mod builtin;
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
    #[error("{file}: cannot read the scenario: {error}")]
    Read {
        /// The file.
        file: String,
        /// Why (in the message itself, so it is said once).
        error: std::io::Error,
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

/// One override of a scenario key: `key.path=value` and what the user wrote to ask for it
/// (`--set producers.count=4`, or a flag of the quick mode such as `--producers 4`), which an
/// error caused by it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// `key.path=value`.
    pub set: String,
    /// How the command line said it: `--set key.path=value`, `--producers 4`.
    pub flag: String,
}

impl Override {
    /// `--set ARG`.
    pub fn set(arg: &str) -> Override {
        Override {
            set: arg.to_string(),
            flag: format!("--set {arg}"),
        }
    }

    /// `key=value` asked for by `flag` (a flag of the quick mode).
    pub fn flag(key: &str, value: &str, flag: String) -> Override {
        Override {
            set: format!("{key}={value}"),
            flag,
        }
    }
}

/// `--set` arguments as overrides.
pub fn sets(args: &[String]) -> Vec<Override> {
    args.iter().map(|a| Override::set(a)).collect()
}

/// One line saying what a run of `s` will do (the plan): producers, amount, message size
/// with its byte count (`1KB (1000 B)`: decimal and binary units differ), rate, acks,
/// groups, topic and brokers, and the delivery expected.
pub fn plan_line(s: &Scenario, label: Option<&str>) -> String {
    let p = &s.producers;
    let mut amount = match p.stop() {
        Stop::Messages(n) => format!("{n} messages each"),
        Stop::Duration(d) => format!("for {}", units::format_duration(d)),
    };
    let mut rate = p.rate_each().map_or("flat out".to_string(), |r| {
        format!("at {} each", units::format_rate(r))
    });
    if let Some(m) = &s.max_rate {
        amount = format!(
            "up to {} steps of {}",
            m.max_steps,
            units::format_duration(m.step_duration.0)
        );
        rate = format!(
            "max-rate search from {} to {} in total, p99 ≤ {}",
            units::format_rate(m.start_rate.0),
            units::format_rate(m.ceiling.0),
            units::format_duration(m.p99_bound.0)
        );
    }
    let groups_begin = if s.consumers.begin == Begin::AfterProduce {
        " started after producing (catch-up)"
    } else {
        ""
    };
    format!(
        "{}{}: {} producer(s) × {amount} of {} ({} B) ({rate}, acks={}), {} group(s) × {} member(s){groups_begin}, {} partition(s) RF {}{}, {} broker(s), delivery {}",
        s.name,
        label.map(|l| format!(" [{l}]")).unwrap_or_default(),
        p.count,
        units::format_size(p.message_size.0),
        p.message_size.0,
        p.acks.as_config(),
        s.consumers.groups,
        s.consumers.members,
        s.topic.partitions,
        s.topic.replication_factor,
        s.topic
            .min_insync()
            .map(|m| format!(" min.insync {m}"))
            .unwrap_or_default(),
        s.cluster.brokers,
        s.verify.delivery.as_str()
    )
}

/// Reads, overrides (`--set`), expands and checks a scenario file.
pub fn load(path: &Path, sets: &[String]) -> Result<Loaded, ScenarioError> {
    load_for(path, sets, false)
}

/// [`load`] for a run against an external cluster given by `--bootstrap` (`external`), where
/// faults that act on embedded broker processes are errors too.
pub fn load_for(path: &Path, sets: &[String], external: bool) -> Result<Loaded, ScenarioError> {
    let src = std::fs::read_to_string(path).map_err(|error| ScenarioError::Read {
        file: path.display().to_string(),
        error,
    })?;
    load_text(&src, path, &self::sets(sets), external, &Host::current())
}

/// Loads scenario text (a file's or a built-in one's) with overrides, for a run against an
/// external cluster when `external`; `path` names it in messages and in the result.
pub fn load_overridden(
    src: &str,
    path: &Path,
    overrides: &[Override],
    external: bool,
) -> Result<Loaded, ScenarioError> {
    load_text(src, path, overrides, external, &Host::current())
}

/// [`load`] on text already read; `path` is only used in messages and in the result.
pub fn load_str(src: &str, path: &Path, sets: &[String]) -> Result<Loaded, ScenarioError> {
    load_text(src, path, &self::sets(sets), false, &Host::current())
}

/// [`load_str`] as if on a machine described by `host` (what a test states).
pub fn load_str_on(
    src: &str,
    path: &Path,
    sets: &[String],
    host: &Host,
) -> Result<Loaded, ScenarioError> {
    load_text(src, path, &self::sets(sets), false, host)
}

/// Checks a scenario as it will run: against `--bootstrap` (`external`), what only embedded
/// brokers need (enough of them for the replication factor) does not apply, and faults that
/// act on embedded broker processes are errors.
fn validate_for(s: &Scenario, external: bool, host: &Host) -> Result<(), Invalid> {
    if external && s.cluster.bootstrap.is_none() {
        let mut s = s.clone();
        s.cluster.bootstrap = Some("--bootstrap".into());
        return s.validate_on(host).map_err(|mut inv| {
            inv.message.push_str(" (with --bootstrap)");
            inv
        });
    }
    s.validate_on(host)
}

/// Where the text of a scenario came from, to point at the cause of an error: the file (with
/// spans) and the overrides applied to it.
struct Blame<'a> {
    file: String,
    src: &'a str,
    doc: &'a toml::de::DeTable<'a>,
    overrides: &'a [(Vec<String>, &'a Override)],
}

impl Blame<'_> {
    fn at_offset(&self, offset: Option<usize>, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            location: match offset {
                Some(o) => {
                    let (line, col) = line_col(self.src, o);
                    format!("{}:{line}:{col}", self.file)
                }
                None => self.file.clone(),
            },
            message,
        }
    }

    /// The last override that set `key` or a table holding it (or a key inside it).
    fn override_of(&self, key: &[String]) -> Option<&Override> {
        self.overrides
            .iter()
            .rev()
            .find(|(k, _)| {
                let n = k.len().min(key.len());
                k[..n] == key[..n]
            })
            .map(|(_, o)| *o)
    }

    /// A relation that does not hold in `s`: `file:line:col: key = value: what is allowed`,
    /// or `--set key=value: key = value: ...` when an override set the key.
    fn invalid(&self, s: &Scenario, inv: &Invalid) -> ScenarioError {
        let parts = key_parts(&inv.key);
        let message = render(&inv.key, value_of(s, &inv.key).as_deref(), &inv.message);
        match self.override_of(&parts) {
            Some(o) => ScenarioError::Invalid {
                location: o.flag.clone(),
                message,
            },
            None => self.at_offset(locate(self.doc, &inv.key), message),
        }
    }
}

/// `key = value: message`, without the message's own `leaf = value` opening if it has one
/// (`count = 0 must be 1..=10000` → `producers.count = 0: must be 1..=10000`).
fn render(key: &str, value: Option<&str>, message: &str) -> String {
    let leaf = key.rsplit('.').next().unwrap_or(key);
    let leaf = leaf.split('[').next().unwrap_or(leaf);
    let mut rest = message.trim();
    if let Some(v) = value {
        if let Some(r) = rest.strip_prefix(&format!("{leaf} = {v}")) {
            rest = r;
        }
    }
    if rest.len() == message.trim().len() {
        if let Some(r) = rest.strip_prefix(&format!("{leaf} ")) {
            if !r.starts_with('=') {
                rest = r;
            }
        }
    }
    let rest = rest.trim_start_matches([':', ' ']);
    match value {
        Some(v) => format!("{key} = {v}: {rest}"),
        None => format!("{key}: {rest}"),
    }
}

/// The parts of a dotted key path, array indexes dropped: `faults[1].broker` → `faults`,
/// `broker`.
fn key_parts(key: &str) -> Vec<String> {
    let plain: String = {
        let mut out = String::new();
        let mut depth = 0;
        for c in key.chars() {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                c if depth == 0 => out.push(c),
                _ => {}
            }
        }
        out
    };
    overrides::split_key(&plain).unwrap_or_else(|_| {
        plain
            .split('.')
            .map(|p| p.trim_matches('"').to_string())
            .collect()
    })
}

/// The value at a key path of the typed scenario (defaults included), as TOML writes it;
/// `None` for tables, lists and unset keys.
fn value_of(s: &Scenario, key: &str) -> Option<String> {
    let mut v = serde_json::to_value(s).ok()?;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let mut next = v.get(name.trim_matches('"'))?.clone();
        if let Some(i) = index {
            next = next.get(i)?.clone();
        }
        v = next;
    }
    match v {
        serde_json::Value::String(t) => Some(toml::Value::String(t).to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn load_text(
    src: &str,
    path: &Path,
    sets: &[Override],
    external: bool,
    host: &Host,
) -> Result<Loaded, ScenarioError> {
    let file = path.display().to_string();
    let doc = toml::de::DeTable::parse(src).map_err(|e| ScenarioError::Invalid {
        location: match e.span() {
            Some(s) => {
                let (line, col) = line_col(src, s.start);
                format!("{file}:{line}:{col}")
            }
            None => file.clone(),
        },
        message: e.message().to_string(),
    })?;
    let doc = doc.get_ref();

    // Stage 1: the file alone, typed with spans (types, units and unknown keys located).
    let from_file: Scenario = typed_text(src, doc).map_err(|(offset, message)| {
        let (line, col) = line_col(src, offset);
        ScenarioError::Invalid {
            location: format!("{file}:{line}:{col}"),
            message,
        }
    })?;

    // Stage 2: every override applied, then the result typed and checked once, so overrides
    // that only make sense together (replication factor and brokers) are taken together. An
    // error names the override that set the key at fault, else the key's place in the file.
    let mut table: toml::Table = toml::from_str(src).map_err(|e| ScenarioError::Invalid {
        location: file.clone(),
        message: e.message().to_string(),
    })?;
    let mut applied: Vec<(Vec<String>, &Override)> = Vec::new();
    for o in sets {
        let (key, value) = overrides::parse_set(&o.set).map_err(|m| ScenarioError::Invalid {
            location: o.flag.clone(),
            message: m
                .strip_prefix(&format!("--set {}: ", o.set))
                .unwrap_or(&m)
                .to_string(),
        })?;
        overrides::apply(&mut table, &key, value).map_err(|m| ScenarioError::Invalid {
            location: o.flag.clone(),
            message: m,
        })?;
        applied.push((overrides::split_key(&key).unwrap_or_default(), o));
    }
    let blame = Blame {
        file: file.clone(),
        src,
        doc,
        overrides: &applied,
    };
    let base = if sets.is_empty() {
        from_file
    } else {
        typed_table(&table, &|key| match blame.override_of(key) {
            Some(o) => o.flag.clone(),
            None => file.clone(),
        })?
    };
    validate_for(&base, external, host).map_err(|inv| blame.invalid(&base, &inv))?;

    // Stage 3: matrix expansion.
    let mut variants = Vec::new();
    if base.matrix.is_empty() {
        variants.push(Variant {
            label: None,
            matrix_values: Vec::new(),
            scenario: base.clone(),
        });
    } else {
        let located = |key: &str, message: String| blame.at_offset(locate(doc, key), message);
        for (key, values) in &base.matrix {
            if values.is_empty() {
                return Err(located(
                    &format!("matrix.\"{key}\""),
                    format!(
                        "matrix.\"{key}\" = []: has no values; give a list such as [0, 1, \"all\"]"
                    ),
                ));
            }
            if key.starts_with("matrix") || key == "name" {
                return Err(located("matrix", format!("matrix.\"{key}\": cannot vary")));
            }
        }
        let runs = base
            .matrix
            .values()
            .fold(1u128, |n, values| n.saturating_mul(values.len() as u128));
        if runs > MAX_MATRIX_RUNS as u128 {
            let sizes: Vec<String> = base.matrix.values().map(|v| v.len().to_string()).collect();
            return Err(located(
                "matrix",
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
            let location = format!("{file}: [matrix] combination {label}");
            let at = |message: String| ScenarioError::Invalid {
                location: location.clone(),
                message,
            };
            let mut t = base_table.clone();
            for (key, value) in &combo {
                overrides::apply_merged(&mut t, key, value.clone()).map_err(at)?;
            }
            let scenario = typed_table(&t, &|_| location.clone())?;
            validate_for(&scenario, external, host).map_err(|inv| {
                at(render(
                    &inv.key,
                    value_of(&scenario, &inv.key).as_deref(),
                    &inv.message,
                ))
            })?;
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

/// The scenario in `src` (whose parsed form is `doc`), with `durable` delivery resolved; an
/// error is its byte offset and a message naming the key and its value.
fn typed_text(src: &str, doc: &toml::de::DeTable<'_>) -> Result<Scenario, (usize, String)> {
    let mut s: Scenario = toml::from_str(src).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let (offset, message) = serde_error(src, doc, span, e.message());
        (offset, message)
    })?;
    s.verify.delivery = s.verify.delivery.resolve(
        s.producers.acks,
        s.topic.replication_factor,
        s.topic.min_insync(),
    );
    Ok(s)
}

/// A table built by overrides or a matrix, typed. It is written out and read back as TOML so
/// that a type error has a place, from which the key (and the override that set it) is known;
/// `location` says where the error goes for a key path.
fn typed_table(
    table: &toml::Table,
    location: &dyn Fn(&[String]) -> String,
) -> Result<Scenario, ScenarioError> {
    let text = toml::to_string(table).map_err(|e| ScenarioError::Invalid {
        location: location(&[]),
        message: e.to_string(),
    })?;
    let doc = toml::de::DeTable::parse(&text).map_err(|e| ScenarioError::Invalid {
        location: location(&[]),
        message: e.message().to_string(),
    })?;
    typed_text(&text, doc.get_ref()).map_err(|(offset, message)| {
        let key = key_path_at(doc.get_ref(), offset);
        ScenarioError::Invalid {
            location: location(&key),
            message,
        }
    })
}

/// Rewrites a serde error at `span` of `src` into kbench's wording, naming the key and the
/// value as written: `producers.count = -3: expected a whole number 0..=4294967295`, `unknown
/// key "x" in [producers]; expected one of ... (did you mean ...?)`, `name: missing (...)`.
/// Returns the offset to point at and the message.
fn serde_error(
    src: &str,
    doc: &toml::de::DeTable<'_>,
    span: std::ops::Range<usize>,
    message: &str,
) -> (usize, String) {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let table = table_with_span(doc, &span).unwrap_or_default();
        let mut key = table.clone();
        key.push(name.to_string());
        let section = if table.is_empty() {
            "at the top level".to_string()
        } else {
            format!("in [{}]", table.join("."))
        };
        let what = if key == ["name"] {
            "every scenario needs one, e.g. name = \"mytest\" (it names the output folder and the topic)".to_string()
        } else {
            format!("required {section}")
        };
        return (
            span.start,
            format!("{} is missing {section}: {what}", key.join(".")),
        );
    }
    let offset = span.start;
    let mut key = key_path_at(doc, offset);
    if key.is_empty() {
        // A `[section]` header's table has no span around its keys: look inside the section.
        let section = section_at(src, doc, offset);
        let mut table = Some(doc);
        for part in &section {
            table = table.and_then(|t| {
                t.iter()
                    .find(|(k, _)| k.get_ref().as_ref() == part.as_str())
                    .and_then(|(_, v)| v.get_ref().as_table())
            });
        }
        if let Some(t) = table {
            let inner = key_path_at(t, offset);
            if !inner.is_empty() {
                key = section.into_iter().chain(inner).collect();
            }
        }
    }
    let section = if message.starts_with("unknown field `") {
        section_at(src, doc, offset)
    } else {
        key[..key.len().saturating_sub(1)].to_vec()
    };
    let value = src
        .get(span.clone())
        .map(str::trim)
        .filter(|v| !v.is_empty() && !v.contains('\n') && v.len() <= 80);
    if message.starts_with("unknown field `") || key.is_empty() {
        return (offset, describe(message, &section));
    }
    let dotted = key.join(".");
    let what = if let Some(rest) = message.strip_prefix("unknown variant `") {
        let options: Vec<&str> = rest
            .split_once('`')
            .map(|(_, e)| e)
            .unwrap_or("")
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        format!("use one of {}", options.join(", "))
    } else if message.starts_with("invalid value") || message.starts_with("invalid type") {
        let expected = message.rsplit("expected ").next().unwrap_or("").trim();
        format!("expected {}", expected_in_words(expected))
    } else {
        message.to_string()
    };
    (offset, render(&dotted, value, &what))
}

/// serde's name of a type, as a scenario's reader would say it.
fn expected_in_words(expected: &str) -> String {
    match expected.trim_end_matches('.') {
        "u32" => "a whole number 0..=4294967295".into(),
        "u64" => "a whole number ≥ 0".into(),
        "i32" => "a whole number -2147483648..=2147483647".into(),
        "i16" => "a whole number -32768..=32767".into(),
        "i64" => "a whole number".into(),
        "f64" | "f32" => "a number".into(),
        "a boolean" => "true or false".into(),
        other => other.to_string(),
    }
}

/// The key path of the innermost table whose value span is exactly `span` (what serde's
/// "missing field" points at); `None` when no table has it (the top level).
fn table_with_span(
    table: &toml::de::DeTable<'_>,
    span: &std::ops::Range<usize>,
) -> Option<Vec<String>> {
    for (key, value) in table {
        if let Some(inner) = value.get_ref().as_table() {
            let s = value.span();
            if s.start <= span.start && span.end <= s.end.max(s.start + 1) {
                let mut path = vec![key.get_ref().to_string()];
                if let Some(deeper) = table_with_span(inner, span) {
                    path.extend(deeper);
                } else if s != *span {
                    continue;
                }
                return Some(path);
            }
        }
    }
    None
}

/// The key path (with array indexes as `[i]` parts of the key) whose key or value holds
/// `offset`; empty when none does.
fn key_path_at(table: &toml::de::DeTable<'_>, offset: usize) -> Vec<String> {
    for (key, value) in table {
        let span = value.span();
        let inside = span.start <= offset && offset < span.end.max(span.start + 1);
        let on_key = key.span().start <= offset && offset < key.span().end;
        if !(inside || on_key) {
            continue;
        }
        let mut path = vec![key.get_ref().to_string()];
        if inside {
            if let Some(inner) = value.get_ref().as_table() {
                path.extend(key_path_at(inner, offset));
            } else if let Some(items) = value.get_ref().as_array() {
                for (i, item) in items.iter().enumerate() {
                    let s = item.span();
                    if s.start <= offset && offset < s.end.max(s.start + 1) {
                        if let Some(last) = path.last_mut() {
                            last.push_str(&format!("[{i}]"));
                        }
                        if let Some(inner) = item.get_ref().as_table() {
                            path.extend(key_path_at(inner, offset));
                        }
                        break;
                    }
                }
            }
        }
        return path;
    }
    Vec::new()
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
mod tests;
