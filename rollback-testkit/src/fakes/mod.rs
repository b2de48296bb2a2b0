//! In-memory fakes of every trait, acting on one shared [`World`](crate::World).

mod code;
mod config;
mod database;
mod health;
mod process;
mod state;

pub use code::FakeCode;
pub use config::FakeConfig;
pub use database::FakeDatabase;
pub use health::{FakeHealthProbe, FakeMetrics, RecordingNotifier};
pub use process::FakeProcessManager;
pub use state::MemoryStateStore;
