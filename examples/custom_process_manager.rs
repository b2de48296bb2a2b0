//! A second `ProcessManager`, as a team with its own supervisor would write it: spawn a
//! configured argv, stop = kill + wait, status from the child handle. It passes the same
//! conformance suite as the pm2 adapter; the app is this binary re-run as `serve <port>`,
//! and the app that crashes at start (the suite's optional crash part) is it re-run as `crash`.
//! The `ProcessManager` trait docs are the contract it follows: names that address several
//! apps are refused, an online app has a pid, a crash at start is `Failed` and leaves the app
//! `Errored` until `stop`, and it counts its restarts (`Some`).
//! Run: `cargo run -p rollback-examples --example custom_process_manager` (`cargo test` runs it too).

use async_trait::async_trait;
use rollback_core::{AdapterError, AppName, ErrorKind, ProcessManager, ProcessState, ProcessStatus};
use rollback_testkit::conformance::{self, ProcessFixture};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// One supervised app: the argv to run, the address that answers once it is ready, the
/// running child with its start time, and whether its last start crashed.
struct App {
    argv: Vec<String>,
    ready: SocketAddr,
    running: Option<(Child, Instant)>,
    crashed: bool,
    restarts: u32,
}

/// Supervises child processes; each method returns once the state is real. It never
/// restarts a crashed app by itself, so a crash is `Errored` at once (it gave up).
#[derive(Default)]
struct ChildSupervisor {
    apps: Mutex<HashMap<AppName, App>>,
}

impl ChildSupervisor {
    fn app(mut self, name: &str, argv: Vec<String>, ready: SocketAddr) -> Self {
        let app = App {
            argv,
            ready,
            running: None,
            crashed: false,
            restarts: 0,
        };
        self.apps.get_mut().insert(AppName::new(name), app);
        self
    }
}

/// The app `name`: refuses a name that would address several apps (the contract), and an
/// app that is not configured is `NotFound`.
fn get<'a>(apps: &'a mut HashMap<AppName, App>, name: &AppName) -> Result<&'a mut App, AdapterError> {
    if let Some(why) = name.why_not_one_app() {
        let msg = format!("app name `{name}` does not address exactly one app ({why}): name the app itself");
        return Err(AdapterError::new(ErrorKind::InvalidInput, msg));
    }
    let msg = || AdapterError::not_found(format!("app `{name}` is not configured: add it with .app(..)"));
    apps.get_mut(name).ok_or_else(msg)
}

fn io<'a>(name: &'a AppName, what: &'a str) -> impl FnOnce(std::io::Error) -> AdapterError + 'a {
    move |e| AdapterError::new(ErrorKind::Failed, format!("cannot {what} app `{name}`")).with_source(e)
}

/// Spawns the app and waits (up to 10 s) until its address accepts connections. An exit
/// before that is a crash at start (`Failed`), remembered for `status`.
async fn spawn(name: &AppName, app: &mut App) -> Result<(), AdapterError> {
    let mut cmd = Command::new(&app.argv[0]);
    cmd.args(&app.argv[1..]).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(io(name, "run"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().map_err(io(name, "wait for"))? {
            app.crashed = true;
            let msg = format!("app `{name}` crashed during start ({status}), last state errored");
            return Err(AdapterError::new(ErrorKind::Failed, msg));
        }
        if tokio::net::TcpStream::connect(app.ready).await.is_ok() {
            app.running = Some((child, Instant::now()));
            app.crashed = false;
            return Ok(());
        }
        if Instant::now() > deadline {
            let msg = format!(
                "app `{name}` did not answer on {} within 10s (last state launching)",
                app.ready
            );
            return Err(AdapterError::timeout(msg));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the child, if it still runs, and waits for it to be gone; forgets a crash.
async fn kill(name: &AppName, app: &mut App) -> Result<(), AdapterError> {
    if let Some((mut child, _)) = app.running.take() {
        if child.try_wait().map_err(io(name, "wait for"))?.is_none() {
            child.kill().await.map_err(io(name, "kill"))?;
        }
    }
    app.crashed = false;
    Ok(())
}

#[async_trait]
impl ProcessManager for ChildSupervisor {
    async fn status(&self, name: &AppName) -> Result<ProcessStatus, AdapterError> {
        let mut apps = self.apps.lock().await;
        let app = get(&mut apps, name)?;
        let (state, pid, uptime) = match app.running.as_mut() {
            None if app.crashed => (ProcessState::Errored, None, None),
            None => (ProcessState::Stopped, None, None),
            Some((c, since)) => match c.try_wait() {
                Ok(None) => (ProcessState::Online, c.id(), Some(since.elapsed())),
                _ => (ProcessState::Errored, None, None), // exited without being asked to
            },
        };
        Ok(ProcessStatus {
            app: name.clone(),
            state,
            pid,
            restarts: Some(app.restarts),
            uptime,
        })
    }

    async fn stop(&self, name: &AppName) -> Result<(), AdapterError> {
        kill(name, get(&mut *self.apps.lock().await, name)?).await
    }

    async fn start(&self, name: &AppName) -> Result<(), AdapterError> {
        let mut apps = self.apps.lock().await;
        let app = get(&mut apps, name)?;
        match app.running.as_mut().map(|(c, _)| c.try_wait()) {
            Some(Ok(None)) => Ok(()), // already running
            _ => spawn(name, app).await,
        }
    }

    async fn restart(&self, name: &AppName) -> Result<(), AdapterError> {
        let mut apps = self.apps.lock().await;
        let app = get(&mut apps, name)?;
        kill(name, app).await?;
        app.restarts += 1;
        spawn(name, app).await
    }
}

struct Fixture(SocketAddr);

#[async_trait]
impl ProcessFixture for Fixture {
    fn app(&self) -> AppName {
        AppName::new("demo")
    }
    async fn is_serving(&self) -> bool {
        tokio::net::TcpStream::connect(self.0).await.is_ok()
    }
    fn crashing_app(&self) -> Option<AppName> {
        Some(AppName::new("crashy"))
    }
}

/// The supervised app: answers every connection with `200 ok`.
fn serve(port: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(format!("127.0.0.1:{port}"))?;
    for mut conn in listener.incoming().flatten() {
        let _ = conn.read(&mut [0u8; 1024]);
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("serve") => return Ok(serve(args.get(2).ok_or("serve <port>")?)?),
        Some("crash") => std::process::exit(1), // the app that crashes at start
        _ => {}
    }
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?; // a free port
    let exe = std::env::current_exe()?.to_string_lossy().into_owned();
    let argv = vec![exe.clone(), "serve".into(), addr.port().to_string()];
    let crashy = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let supervisor =
        ChildSupervisor::default()
            .app("demo", argv, addr)
            .app("crashy", vec![exe, "crash".into()], crashy);
    conformance::process_manager(&supervisor, &Fixture(addr)).await; // panics on a broken promise
    supervisor.stop(&AppName::new("demo")).await?;
    println!("ChildSupervisor passed rollback_testkit::conformance::process_manager");
    Ok(())
}
