//! A throw-away OpenSSH server for integration tests: [`TempSshd::start`] generates a host
//! key and a client key with `ssh-keygen` into a fresh temporary directory, writes an
//! `sshd_config` that listens on `127.0.0.1` and a free port and lets in only the current
//! user with that client key, and runs `sshd -D -e -f <config>` as a child. Dropping the
//! value (also while a test panics) ends that sshd and the connections it accepted, and
//! deletes the directory.
//!
//! It also writes what a client needs: a `known_hosts` file with the host key, and an
//! `ssh_config` with a host alias ([`TempSshd::alias`]) naming the address, port, user,
//! identity and known hosts (`IdentitiesOnly yes`, `BatchMode yes`), so that
//! `ssh -F <ssh_config> <alias>` logs in without reading anything of the user's own.
//!
//! When `sshd` or `ssh-keygen` is missing, `start` reports a loud skip through
//! [`integration::unavailable`] (a failure under
//! `ROLLBACK_REQUIRE_INTEGRATION=1`) and returns `None`. As root, sshd needs its
//! privilege-separation directory `/run/sshd`, which `start` creates when it is missing.
//!
//! ```no_run
//! use rollback_testkit::temp_sshd::TempSshd;
//! let Some(sshd) = TempSshd::start("my_test") else { return };
//! let status = std::process::Command::new("ssh")
//!     .arg("-F").arg(sshd.ssh_config())
//!     .arg(sshd.alias())
//!     .arg("true")
//!     .status()
//!     .unwrap();
//! assert!(status.success());
//! ```

use crate::integration::{self, run_with_timeout};
use crate::temp_pm2::free_port;
use std::fmt;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `ssh-keygen` and sshd's start may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running sshd of a test's own, ended and deleted on drop.
pub struct TempSshd {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    user: String,
    ssh_keygen: PathBuf,
}

impl fmt::Debug for TempSshd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths only: the keys' contents never.
        f.debug_struct("TempSshd")
            .field("dir", &self.dir.path())
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .field("user", &self.user)
            .finish()
    }
}

impl TempSshd {
    /// The host alias the [`ssh_config`](Self::ssh_config) file defines.
    pub const ALIAS: &'static str = "rollback-test-sshd";

    /// Generates the keys and configuration and starts sshd, waiting until it takes
    /// connections. `test` names the caller in the skip banner.
    ///
    /// `None` after a loud skip when `sshd` or `ssh-keygen` is missing (a panic instead
    /// under `ROLLBACK_REQUIRE_INTEGRATION=1`). Panics, with sshd's own log, when they are
    /// there but the server does not start.
    pub fn start(test: &str) -> Option<Self> {
        let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| integration::is_executable(p))
            .or_else(|| integration::find_on_path("sshd"));
        let Some(sshd) = sshd else {
            integration::unavailable(test, "sshd (apt-get install openssh-server; see .ci/setup)");
            return None;
        };
        let Some(ssh_keygen) = integration::find_on_path("ssh-keygen") else {
            integration::unavailable(test, "ssh-keygen (apt-get install openssh-client; see .ci/setup)");
            return None;
        };
        if integration::find_on_path("ssh").is_none() {
            integration::unavailable(test, "ssh (apt-get install openssh-client; see .ci/setup)");
            return None;
        }
        privilege_separation_dir();

        let dir = tempfile::Builder::new()
            .prefix("rbsshd-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{test}: cannot create a temp dir for sshd: {e}"));
        let user = current_user().unwrap_or_else(|e| panic!("{test}: {e}"));
        keygen(&ssh_keygen, &dir.path().join("host_key"), "rollback-test-host")
            .unwrap_or_else(|e| panic!("{test}: {e}"));
        keygen(
            &ssh_keygen,
            &dir.path().join("client_key"),
            "rollback-test-client",
        )
        .unwrap_or_else(|e| panic!("{test}: {e}"));
        let client_pub = read(&dir.path().join("client_key.pub")).unwrap_or_else(|e| panic!("{test}: {e}"));
        write_private(&dir.path().join("authorized_keys"), &client_pub)
            .unwrap_or_else(|e| panic!("{test}: {e}"));

        // A port that was free a moment ago may be taken by the time sshd binds it: try again.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn_sshd(&sshd, dir.path(), port, &user) {
                Ok(child) => {
                    let server = Self {
                        dir,
                        child,
                        port,
                        user,
                        ssh_keygen,
                    };
                    server
                        .write_client_files()
                        .unwrap_or_else(|e| panic!("{test}: {e}"));
                    return Some(server);
                }
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("{test}: sshd did not start: {e}"),
            }
        }
        panic!("{test}: sshd did not start: {last_error}");
    }

    /// The port sshd listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user the client key logs in as (the user running the test).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// `user@127.0.0.1`, to use with [`port`](Self::port), [`identity`](Self::identity)
    /// and [`known_hosts`](Self::known_hosts) (or use the [`alias`](Self::alias) with
    /// [`ssh_config`](Self::ssh_config), which names them all).
    pub fn destination(&self) -> String {
        format!("{}@127.0.0.1", self.user)
    }

    /// The temporary directory holding the keys, configuration and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The client's private key (mode 0600), the one sshd lets in.
    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A `known_hosts` file with this server's host key, as `[127.0.0.1]:<port>`.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// An `ssh_config` file defining [`ALIAS`](Self::ALIAS): 127.0.0.1, the port, the user,
    /// the client key only (`IdentitiesOnly yes`), the [`known_hosts`](Self::known_hosts)
    /// file only, `BatchMode yes`. Host key checking is left to the caller's `-o`.
    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// The host alias [`ssh_config`](Self::ssh_config) defines.
    pub fn alias(&self) -> &'static str {
        Self::ALIAS
    }

    /// sshd's log so far (`-e`: what it would send to syslog).
    pub fn log(&self) -> String {
        read(&self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Generates one more key pair (mode 0600) named `name` in the directory, which sshd
    /// does not let in: for tests of a refused key. Returns the private key's path.
    pub fn stranger_key(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(format!("stranger_{name}"));
        keygen(&self.ssh_keygen, &path, "rollback-test-stranger").unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn write_client_files(&self) -> Result<(), String> {
        let host_pub = read(&self.dir.path().join("host_key.pub"))?;
        // `<type> <base64> <comment>`: known_hosts takes the first two.
        let key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        write_private(
            &self.known_hosts(),
            &format!("[127.0.0.1]:{} {}\n", self.port, key.join(" ")),
        )?;
        let config = format!(
            "Host {alias}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile \"{identity}\"\n  \
             IdentitiesOnly yes\n  IdentityAgent none\n  UserKnownHostsFile \"{known_hosts}\"\n  GlobalKnownHostsFile /dev/null\n  \
             BatchMode yes\n",
            alias = Self::ALIAS,
            port = self.port,
            user = self.user,
            identity = self.identity().display(),
            known_hosts = self.known_hosts().display(),
        );
        write_private(&self.ssh_config(), &config)
    }

    /// Ends sshd: first the connections it accepted (its children, which sshd puts in
    /// sessions of their own), then sshd itself.
    fn end(&mut self) {
        let pid = self.child.id();
        for child in children_of(pid) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.to_string()])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TempSshd {
    fn drop(&mut self) {
        self.end();
    }
}

/// Starts `sshd -D -e -f <dir>/sshd_config` on `port` and waits until it takes
/// connections; an error carries its log.
fn spawn_sshd(sshd: &Path, dir: &Path, port: u16, user: &str) -> Result<Child, String> {
    let config = dir.join("sshd_config");
    write_private(&config, &sshd_config(dir, port, user))?;
    let log_path = dir.join("sshd.log");
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let mut child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", sshd.display()))?;
    let with_log = |what: String| format!("{what}; its log:\n{}", read(&log_path).unwrap_or_default());
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(with_log(format!("sshd exited ({status})")));
        }
        if TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200)).is_ok()
        {
            return Ok(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(with_log(format!(
                "sshd did not listen on 127.0.0.1:{port} within {STEP_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Public-key logins of `user` only, with the key in `<dir>/authorized_keys`; nothing of
/// the system's sshd set-up is read.
fn sshd_config(dir: &Path, port: u16, user: &str) -> String {
    let d = dir.display();
    format!(
        "# Written by rollback-testkit's TempSshd.\n\
         ListenAddress 127.0.0.1:{port}\n\
         HostKey \"{d}/host_key\"\n\
         PidFile \"{d}/sshd.pid\"\n\
         AuthorizedKeysFile \"{d}/authorized_keys\"\n\
         AllowUsers {user}\n\
         StrictModes no\n\
         UsePAM no\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         AllowAgentForwarding no\n\
         AllowTcpForwarding no\n\
         X11Forwarding no\n\
         PrintMotd no\n\
         LogLevel VERBOSE\n"
    )
}

/// `ssh-keygen -t ed25519` without a passphrase into `path` (private, mode 0600) and
/// `path.pub`.
fn keygen(ssh_keygen: &Path, path: &Path, comment: &str) -> Result<(), String> {
    let mut cmd = Command::new(ssh_keygen);
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path);
    let out = run_with_timeout(&mut cmd, STEP_TIMEOUT).map_err(|e| format!("ssh-keygen: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen -f {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot chmod 0600 {}: {e}", path.display()))
}

/// As root, sshd wants its privilege-separation directory (`/run/sshd`, which the Debian
/// package's service would create); as another user it does without.
fn privilege_separation_dir() {
    let dir = Path::new("/run/sshd");
    if dir.is_dir() {
        return;
    }
    if std::fs::create_dir_all(dir).is_ok() {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
}

/// The name of the user running this process (`id -un`).
fn current_user() -> Result<String, String> {
    let out =
        run_with_timeout(Command::new("id").arg("-un"), STEP_TIMEOUT).map_err(|e| format!("id -un: {e}"))?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || user.is_empty() {
        return Err(format!("id -un did not name the current user ({})", out.status));
    }
    Ok(user)
}

/// The processes whose parent is `pid` (from `/proc/<pid>/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
                .and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.to_owned()))
                .and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
