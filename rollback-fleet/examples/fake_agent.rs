//! A stand-in for `rollback agent --stdio`, for rollback-fleet's ssh tests (`tests/ssh.rs`),
//! which run it on a test sshd: it serves rollback-testkit's in-memory fakes with
//! [`rollback_fleet::serve`] on its stdin and stdout.
//!
//! ```text
//! fake_agent [--app NAME] [--pid-file PATH] [--fail MESSAGE]
//! ```
//!
//! `--app` names the app it serves (default `web`, online); `--pid-file` writes its pid
//! there first, so a test can see it end; `--fail` writes MESSAGE to stderr and exits with
//! status 3 before serving anything, as an agent with a broken configuration would.

use rollback_core::AppName;
use rollback_fleet::{serve, HostAdapters};
use rollback_testkit::{FakeFixture, FakeHealthProbe, FakeProcessManager};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    let mut app = "web".to_owned();
    let mut pid_file = None;
    let mut fail = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--app", Some(v)) => app = v,
            ("--pid-file", Some(v)) => pid_file = Some(v),
            ("--fail", Some(v)) => fail = Some(v),
            (other, _) => {
                eprintln!("fake_agent: unknown or incomplete argument `{other}`");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(path) = pid_file {
        if let Err(e) = std::fs::write(&path, std::process::id().to_string()) {
            eprintln!("fake_agent: cannot write {path}: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(message) = fail {
        eprintln!("fake_agent: {message}");
        return ExitCode::from(3);
    }
    eprintln!("fake_agent: serving app {app}");

    let f = FakeFixture::new();
    let pm = FakeProcessManager::new(&f.world);
    pm.add_app(&app);
    let adapters = HostAdapters::new(AppName::new(app.as_str()), Arc::new(pm))
        .code(Arc::new(f.code.clone()))
        .config(Arc::new(f.config.clone()))
        .probe(Arc::new(FakeHealthProbe::new(&f.world, &app)));
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fake_agent: cannot start a runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(tokio::io::stdin(), tokio::io::stdout(), adapters)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake_agent: {e}");
            ExitCode::FAILURE
        }
    }
}
