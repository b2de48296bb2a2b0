//! # rollback-cli
//!
//! The `rollback` command over a `rollback.toml`: the operator's side of the library. It
//! parses the config, wires the adapters it names, and renders progress; every decision
//! (pre-flight, the twelve steps, the failure policy, resume) is the library's.
//!
//! - [`config`]: the `rollback.toml` schema, loaded with errors that name file, line and
//!   column.
//! - [`wire`]: adapters built from a [`config::Config`], and the orchestrator over them.
//! - [`init`]: the commented file `rollback init` writes, filled from what it finds.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod config;
pub mod init;
pub mod wire;
