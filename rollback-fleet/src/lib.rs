//! # rollback-fleet
//!
//! More than one app host: each host runs `rollback agent --stdio`, which serves the code,
//! config, process and health adapters configured there over a small versioned protocol
//! ([`protocol`]); the orchestrator reaches it through the system `ssh` and sees each host
//! as ordinary adapters ([`RemoteHost`]).
//!
//! - [`protocol`]: the request/response lines, documented with examples.
//! - [`agent::serve`]: the agent's loop (what `rollback agent --stdio` runs).
//! - [`AgentConnection`], [`RemoteHost`]: the orchestrator's side; a connection refuses an
//!   agent of another protocol version, naming both.
//!
//! - [`Fleet`]: the hosts as one set of adapters ([`FleetCode`], [`FleetConfig`],
//!   [`FleetProcess`], [`FleetHealth`]) for one orchestrator, whose own database adapter
//!   switches the shared database once; `reload` rolls host by host, health-gated.
//!
//! What it is not (yet): a state store shared between deploy boxes; see the README.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod agent;
mod fleet;
pub mod protocol;
mod remote;
pub mod ssh;
mod unreachable;

pub use agent::{serve, HostAdapters};
pub use fleet::{Fleet, FleetCode, FleetConfig, FleetHealth, FleetHost, FleetProcess};
pub use remote::{AgentConnection, RemoteHost, DEFAULT_PROBE_TIMEOUT};
pub use ssh::{HostKeyPolicy, SshHost, SshHostBuilder};
pub use unreachable::UnreachableHost;

/// What went wrong between the orchestrator and an agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The host or its agent cannot be reached.
    #[error(
        "host {host} is unreachable: {why}; check `ssh {host}` works and that `rollback` is installed there"
    )]
    Unreachable {
        /// The host.
        host: String,
        /// Why.
        why: String,
    },
    /// The agent refused the connection (another protocol version).
    #[error("host {host} refused: {why}")]
    Refused {
        /// The host.
        host: String,
        /// Why.
        why: String,
    },
    /// The agent was asked for another protocol version.
    #[error("protocol version mismatch: this agent speaks version {ours}, the orchestrator version {theirs}; install the same `rollback` on both")]
    VersionMismatch {
        /// This side's version.
        ours: u32,
        /// The other side's version.
        theirs: u32,
    },
    /// A line that is not of the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Reading or writing the agent's stream failed.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl FleetError {
    pub(crate) fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| FleetError::Io { action, source }
    }
}

impl From<FleetError> for rollback_core::AdapterError {
    fn from(e: FleetError) -> Self {
        let kind = match &e {
            FleetError::Unreachable { .. } => rollback_core::ErrorKind::Unavailable,
            FleetError::Refused { .. } | FleetError::VersionMismatch { .. } => {
                rollback_core::ErrorKind::Unsupported
            }
            FleetError::Io { source, .. } => rollback_core::ErrorKind::from_io(source.kind()),
            FleetError::Protocol(_) => rollback_core::ErrorKind::Failed,
        };
        rollback_core::AdapterError::new(kind, e.to_string()).with_source(e)
    }
}
