use crate::world::{fingerprint, Method, StoredConfig, World};
use async_trait::async_trait;
use chrono::Utc;
use rollback_core::{
    AdapterError, ConfigCheck, ConfigDiff, ConfigStore, ConfigVersion, ConfigVersionId, ErrorKind, Secret,
};
use std::collections::BTreeMap;

/// The id [`FakeConfig::current`] gives the live config.
pub const LIVE: &str = "live";

/// A fake [`ConfigStore`]: the world's live config and stored versions. Values are
/// [`Secret`]s and never leave it.
#[derive(Clone, Debug)]
pub struct FakeConfig {
    world: World,
}

impl FakeConfig {
    /// A fake config store in `world`.
    pub fn new(world: &World) -> Self {
        Self { world: world.clone() }
    }

    /// Replaces the live config (as a deploy would).
    pub fn set_live(&self, pairs: &[(&str, &str)]) {
        self.world.lock().config.live = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Secret::new(*v)))
            .collect();
    }

    fn content(
        &self,
        id: &ConfigVersionId,
    ) -> Result<(BTreeMap<String, Secret>, Option<usize>), AdapterError> {
        let s = self.world.lock();
        if id.as_str() == LIVE {
            return Ok((s.config.live.clone(), s.config.live_malformed_line));
        }
        s.config
            .versions
            .get(id)
            .map(|c| (c.values.clone(), c.malformed_line))
            .ok_or_else(|| {
                AdapterError::not_found(format!("config version `{id}` does not exist: list() shows them"))
            })
    }
}

#[async_trait]
impl ConfigStore for FakeConfig {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        let gate = self.world.enter(Method::ConfigCurrent, "").await?;
        gate.pass().await?;
        Ok(ConfigVersion {
            id: ConfigVersionId::new(LIVE),
            label: String::new(),
            created_at: Utc::now(),
            location: "memory://config/live".into(),
        })
    }

    async fn backup(&self, label: &str) -> Result<ConfigVersion, AdapterError> {
        let gate = self.world.enter(Method::ConfigBackup, label).await?;
        let version = {
            let mut s = self.world.lock();
            let n = s.fresh_id();
            let version = ConfigVersion {
                id: ConfigVersionId::new(format!("cfg-{n}")),
                label: label.to_owned(),
                created_at: Utc::now(),
                location: format!("memory://config/cfg-{n}"),
            };
            let stored = StoredConfig {
                version: version.clone(),
                values: s.config.live.clone(),
                malformed_line: s.config.live_malformed_line,
            };
            s.config.versions.insert(version.id.clone(), stored);
            version
        };
        gate.pass().await?;
        Ok(version)
    }

    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        let gate = self.world.enter(Method::ConfigList, "").await?;
        let mut all: Vec<ConfigVersion> = self
            .world
            .lock()
            .config
            .versions
            .values()
            .map(|c| c.version.clone())
            .collect();
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        gate.pass().await?;
        Ok(all)
    }

    async fn verify(&self, version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        let gate = self.world.enter(Method::ConfigVerify, version.as_str()).await?;
        let (content, bad) = self.content(version)?;
        if let Some(line) = bad {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                format!("config version `{version}` line {line}: syntax error (fake)"),
            ));
        }
        let required = self.world.lock().config.required_keys.clone();
        let missing: Vec<&String> = required.iter().filter(|k| !content.contains_key(*k)).collect();
        if !missing.is_empty() {
            return Err(AdapterError::new(
                ErrorKind::InvalidInput,
                format!("config version `{version}` lacks required keys {missing:?}"),
            ));
        }
        gate.pass().await?;
        Ok(ConfigCheck {
            keys: content.keys().cloned().collect(),
            warnings: Vec::new(),
        })
    }

    async fn restore(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        let gate = self.world.enter(Method::ConfigRestore, version.as_str()).await?;
        let (content, bad) = self.content(version)?;
        {
            let mut s = self.world.lock();
            s.config.live = content;
            s.config.live_malformed_line = bad;
        }
        gate.pass().await?;
        Ok(())
    }

    async fn diff(&self, a: &ConfigVersionId, b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        let gate = self.world.enter(Method::ConfigDiff, format!("{a}..{b}")).await?;
        let (old, _) = self.content(a)?;
        let (new, _) = self.content(b)?;
        let diff = ConfigDiff {
            added: new.keys().filter(|k| !old.contains_key(*k)).cloned().collect(),
            removed: old.keys().filter(|k| !new.contains_key(*k)).cloned().collect(),
            changed: old
                .iter()
                .filter(|(k, v)| {
                    new.get(*k)
                        .is_some_and(|n| fingerprint(n.expose()) != fingerprint(v.expose()))
                })
                .map(|(k, _)| k.clone())
                .collect(),
        };
        gate.pass().await?;
        Ok(diff)
    }

    async fn remove(&self, version: &ConfigVersionId) -> Result<(), AdapterError> {
        let gate = self.world.enter(Method::ConfigRemove, version.as_str()).await?;
        self.world.lock().config.versions.remove(version);
        gate.pass().await?;
        Ok(())
    }
}
