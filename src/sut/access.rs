//! How kbench reaches a cluster: its bootstrap servers and the librdkafka settings that every
//! client of it needs, whatever the client is for.
//!
//! Almost every production cluster needs TLS and SASL, and those settings concern the cluster,
//! not a role: the reachability probe, topic creation, watermark reads, fault look-ups and
//! pipeline workers need them as much as the producers do. So every librdkafka client kbench
//! creates starts from [`ClusterAccess::client`], and role-specific `client_configs` are applied
//! on top. The shared settings come from `--client-config FILE` (librdkafka properties, as
//! kcat's `-F` and Kafka's `--command-config` take) and the scenario's `[cluster]
//! client_configs`; the file wins.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rdkafka::ClientConfig;

use crate::scenario::is_secret;

/// Why a client config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// The file cannot be read.
    #[error("--client-config {path}: cannot read it: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a properties file.
    #[error("--client-config {path}: not a properties file (key=value lines): {detail}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's complaint.
        detail: String,
    },
    /// A key that kbench sets itself for every client.
    #[error("--client-config {path}: `{key}` is set by kbench itself ({why}); remove it")]
    Reserved {
        /// The file.
        path: String,
        /// The key.
        key: String,
        /// Where it comes from.
        why: &'static str,
    },
}

/// Reads a librdkafka properties file (`key=value` lines, `#` comments).
pub fn load_client_config(path: &Path) -> Result<BTreeMap<String, String>, ClientConfigError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| ClientConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let map = java_properties::read(std::io::BufReader::new(file)).map_err(|e| {
        ClientConfigError::Parse {
            path: shown.clone(),
            detail: e.to_string(),
        }
    })?;
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let key = key.trim().to_owned();
        if key == "bootstrap.servers" {
            return Err(ClientConfigError::Reserved {
                path: shown,
                key,
                why: "--bootstrap or [cluster] bootstrap",
            });
        }
        out.insert(key, value.trim().to_owned());
    }
    Ok(out)
}

/// A cluster's bootstrap servers and the settings every client of it gets. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterAccess {
    bootstrap: String,
    settings: Arc<BTreeMap<String, String>>,
}

impl ClusterAccess {
    /// Access with these shared settings.
    pub fn new(bootstrap: &str, settings: BTreeMap<String, String>) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            settings: Arc::new(settings),
        }
    }

    /// Plaintext access with no extra settings (embedded brokers).
    pub fn plaintext(bootstrap: &str) -> Self {
        Self::new(bootstrap, BTreeMap::new())
    }

    /// `host:port,...`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// A librdkafka config for a client named `client_id`: bootstrap servers, the shared
    /// settings, and the client id. Callers add their role's settings on top.
    pub fn client(&self, client_id: &str) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in self.settings.iter() {
            c.set(k, v);
        }
        c.set("client.id", client_id);
        c
    }

    /// `security.protocol`, lower case (`plaintext` when unset, as librdkafka defaults).
    pub fn security_protocol(&self) -> String {
        self.settings
            .get("security.protocol")
            .map_or_else(|| "plaintext".to_owned(), |p| p.to_ascii_lowercase())
    }

    /// The shared settings with secrets masked, for messages and reports.
    pub fn shown_settings(&self) -> BTreeMap<String, String> {
        self.settings
            .iter()
            .map(|(k, v)| {
                let v = if is_secret(k) {
                    "****".to_owned()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_properties_file_becomes_shared_settings_of_every_client() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.properties");
        std::fs::write(
            &path,
            "# Confluent Cloud\nsecurity.protocol=SASL_SSL\nsasl.mechanism = PLAIN\n\
             sasl.username=key\nsasl.password=s3cret\n",
        )
        .unwrap();
        let settings = load_client_config(&path).unwrap();
        let access = ClusterAccess::new("h:9092", settings);
        let c = access.client("kbench-probe");
        assert_eq!(c.get("bootstrap.servers"), Some("h:9092"));
        assert_eq!(c.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(c.get("client.id"), Some("kbench-probe"));
        assert_eq!(access.security_protocol(), "sasl_ssl");
        assert_eq!(access.shown_settings()["sasl.password"], "****");
        assert_eq!(access.shown_settings()["sasl.username"], "key");
    }

    #[test]
    fn a_bad_client_config_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.properties");
        let err = load_client_config(&missing).unwrap_err().to_string();
        assert!(err.contains("nope.properties: cannot read it"), "{err}");
        let path = dir.path().join("c.properties");
        std::fs::write(&path, "bootstrap.servers=x:1\n").unwrap();
        let err = load_client_config(&path).unwrap_err().to_string();
        assert!(
            err.contains("`bootstrap.servers` is set by kbench itself"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_recognised() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "sasl.jaas.config",
            "sasl.oauthbearer.client.secret",
        ] {
            assert!(is_secret(k), "{k}");
        }
        assert!(!is_secret("sasl.username"));
        assert!(!is_secret("security.protocol"));
    }
}
