use crate::world::{Method, World};
use async_trait::async_trait;
use rollback_core::{
    AdapterError, AppName, HealthProbe, MetricsSample, MetricsSource, Notice, Notifier, ProbeResult,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A fake [`HealthProbe`]: healthy when the app is online and nothing live is broken
/// (see [`WorldState::healthy`](crate::WorldState::healthy)).
#[derive(Clone, Debug)]
pub struct FakeHealthProbe {
    world: World,
    app: AppName,
}

impl FakeHealthProbe {
    /// A probe of `app` in `world`.
    pub fn new(world: &World, app: &str) -> Self {
        Self {
            world: world.clone(),
            app: AppName::new(app),
        }
    }
}

#[async_trait]
impl HealthProbe for FakeHealthProbe {
    fn name(&self) -> String {
        format!("fake health of `{}`", self.app)
    }

    async fn probe(&self) -> ProbeResult {
        let entered = self.world.enter(Method::HealthProbe, self.app.as_str()).await;
        let healthy = entered.is_ok() && self.world.lock().healthy(&self.app);
        if let Ok(gate) = entered {
            let _ = gate.pass().await;
        }
        ProbeResult {
            probe: self.name(),
            healthy,
            latency: Duration::from_millis(1),
            detail: if healthy { "200" } else { "500" }.into(),
        }
    }
}

/// A fake [`MetricsSource`] that reports the world's `metrics`.
#[derive(Clone, Debug)]
pub struct FakeMetrics {
    world: World,
}

impl FakeMetrics {
    /// Metrics from `world`.
    pub fn new(world: &World) -> Self {
        Self { world: world.clone() }
    }
}

#[async_trait]
impl MetricsSource for FakeMetrics {
    async fn sample(&self, app: &AppName) -> Result<MetricsSample, AdapterError> {
        let gate = self.world.enter(Method::MetricsSample, app.as_str()).await?;
        let sample = self.world.lock().metrics.clone();
        let _ = gate.pass().await;
        Ok(sample)
    }
}

/// A [`Notifier`] that records every notice.
#[derive(Clone, Debug, Default)]
pub struct RecordingNotifier {
    notices: Arc<Mutex<Vec<Notice>>>,
}

impl RecordingNotifier {
    /// A notifier with no notices yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The notices so far, in order.
    pub fn notices(&self) -> Vec<Notice> {
        self.notices.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn notify(&self, notice: &Notice) -> Result<(), AdapterError> {
        self.notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(notice.clone());
        Ok(())
    }
}
