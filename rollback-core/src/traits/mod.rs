//! The traits adapters implement. Each is small, `Send + Sync`, uses `async_trait`, and
//! gets a `mockall` mock (`MockDatabaseSnapshot`, ...) under the crate's `mock` feature.

mod code;
mod config;
mod database;
mod health;
mod hook;
mod metrics;
mod notifier;
mod process;
mod state;

pub use code::CodeVersion;
pub use config::ConfigStore;
pub use database::DatabaseSnapshot;
pub use health::HealthProbe;
pub use hook::{Hook, HookContext};
pub use metrics::MetricsSource;
pub use notifier::Notifier;
pub use process::ProcessManager;
pub use state::StateStore;

#[cfg(feature = "mock")]
pub use code::MockCodeVersion;
#[cfg(feature = "mock")]
pub use config::MockConfigStore;
#[cfg(feature = "mock")]
pub use database::MockDatabaseSnapshot;
#[cfg(feature = "mock")]
pub use health::MockHealthProbe;
#[cfg(feature = "mock")]
pub use hook::MockHook;
#[cfg(feature = "mock")]
pub use metrics::MockMetricsSource;
#[cfg(feature = "mock")]
pub use notifier::MockNotifier;
#[cfg(feature = "mock")]
pub use process::MockProcessManager;
#[cfg(feature = "mock")]
pub use state::MockStateStore;
