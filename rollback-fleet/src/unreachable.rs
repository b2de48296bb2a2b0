//! A host that could not be reached when the fleet was put together, standing in for its
//! adapters: every call fails [`Unavailable`](ErrorKind::Unavailable), naming the host and
//! what ssh or its agent said. Commands that need no host (status, the journal, a resume
//! that leaves an unreachable host out) then work with the hosts that answer, and every
//! statement names the one that did not.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rollback_core::{
    AdapterError, AppLogs, AppName, CodeVersion, ConfigCheck, ConfigDiff, ConfigStore, ConfigVersion,
    ConfigVersionId, ErrorKind, HealthProbe, PreparedRevision, ProbeResult, ProcessManager, ProcessStatus,
    Revision, RevisionId,
};
use std::time::Duration;

/// A host that could not be reached: every call fails `Unavailable`, naming it and why.
#[derive(Clone, Debug)]
pub struct UnreachableHost {
    host: String,
    why: String,
}

impl UnreachableHost {
    /// Host `host`, which could not be reached because of `why` (what ssh or its agent said).
    pub fn new(host: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            why: why.into(),
        }
    }

    /// The host's name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Why it could not be reached.
    pub fn why(&self) -> &str {
        &self.why
    }

    fn error(&self) -> AdapterError {
        AdapterError::new(
            ErrorKind::Unavailable,
            format!(
                "host {} could not be reached ({}); check that it is up and that `rollback agent --stdio` runs there",
                self.host, self.why
            ),
        )
    }
}

#[async_trait]
impl ProcessManager for UnreachableHost {
    async fn status(&self, _app: &AppName) -> Result<ProcessStatus, AdapterError> {
        Err(self.error())
    }

    async fn stop(&self, _app: &AppName) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn start(&self, _app: &AppName) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn restart(&self, _app: &AppName) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn can_reload(&self, _app: &AppName) -> Result<bool, AdapterError> {
        Err(self.error())
    }

    async fn reload(&self, _app: &AppName) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn logs_since(
        &self,
        _app: &AppName,
        _since: DateTime<Utc>,
    ) -> Result<Option<AppLogs>, AdapterError> {
        Err(self.error())
    }
}

#[async_trait]
impl CodeVersion for UnreachableHost {
    async fn current(&self) -> Result<Revision, AdapterError> {
        Err(self.error())
    }

    async fn resolve(&self, _spec: &str) -> Result<Revision, AdapterError> {
        Err(self.error())
    }

    async fn history(&self, _n: usize) -> Result<Vec<Revision>, AdapterError> {
        Err(self.error())
    }

    async fn prepare(&self, _revision: &RevisionId) -> Result<PreparedRevision, AdapterError> {
        Err(self.error())
    }

    async fn check_activate(&self, _revision: &RevisionId) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn preserve_current(&self) -> Result<PreparedRevision, AdapterError> {
        Err(self.error())
    }

    async fn activate(&self, _prepared: &PreparedRevision) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn reinstate(&self, _preserved: &PreparedRevision) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn revert(&self, _commits: &[RevisionId]) -> Result<Revision, AdapterError> {
        Err(self.error())
    }
}

#[async_trait]
impl ConfigStore for UnreachableHost {
    async fn current(&self) -> Result<ConfigVersion, AdapterError> {
        Err(self.error())
    }

    async fn backup(&self, _label: &str) -> Result<ConfigVersion, AdapterError> {
        Err(self.error())
    }

    async fn list(&self) -> Result<Vec<ConfigVersion>, AdapterError> {
        Err(self.error())
    }

    async fn verify(&self, _version: &ConfigVersionId) -> Result<ConfigCheck, AdapterError> {
        Err(self.error())
    }

    async fn restore(&self, _version: &ConfigVersionId) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn preserve_current(&self, _label: &str) -> Result<ConfigVersion, AdapterError> {
        Err(self.error())
    }

    async fn reinstate(&self, _preserved: &ConfigVersion) -> Result<(), AdapterError> {
        Err(self.error())
    }

    async fn diff(&self, _a: &ConfigVersionId, _b: &ConfigVersionId) -> Result<ConfigDiff, AdapterError> {
        Err(self.error())
    }

    async fn remove(&self, _version: &ConfigVersionId) -> Result<(), AdapterError> {
        Err(self.error())
    }
}

#[async_trait]
impl HealthProbe for UnreachableHost {
    fn name(&self) -> String {
        format!("host {}", self.host)
    }

    async fn probe(&self) -> ProbeResult {
        ProbeResult {
            probe: self.name(),
            healthy: false,
            latency: Duration::ZERO,
            detail: self.error().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_is_unavailable_naming_the_host_and_why() {
        let h = UnreachableHost::new("web-3", "Connection refused");
        let e = ProcessManager::status(&h, &AppName::new("web"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(
            e.message().contains("web-3") && e.message().contains("Connection refused"),
            "{e}"
        );
        let e = CodeVersion::current(&h).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        let p = h.probe().await;
        assert!(!p.healthy && p.detail.contains("web-3"), "{p:?}");
    }
}
