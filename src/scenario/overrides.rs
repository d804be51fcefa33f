//! `--set key.path=value` overrides and `[matrix]` expansion, both applied to the parsed TOML
//! table before it is typed, so they reach every key the schema has and go through the same
//! checks as the file itself.

use std::collections::BTreeMap;

/// Parses one `--set` argument: `key.path=value`, the value read as TOML (`4`, `"all"`,
/// `["a","b"]`, `true`) and, when that fails, taken as a plain string (`acks=all`, `linger=5ms`).
pub fn parse_set(arg: &str) -> Result<(String, toml::Value), String> {
    let (key, value) = arg.split_once('=').ok_or_else(|| {
        format!("--set {arg}: expected key.path=value, e.g. --set producers.count=4")
    })?;
    let key = key.trim();
    split_key(key).map_err(|e| format!("--set {arg}: {e}"))?;
    Ok((key.to_string(), parse_value(value.trim())))
}

/// Splits a dotted key path the way TOML does, so a quoted part may hold dots:
/// `producers.client_configs."linger.ms"` → `["producers", "client_configs", "linger.ms"]`.
pub fn split_key(key: &str) -> Result<Vec<String>, String> {
    let bad = || format!("the key \"{key}\" is not a dotted key path like producers.count");
    let mut table: toml::Table = toml::from_str(&format!("{key} = 0")).map_err(|_| bad())?;
    let mut parts = Vec::new();
    loop {
        if table.len() != 1 {
            return Err(bad());
        }
        let (k, v) = table.into_iter().next().ok_or_else(bad)?;
        parts.push(k);
        match v {
            toml::Value::Table(t) => table = t,
            _ => return Ok(parts),
        }
    }
}

/// Reads a value as TOML, falling back to a plain string.
pub fn parse_value(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(text.to_string()))
}

/// Puts `value` at the dotted `key` inside `table`, creating intermediate tables.
pub fn apply(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let parts = split_key(key)?;
    let (last, parents) = parts.split_last().ok_or_else(|| "empty key".to_string())?;
    let mut current = table;
    let mut walked = String::new();
    for part in parents {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(part);
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(format!(
                    "{walked} is a {}, not a table, so {key} cannot be set",
                    other.type_str()
                ))
            }
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Like [`apply`], but a table value is merged into the table already at `key` (key by key,
/// recursively) instead of replacing it. Matrix values use this, so one matrix key can vary
/// several settings together: `"producers" = [{ idempotence = true }, { transactional = true }]`.
pub fn apply_merged(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let toml::Value::Table(entries) = value else {
        return apply(table, key, value);
    };
    for (k, v) in entries {
        let quoted = toml::Value::String(k.clone()).to_string();
        apply_merged(table, &format!("{key}.{quoted}"), v)?;
    }
    Ok(())
}

/// One combination of matrix values, in key order.
pub type Combination = Vec<(String, toml::Value)>;

/// Every combination of the matrix (the cartesian product, first key varying slowest).
pub fn combinations(matrix: &BTreeMap<String, Vec<toml::Value>>) -> Vec<Combination> {
    let mut out: Vec<Combination> = vec![Vec::new()];
    for (key, values) in matrix {
        let mut next = Vec::with_capacity(out.len() * values.len());
        for combo in &out {
            for v in values {
                let mut c = combo.clone();
                c.push((key.clone(), v.clone()));
                next.push(c);
            }
        }
        out = next;
    }
    out
}

/// A short label for a combination, usable as a folder name: `producers.acks=all` → `acks-all`.
pub fn label(combo: &Combination) -> String {
    let parts: Vec<String> = combo
        .iter()
        .map(|(k, v)| {
            let short = k.rsplit('.').next().unwrap_or(k);
            let value = |v: &toml::Value| match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match v {
                // A table of settings is labelled by its own keys: `idempotence-true`.
                toml::Value::Table(t) if !t.is_empty() => t
                    .iter()
                    .map(|(k, v)| format!("{k}-{}", value(v)))
                    .collect::<Vec<_>>()
                    .join("_"),
                v => format!("{short}-{}", value(v)),
            }
        })
        .collect();
    parts
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_are_toml_or_strings() {
        assert_eq!(
            parse_set("producers.count=4").unwrap(),
            ("producers.count".into(), toml::Value::Integer(4))
        );
        assert_eq!(
            parse_set("producers.acks=all").unwrap().1,
            toml::Value::String("all".into())
        );
        assert_eq!(
            parse_set("producers.acks=\"all\"").unwrap().1,
            toml::Value::String("all".into())
        );
        assert_eq!(
            parse_set("verify.on_disk=true").unwrap().1,
            toml::Value::Boolean(true)
        );
        assert_eq!(
            parse_set("producers.linger=5ms").unwrap().1,
            toml::Value::String("5ms".into())
        );
        assert!(parse_set("producers.count")
            .unwrap_err()
            .contains("key.path=value"));
        assert!(parse_set("producers..count=1").is_err());
    }

    #[test]
    fn apply_creates_tables_and_refuses_non_tables() {
        let mut t: toml::Table = toml::from_str("name = \"x\"\n[producers]\ncount = 1").unwrap();
        apply(&mut t, "producers.count", toml::Value::Integer(3)).unwrap();
        apply(
            &mut t,
            "topic.configs.\"min.insync.replicas\"",
            toml::Value::Integer(3),
        )
        .unwrap();
        assert_eq!(
            t["topic"]["configs"]["min.insync.replicas"].as_integer(),
            Some(3)
        );
        assert_eq!(t["producers"]["count"].as_integer(), Some(3));
        assert!(apply(&mut t, "name.x", toml::Value::Integer(1))
            .unwrap_err()
            .contains("not a table"));
    }

    #[test]
    fn matrix_is_the_cartesian_product() {
        let mut m = BTreeMap::new();
        m.insert(
            "producers.acks".to_string(),
            vec![toml::Value::Integer(0), toml::Value::String("all".into())],
        );
        m.insert(
            "topic.partitions".to_string(),
            vec![
                toml::Value::Integer(1),
                toml::Value::Integer(4),
                toml::Value::Integer(8),
            ],
        );
        let combos = combinations(&m);
        assert_eq!(combos.len(), 6);
        assert_eq!(label(&combos[0]), "acks-0_partitions-1");
        assert_eq!(label(&combos[5]), "acks-all_partitions-8");
        assert_eq!(combinations(&BTreeMap::new()).len(), 1);
    }

    #[test]
    fn table_values_merge_and_label_by_their_keys() {
        let mut t: toml::Table =
            toml::from_str("name = \"x\"\n[producers]\ncount = 1\nacks = 1").unwrap();
        let v = parse_value("{ idempotence = true, acks = \"all\" }");
        apply_merged(&mut t, "producers", v.clone()).unwrap();
        assert_eq!(t["producers"]["count"].as_integer(), Some(1));
        assert_eq!(t["producers"]["acks"].as_str(), Some("all"));
        assert_eq!(t["producers"]["idempotence"].as_bool(), Some(true));
        let combo = vec![("producers".to_string(), v)];
        assert_eq!(label(&combo), "acks-all_idempotence-true");
    }
}
