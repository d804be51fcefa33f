//! The scenarios shipped in `scenarios/`, built into the binary so `kbench run smoke` works
//! from any directory, and how a scenario argument is resolved: a built-in name, a file, or
//! none at all (the quick mode, a scenario built from flags).
//!
//! A bare name (no `/`, not ending in `.toml`) is the built-in scenario of that name, even when
//! a file of that name is in the current directory: `kbench run smoke` means the same on every
//! machine. A file is named by a path: `./smoke.toml`, `smoke.toml`, `my/test.toml`. A bare
//! name that is not built in is read as a file if one exists, so an extension-less file still
//! works.

use std::path::{Path, PathBuf};

/// A scenario built into the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Builtin {
    /// Its name: the file name without `.toml`.
    pub name: &'static str,
    /// The TOML, as shipped in `scenarios/<name>.toml`.
    pub text: &'static str,
}

macro_rules! builtin {
    ($name:literal) => {
        Builtin {
            name: $name,
            text: include_str!(concat!("../../scenarios/", $name, ".toml")),
        }
    };
}

/// Every shipped scenario, by name.
pub const BUILTINS: &[Builtin] = &[
    builtin!("1gb"),
    builtin!("acks"),
    builtin!("broker-restart"),
    builtin!("catch-up"),
    builtin!("consumer-failover"),
    builtin!("exactly-once"),
    builtin!("failover"),
    builtin!("gate"),
    builtin!("latency"),
    builtin!("max-rate"),
    builtin!("partition"),
    builtin!("pipeline"),
    builtin!("producer-modes"),
    builtin!("rate-sweep"),
    builtin!("replication"),
    builtin!("replication-cost"),
    builtin!("smoke"),
    builtin!("wipe-rf1"),
    builtin!("wipe-rf3"),
];

/// The scenario of a run without one (`kbench run -b HOST --producers 4 ...`): the schema's
/// defaults (1 producer × 10,000 × 1 KiB, `acks = "all"`, 8 partitions, one group of one
/// member, every check on), which the quick mode's flags override.
pub const QUICK: &str = "# kbench run without a scenario: the defaults, overridden by its flags.\n\
name = \"quick\"\n\
description = \"kbench run without a scenario file, built from its flags\"\n";

impl Builtin {
    /// The first line of the leading comment, without `# ` and the final full stop: what
    /// `kbench scenarios` lists.
    pub fn summary(&self) -> &'static str {
        self.text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix('#'))
            .map(|l| l.trim().trim_end_matches('.'))
            .unwrap_or("")
    }

    /// The path messages name it by: `built-in:smoke.toml`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("built-in:{}.toml", self.name))
    }
}

/// The built-in scenario called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The names of the built-in scenarios, comma-separated.
pub fn names() -> String {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `kbench scenarios`: one line per built-in scenario, name and summary.
pub fn listing() -> String {
    let width = BUILTINS.iter().map(|b| b.name.len()).max().unwrap_or(0) + 2;
    BUILTINS
        .iter()
        .map(|b| format!("{:width$}{}\n", b.name, b.summary()))
        .collect()
}

/// Where a run's scenario comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// A built-in scenario.
    Builtin(&'static Builtin),
    /// No scenario: the quick mode's defaults ([`QUICK`]) and flags.
    Quick,
}

/// Why a scenario argument names nothing.
#[derive(Debug, thiserror::Error)]
#[error("no scenario \"{arg}\": it is not a built-in scenario ({names}) and there is no file {arg}; `kbench scenarios` lists the built-in ones, a file is named by its path (./{arg}.toml)")]
pub struct UnknownScenario {
    /// What was asked for.
    pub arg: String,
    /// The built-in names.
    pub names: String,
}

impl Source {
    /// The scenario `arg` names (see the module's doc for the rule); `None` = the quick mode.
    pub fn resolve(arg: Option<&str>) -> Result<Source, UnknownScenario> {
        let Some(arg) = arg else {
            return Ok(Source::Quick);
        };
        let is_path = arg.contains('/') || arg.ends_with(".toml");
        if !is_path {
            if let Some(b) = find(arg) {
                return Ok(Source::Builtin(b));
            }
            if !Path::new(arg).exists() {
                return Err(UnknownScenario {
                    arg: arg.to_string(),
                    names: names(),
                });
            }
        }
        Ok(Source::File(PathBuf::from(arg)))
    }

    /// The path it is named by in messages and in `summary.json` (`scenario.file`).
    pub fn path(&self) -> PathBuf {
        match self {
            Source::File(p) => p.clone(),
            Source::Builtin(b) => b.path(),
            Source::Quick => PathBuf::from("built-in:quick.toml"),
        }
    }

    /// Its text.
    pub fn text(&self) -> Result<String, super::ScenarioError> {
        match self {
            Source::File(p) => {
                std::fs::read_to_string(p).map_err(|error| super::ScenarioError::Read {
                    file: match (
                        p.exists(),
                        p.file_stem().and_then(|s| s.to_str()).and_then(find),
                    ) {
                        (false, Some(b)) => format!(
                            "{} (the built-in scenario of that name is `kbench run {}`)",
                            p.display(),
                            b.name
                        ),
                        _ => p.display().to_string(),
                    },
                    error,
                })
            }
            Source::Builtin(b) => Ok(b.text.to_string()),
            Source::Quick => Ok(QUICK.to_string()),
        }
    }

    /// What the plan says about it: `scenario smoke (built in)`, `scenario ./x.toml (file)`.
    pub fn describe(&self) -> String {
        match self {
            Source::File(p) => format!("scenario {} (file)", p.display()),
            Source::Builtin(b) => format!(
                "scenario {} (built in; `kbench scenarios show {}` prints it)",
                b.name, b.name
            ),
            Source::Quick => "no scenario: the defaults and the flags (quick mode)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_scenario_is_built_in_as_shipped() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
        names.sort_unstable();
        assert_eq!(files, names, "scenarios/*.toml and BUILTINS differ");
        for b in BUILTINS {
            let text = std::fs::read_to_string(dir.join(format!("{}.toml", b.name))).unwrap();
            assert_eq!(text, b.text);
            assert!(!b.summary().is_empty(), "{} has no leading comment", b.name);
        }
    }

    #[test]
    fn every_listing_line_fits_80_columns() {
        for line in listing().lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
    }

    #[test]
    fn a_bare_name_is_the_built_in_and_a_path_is_a_file() {
        assert_eq!(
            Source::resolve(Some("smoke")).unwrap(),
            Source::Builtin(find("smoke").unwrap())
        );
        assert_eq!(
            Source::resolve(Some("smoke.toml")).unwrap(),
            Source::File("smoke.toml".into())
        );
        assert_eq!(
            Source::resolve(Some("./smoke")).unwrap(),
            Source::File("./smoke".into())
        );
        assert_eq!(Source::resolve(None).unwrap(), Source::Quick);
        let e = Source::resolve(Some("smok")).unwrap_err().to_string();
        assert!(
            e.starts_with("no scenario \"smok\": it is not a built-in scenario (1gb, acks"),
            "{e}"
        );
    }
}
