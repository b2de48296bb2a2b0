//! The transport to a host's agent: the system `ssh`, with the operator's own OpenSSH set-up
//! (`~/.ssh/config`, keys, `ssh-agent`, `known_hosts`), through the
//! [`openssh`](https://docs.rs/openssh) crate over OpenSSH's connection multiplexing.
//!
//! [`connect`] opens a master connection to the host (`ssh -M`, host keys checked
//! strictly unless the host is set to [`HostKeyPolicy::AcceptNew`]), runs the agent there
//! (`rollback agent --stdio --config <path on the host>` by default) over that connection,
//! and says hello through [`AgentConnection::open`]. The connection owns the ssh processes:
//! dropping the last handle closes the agent's stdin (so it ends), the channel and the
//! master connection.
//!
//! Failures are [`FleetError::Unreachable`] naming the host and saying why in words an
//! operator can act on: nothing listening, a host key that is unknown or changed, a key the
//! host refused, a missing `rollback` there, an agent that exited (with the last lines it
//! wrote). They quote ssh's own messages, which never hold key material.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use rollback_core::{AppName, ProcessManager};
//! use rollback_fleet::{ssh, RemoteHost, SshHost};
//! use std::time::Duration;
//! let host = SshHost::builder("deploy@web-2.internal", "/etc/rollback/rollback.toml")
//!     .name("web-2")
//!     .connect_timeout(Duration::from_secs(5))
//!     .build()?;
//! let web2 = RemoteHost(ssh::connect(&host, Duration::from_secs(10)).await?);
//! println!("{:?}", web2.status(&AppName::new("web")).await?);
//! # Ok(()) }
//! ```

use crate::{AgentConnection, FleetError};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use rollback_core::{AdapterError, ErrorKind};
use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

/// How the host's key is checked against `known_hosts` (`StrictHostKeyChecking`). In a
/// config file: `strict`, `accept_new`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostKeyPolicy {
    /// The host's key must already be in `known_hosts` (`StrictHostKeyChecking=yes`): an
    /// unknown or changed key is refused. The default.
    #[default]
    Strict,
    /// A host not yet in `known_hosts` is trusted on first use and its key added
    /// (`StrictHostKeyChecking=accept-new`); a changed key is still refused.
    AcceptNew,
}

/// How to reach one host's agent over ssh. Build one with [`SshHost::builder`].
///
/// ```
/// use rollback_fleet::{HostKeyPolicy, SshHost};
/// let host = SshHost::builder("deploy@web-2", "/srv/web/rollback.toml").build().unwrap();
/// assert_eq!(host.name(), "deploy@web-2");
/// assert_eq!(host.host_key_policy(), HostKeyPolicy::Strict);
/// assert_eq!(
///     host.command(),
///     ["rollback", "agent", "--stdio", "--config", "/srv/web/rollback.toml"]
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshHost {
    name: String,
    destination: String,
    port: Option<u16>,
    identity_file: Option<PathBuf>,
    config_file: Option<PathBuf>,
    known_hosts_file: Option<PathBuf>,
    host_key_policy: HostKeyPolicy,
    connect_timeout: Duration,
    server_alive_interval: Option<Duration>,
    control_directory: Option<PathBuf>,
    command: Vec<String>,
}

impl SshHost {
    /// A builder for the agent on `destination` (what `ssh` takes: `user@host`, `host`, an
    /// alias of `~/.ssh/config`), reading its configuration at `remote_config`, a path on
    /// that host: [`SshHostBuilder::new`].
    pub fn builder(destination: impl Into<String>, remote_config: impl Into<String>) -> SshHostBuilder {
        SshHostBuilder::new(destination, remote_config)
    }

    /// The host's name in errors and logs (default: the destination).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ssh destination.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// The port (`ssh -p`), when not ssh's configured one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The only identity offered (`ssh -i`, with `IdentitiesOnly=yes`), when set.
    pub fn identity_file(&self) -> Option<&Path> {
        self.identity_file.as_deref()
    }

    /// The ssh configuration file used instead of `~/.ssh/config` (`ssh -F`), when set.
    pub fn config_file(&self) -> Option<&Path> {
        self.config_file.as_deref()
    }

    /// The `known_hosts` file used instead of ssh's (`UserKnownHostsFile`), when set.
    pub fn known_hosts_file(&self) -> Option<&Path> {
        self.known_hosts_file.as_deref()
    }

    /// How the host's key is checked.
    pub fn host_key_policy(&self) -> HostKeyPolicy {
        self.host_key_policy
    }

    /// How long ssh may take to connect (`ConnectTimeout`).
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How often a silent connection is probed (`ServerAliveInterval`; three unanswered
    /// probes end it), if at all.
    pub fn server_alive_interval(&self) -> Option<Duration> {
        self.server_alive_interval
    }

    /// Where the control socket's directory is made, when not the `openssh` crate's
    /// default (`$XDG_STATE_HOME`, else `~/.local/state`).
    pub fn control_directory(&self) -> Option<&Path> {
        self.control_directory.as_deref()
    }

    /// The command run on the host: the agent, speaking the protocol on its stdin and
    /// stdout. Each argument reaches it as one word (quoted for the remote shell).
    pub fn command(&self) -> &[String] {
        &self.command
    }

    fn unreachable(&self, why: impl Into<String>) -> FleetError {
        FleetError::Unreachable {
            host: self.name.clone(),
            why: why.into(),
        }
    }
}

/// Builds an [`SshHost`]: [`new`](Self::new), setters, then [`build`](Self::build), which
/// refuses settings that cannot work.
///
/// ```
/// use rollback_core::ErrorKind;
/// use rollback_fleet::{HostKeyPolicy, SshHostBuilder};
/// use std::time::Duration;
/// let host = SshHostBuilder::new("web-2", "/srv/web/rollback.toml")
///     .port(2222)
///     .host_key_policy(HostKeyPolicy::AcceptNew)
///     .build()
///     .unwrap();
/// assert_eq!(host.port(), Some(2222));
///
/// // An option where the destination goes is refused before ssh ever sees it.
/// let e = SshHostBuilder::new("-oProxyCommand=evil", "/x").build().unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::InvalidInput);
/// let e = SshHostBuilder::new("web-2", "/x")
///     .connect_timeout(Duration::from_millis(500))
///     .build()
///     .unwrap_err();
/// assert!(e.to_string().contains("connect timeout"));
/// ```
#[derive(Clone, Debug)]
pub struct SshHostBuilder {
    host: SshHost,
}

impl SshHostBuilder {
    /// The defaults for the agent on `destination` reading `remote_config` there: named
    /// after the destination, ssh's own port, identities, configuration and `known_hosts`,
    /// strict host key checking, a 10 s connect timeout, a keep-alive probe every 15 s, and
    /// the command `rollback agent --stdio --config <remote_config>`.
    pub fn new(destination: impl Into<String>, remote_config: impl Into<String>) -> Self {
        let destination = destination.into();
        Self {
            host: SshHost {
                name: destination.clone(),
                destination,
                port: None,
                identity_file: None,
                config_file: None,
                known_hosts_file: None,
                host_key_policy: HostKeyPolicy::Strict,
                connect_timeout: Duration::from_secs(10),
                server_alive_interval: Some(Duration::from_secs(15)),
                control_directory: None,
                command: ["rollback", "agent", "--stdio", "--config"]
                    .into_iter()
                    .map(String::from)
                    .chain([remote_config.into()])
                    .collect(),
            },
        }
    }

    /// The host's name in errors and logs (default: the destination).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.host.name = name.into();
        self
    }

    /// The port (`ssh -p`; default: what ssh's configuration says, else 22).
    pub fn port(mut self, port: u16) -> Self {
        self.host.port = Some(port);
        self
    }

    /// Offers this identity only (`ssh -i <file> -o IdentitiesOnly=yes`; default: ssh's
    /// configured identities and agent).
    pub fn identity_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.host.identity_file = Some(path.into());
        self
    }

    /// Reads this ssh configuration instead of `~/.ssh/config` (`ssh -F`).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.host.config_file = Some(path.into());
        self
    }

    /// Checks host keys against this file instead of ssh's (`UserKnownHostsFile`).
    pub fn known_hosts_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.host.known_hosts_file = Some(path.into());
        self
    }

    /// How the host's key is checked (default [`HostKeyPolicy::Strict`]).
    pub fn host_key_policy(mut self, policy: HostKeyPolicy) -> Self {
        self.host.host_key_policy = policy;
        self
    }

    /// How long ssh may take to connect (`ConnectTimeout`, whole seconds, at least one;
    /// default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.host.connect_timeout = timeout;
        self
    }

    /// How often a silent connection is probed (`ServerAliveInterval`, whole seconds, at
    /// least one; `None` for ssh's configured value; default 15 s).
    pub fn server_alive_interval(mut self, interval: Option<Duration>) -> Self {
        self.host.server_alive_interval = interval;
        self
    }

    /// Where the control socket's directory is made (default: the `openssh` crate's,
    /// `$XDG_STATE_HOME` or `~/.local/state`). Unix socket paths are limited to about
    /// 100 bytes: keep it short.
    pub fn control_directory(mut self, path: impl Into<PathBuf>) -> Self {
        self.host.control_directory = Some(path.into());
        self
    }

    /// The command run on the host instead of `rollback agent --stdio --config <path>`
    /// (another path to `rollback`, a wrapper): a program and its arguments.
    pub fn command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.host.command = command.into_iter().map(Into::into).collect();
        self
    }

    /// The settings so far.
    pub fn host(&self) -> &SshHost {
        &self.host
    }

    /// The host, once the settings are checked: a destination ssh cannot read as an
    /// option or as several words, a name, a port other than 0, timeouts of at least a
    /// second, a command with a program. Nothing is run and no file is read here.
    pub fn build(self) -> Result<SshHost, AdapterError> {
        let h = &self.host;
        let bad = |m: String| Err(AdapterError::new(ErrorKind::InvalidInput, m));
        if h.destination.is_empty()
            || h.destination.starts_with('-')
            || h.destination.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(format!(
                "the ssh destination `{}` is not one: give `user@host`, `host` or an alias of your ssh config (no spaces, not starting with `-`)",
                h.destination.escape_debug()
            ));
        }
        if h.name.trim().is_empty() {
            return bad(format!("host `{}`: its name must not be empty", h.destination));
        }
        if h.port == Some(0) {
            return bad(format!(
                "host `{}`: port 0 is not a port ssh can connect to",
                h.name
            ));
        }
        if h.connect_timeout < Duration::from_secs(1) {
            return bad(format!(
                "host `{}`: the connect timeout {:?} is under a second (ssh counts it in whole seconds)",
                h.name, h.connect_timeout
            ));
        }
        if h.server_alive_interval
            .is_some_and(|i| i < Duration::from_secs(1))
        {
            return bad(format!(
                "host `{}`: the server-alive interval is under a second (ssh counts it in whole seconds)",
                h.name
            ));
        }
        if h.command.first().is_none_or(|p| p.trim().is_empty()) {
            return bad(format!(
                "host `{}`: the agent's command must name a program (default `rollback agent --stdio --config <path>`)",
                h.name
            ));
        }
        Ok(self.host)
    }
}

/// How much of the agent's stderr is kept for an error message: lines and bytes per line.
const STDERR_LINES: usize = 10;
const STDERR_LINE_BYTES: usize = 300;

/// Opens an ssh connection to `host`, runs its agent there and says hello within
/// `hello_timeout` (the connection itself has the host's
/// [connect timeout](SshHost::connect_timeout)). The connection keeps ssh running;
/// dropping its last handle ends the agent and the ssh connection.
///
/// Every failure to reach the agent is [`FleetError::Unreachable`] naming the host and
/// why (nothing listening, an unknown or changed host key, a refused key, the agent's
/// program missing there, the agent exiting, no hello in time); an agent of another
/// protocol version is [`FleetError::Refused`], naming both versions. The agent's stderr
/// goes to this process's log (`tracing`, at info), each line naming the host.
pub async fn connect(host: &SshHost, hello_timeout: Duration) -> Result<Arc<AgentConnection>, FleetError> {
    let Some((program, args)) = host.command.split_first() else {
        return Err(host.unreachable("no command to run the agent with is set"));
    };
    let session = open_session(host).await?;
    let spawned = session
        .clone()
        .arc_command(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .await;
    // From here on, the session's last handle is dropped off the runtime (`ssh -O exit`).
    end_off_runtime(session);
    let mut child =
        spawned.map_err(|e| host.unreachable(format!("cannot run its agent over ssh: {}", chain(&e))))?;
    let (Some(stdin), Some(stdout)) = (child.stdin().take(), child.stdout().take()) else {
        end_off_runtime(child);
        return Err(host.unreachable("ssh gave no pipes to its agent"));
    };
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let drain = child
        .stderr()
        .take()
        .map(|stderr| tokio::spawn(drain_stderr(host.name.clone(), stderr, tail.clone())));
    let transport = Arc::new(Transport {
        child: Mutex::new(Some(child)),
        drain: Mutex::new(drain),
    });
    tracing::debug!(host = %host.name, "agent started over ssh; saying hello");
    match AgentConnection::open(
        host.name.clone(),
        stdin,
        stdout,
        Some(Box::new(transport.clone())),
        hello_timeout,
    )
    .await
    {
        Ok(conn) => Ok(conn),
        Err(FleetError::Unreachable { why, .. }) => {
            Err(host.unreachable(why_the_agent_failed(host, &transport, &tail, why).await))
        }
        Err(e) => Err(e),
    }
}

/// The master connection, or why there is none.
async fn open_session(host: &SshHost) -> Result<Arc<Session>, FleetError> {
    let mut b = SessionBuilder::default();
    b.known_hosts_check(match host.host_key_policy {
        HostKeyPolicy::Strict => KnownHosts::Strict,
        HostKeyPolicy::AcceptNew => KnownHosts::Add,
    })
    .connect_timeout(host.connect_timeout)
    // The master ends a minute after its last channel: if this process dies without closing
    // it, it does not stay behind for ever.
    .control_persist(ControlPersist::IdleFor(NonZeroUsize::MIN.saturating_add(59)));
    if let Some(interval) = host.server_alive_interval {
        b.server_alive_interval(interval);
    }
    if let Some(port) = host.port {
        b.port(port);
    }
    if let Some(identity) = &host.identity_file {
        b.keyfile(identity);
    }
    if let Some(config) = &host.config_file {
        b.config_file(config);
    }
    if let Some(known_hosts) = &host.known_hosts_file {
        b.user_known_hosts_file(known_hosts);
    }
    if let Some(dir) = &host.control_directory {
        b.control_directory(dir);
    }
    // ssh's ConnectTimeout covers the TCP connection and the banner; the key exchange and
    // authentication get as long again.
    let limit = host.connect_timeout * 2 + Duration::from_secs(5);
    match tokio::time::timeout(limit, b.connect(&host.destination)).await {
        Ok(Ok(session)) => Ok(Arc::new(session)),
        Ok(Err(e)) => Err(host.unreachable(describe_connect_error(host, &e).await)),
        Err(_) => Err(host.unreachable(format!(
            "ssh did not connect within {}s; check the address and that sshd answers there",
            limit.as_secs()
        ))),
    }
}

/// An operator's words for why ssh did not connect, quoting ssh.
async fn describe_connect_error(host: &SshHost, e: &openssh::Error) -> String {
    let said = match e {
        openssh::Error::Connect(io) => ssh_said(&io.to_string()),
        _ => {
            return format!(
                "ssh could not start: {}; check that OpenSSH's `ssh` is installed",
                chain(e)
            )
        }
    };
    let port = host.port.map_or_else(String::new, |p| format!(" on port {p}"));
    let lower = said.to_lowercase();
    // ssh names the host as known_hosts does (`[host]:port` off port 22).
    let known_as = between(&said, "Host key for ", " has changed")
        .or_else(|| between(&said, " host key is known for ", " and you"))
        .unwrap_or_else(|| bare_host(&host.destination).to_owned());
    let what = if lower.contains("has changed") || lower.contains("identification has changed") {
        format!(
            "its host key has CHANGED since it was recorded in known_hosts (a reinstalled host, or someone in between): \
             check the new key with the host's administrator, then replace the old entry (`ssh-keygen -R '{known_as}'`)"
        )
    } else if lower.contains("host key verification failed") || lower.contains("host key is known") {
        let file = host
            .known_hosts_file
            .as_ref()
            .map_or_else(|| "known_hosts".to_owned(), |f| f.display().to_string());
        format!(
            "its host key is unknown: {known_as} is not in {file} and host key checking is strict; \
             check the key's fingerprint with the host's administrator and add it (connect once with `ssh`, or `ssh-keyscan`), \
             or allow new hosts (HostKeyPolicy::AcceptNew)"
        )
    } else if lower.contains("permission denied") {
        match &host.identity_file {
            // ssh says so on its stderr only, which is not ours to read.
            Some(identity) if tokio::fs::metadata(identity).await.is_err() => format!(
                "it refused us: the identity file {} cannot be read (missing?), so no key was offered",
                identity.display()
            ),
            _ => "it refused our key: check the identity file or ssh-agent and the host's authorized_keys for that user"
                .to_owned(),
        }
    } else if lower.contains("connection refused") {
        format!("nothing accepts ssh connections there (connection refused{port}): is sshd running, is the port right?")
    } else if lower.contains("could not resolve") {
        "its name does not resolve: check the destination or the HostName of your ssh config".to_owned()
    } else if lower.contains("timed out") {
        format!(
            "the connection timed out after {}s: is the host up and the port open?",
            host.connect_timeout.as_secs()
        )
    } else {
        "ssh could not connect".to_owned()
    };
    if said.is_empty() {
        what
    } else {
        format!("{what} (ssh: {said})")
    }
}

/// The lines of ssh's log worth quoting: its last two, and any warning about an identity
/// file; without the warning banners (`@@@`) and the "Permanently added" notes.
fn ssh_said(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(|l| l.trim().trim_start_matches("ssh: "))
        .filter(|l| !l.is_empty() && !l.starts_with('@') && !l.starts_with("Warning: Permanently added"))
        .collect();
    let mut said: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("Warning: Identity file") || l.starts_with("Load key"))
        .collect();
    for line in lines.iter().rev().take(2).rev() {
        if !said.contains(line) {
            said.push(line);
        }
    }
    let text = said.join(" / ");
    truncate(&text, 600)
}

/// The text between `start` and `end` in `text`.
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

/// `host` of `user@host`, `ssh://user@host:port` or `host`.
fn bare_host(destination: &str) -> &str {
    let d = destination.strip_prefix("ssh://").unwrap_or(destination);
    let d = d.rsplit_once('@').map_or(d, |(_, h)| h);
    d.split(':').next().unwrap_or(d)
}

/// When the hello failed: whether the agent's program is missing there or exited, with the
/// last lines it wrote.
async fn why_the_agent_failed(
    host: &SshHost,
    transport: &Transport,
    tail: &Mutex<VecDeque<String>>,
    why: String,
) -> String {
    let program = host.command.first().map_or("", String::as_str);
    let child = lock(&transport.child).take();
    let ended = match child {
        Some(child) => {
            let session = child.session();
            let ended = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            end_off_runtime(session);
            ended.ok()
        }
        None => None,
    };
    // Its stderr ends with it: let the last lines arrive.
    let drain = lock(&transport.drain).take();
    if let Some(drain) = drain {
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
    let said = {
        let lines = lock(tail);
        lines.iter().cloned().collect::<Vec<_>>().join(" / ")
    };
    let said = if said.is_empty() {
        String::new()
    } else {
        format!("; it said: {said}")
    };
    match ended {
        Some(Err(openssh::Error::Remote(e))) if e.kind() == std::io::ErrorKind::NotFound => format!(
            "the agent's program `{program}` was not found there (exit status 127){said}; install `rollback` on that host or give the agent's command with its full path"
        ),
        Some(Ok(status)) if !status.success() => {
            format!("its agent `{program}` exited ({status}) before answering the hello{said}")
        }
        Some(Ok(_)) => format!("its agent `{program}` ended before answering the hello{said}"),
        Some(Err(openssh::Error::RemoteProcessTerminated | openssh::Error::Disconnected)) => {
            format!("the ssh connection ended before its agent answered ({why}){said}")
        }
        Some(Err(e)) => format!("{why}; ssh: {}{said}", chain(&e)),
        None => format!("{why}{said}"),
    }
}

/// Logs the agent's stderr, line by line, and keeps the last few for error messages.
async fn drain_stderr(host: String, stderr: openssh::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Some(line) = stderr_line(&line) else {
            continue;
        };
        tracing::info!(host = %host, "agent: {line}");
        let mut tail = lock(&tail);
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// A line of the agent's stderr as it is logged and kept: what looks like a secret
/// redacted (before it is cut, so no secret is cut out of recognition), at most
/// [`STDERR_LINE_BYTES`]; `None` when blank.
fn stderr_line(line: &str) -> Option<String> {
    let line = truncate(
        &rollback_core::secret::redact_text(line.trim_end()),
        STDERR_LINE_BYTES,
    );
    (!line.is_empty()).then_some(line)
}

/// What [`AgentConnection`] keeps alive: the ssh channel to the agent (which holds the
/// master connection). Dropped, the channel's ssh is killed (the agent, its stdin closed,
/// ends) and the master is told to exit, off the async runtime's threads.
struct Transport {
    child: Mutex<Option<openssh::Child<Arc<Session>>>>,
    drain: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Transport {
    fn drop(&mut self) {
        if let Some(drain) = lock(&self.drain).take() {
            drain.abort();
        }
        if let Some(child) = lock(&self.child).take() {
            end_off_runtime(child);
        }
    }
}

/// Drops `value` on a blocking thread when there is a runtime: dropping the last
/// [`Session`] runs `ssh -O exit` and waits for it.
fn end_off_runtime<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        // If the runtime is shutting down, the closure is dropped instead: still a drop.
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(value))),
        Err(_) => drop(value),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_said_keeps_the_last_lines_and_identity_warnings() {
        let log = "Warning: Identity file /nope not accessible: No such file or directory.\n\
                   root@127.0.0.1: Permission denied (publickey).\n";
        assert_eq!(
            ssh_said(log),
            "Warning: Identity file /nope not accessible: No such file or directory. / root@127.0.0.1: Permission denied (publickey)."
        );
        let changed =
            "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@\nIT IS POSSIBLE\n\
                       Host key for [127.0.0.1]:22 has changed and you have requested strict checking.\n\
                       Host key verification failed.\n";
        assert_eq!(
            ssh_said(changed),
            "Host key for [127.0.0.1]:22 has changed and you have requested strict checking. / Host key verification failed."
        );
    }

    #[test]
    fn the_agents_stderr_is_redacted_before_it_is_logged_or_kept() {
        let line = stderr_line(
            "fake_agent: cannot connect to postgres://app:hunter2@db/app with DB_PASSWORD=hunter2  ",
        )
        .expect("a line");
        assert!(!line.contains("hunter2"), "{line}");
        assert!(line.contains("DB_PASSWORD=[redacted]"), "{line}");
        assert_eq!(stderr_line("   "), None);
        let long = format!("token={} {}", "s".repeat(400), "x".repeat(400));
        let cut = stderr_line(&long).expect("a line");
        assert!(!cut.contains("sss"), "redacted before it is cut: {cut}");
        assert!(cut.len() <= STDERR_LINE_BYTES + '…'.len_utf8(), "{}", cut.len());
    }

    #[test]
    fn between_finds_the_name_ssh_gives() {
        let said = "Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.";
        assert_eq!(
            between(said, "Host key for ", " has changed").as_deref(),
            Some("[127.0.0.1]:2222")
        );
        assert_eq!(between(said, "nope", " has changed"), None);
    }

    #[test]
    fn bare_host_of_destinations() {
        assert_eq!(bare_host("deploy@web-2"), "web-2");
        assert_eq!(bare_host("ssh://deploy@web-2:2222"), "web-2");
        assert_eq!(bare_host("web-2"), "web-2");
    }

    #[test]
    fn the_builder_refuses_what_cannot_work() {
        assert!(SshHost::builder("web", "/c").build().is_ok());
        for bad in ["", "-oProxyCommand=x", "two words", "a\nb"] {
            let e = SshHost::builder(bad, "/c").build().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{bad:?}: {e}");
        }
        assert!(SshHost::builder("web", "/c").port(0).build().is_err());
        assert!(SshHost::builder("web", "/c").name(" ").build().is_err());
        assert!(SshHost::builder("web", "/c")
            .server_alive_interval(Some(Duration::from_millis(10)))
            .build()
            .is_err());
        assert!(SshHost::builder("web", "/c")
            .command(Vec::<String>::new())
            .build()
            .is_err());
        assert!(SshHost::builder("web", "/c").command([""]).build().is_err());
    }
}
