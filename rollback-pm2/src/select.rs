//! Which pm2 processes an [`AppName`] addresses: the name check of the
//! [`ProcessManager`](rollback_core::ProcessManager) contract, and one app's instances
//! picked out of `pm2 jlist` (or an error naming the apps pm2 knows). Used by the manager,
//! the metrics source and the log reader alike.

use crate::error::Pm2Error;
use crate::jlist::Pm2Process;
use rollback_core::AppName;

/// The hint of an unknown app that is only looked at.
pub(crate) const NAME_HINT: &str = ": check the app name (`pm2 ls` with the same PM2_HOME lists them)";
/// The hint of an unknown app that was to be started.
pub(crate) const START_HINT: &str =
    " and no start spec is configured for it: add one with Pm2ProcessManager::builder().app(..)";

/// The instances of `app` in `all`, or [`Pm2Error::UnknownApp`] listing the known apps.
pub(crate) fn instances_of<P: AsRef<Pm2Process>>(
    all: Vec<P>,
    app: &AppName,
    hint: &'static str,
) -> Result<Vec<P>, Pm2Error> {
    if all.iter().any(|p| p.as_ref().name == app.as_str()) {
        Ok(all
            .into_iter()
            .filter(|p| p.as_ref().name == app.as_str())
            .collect())
    } else {
        Err(unknown_app(&all, app, hint))
    }
}

/// [`Pm2Error::UnknownApp`] for `app`, naming the apps in `all`.
pub(crate) fn unknown_app<P: AsRef<Pm2Process>>(all: &[P], app: &AppName, hint: &'static str) -> Pm2Error {
    let mut known: Vec<&str> = all.iter().map(|p| p.as_ref().name.as_str()).collect();
    known.sort_unstable();
    known.dedup();
    Pm2Error::UnknownApp {
        app: app.to_string(),
        known: if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        },
        hint,
    }
}

/// Refuses a name that would not address exactly one app: pm2 reads `all` as every app,
/// `/…/` as a regular expression and a number as a process id; patterns (`*`, `?`, `[`,
/// supervisord's `group:*`) address several apps in other managers and are refused
/// everywhere (the [`ProcessManager`](rollback_core::ProcessManager) contract).
pub(crate) fn one_app(app: &AppName) -> Result<(), Pm2Error> {
    let name = app.as_str();
    let why = if let Some(why) = app.why_not_one_app() {
        why
    } else if name.bytes().all(|b| b.is_ascii_digit()) {
        "pm2 reads a number as a process id"
    } else {
        return Ok(());
    };
    Err(Pm2Error::NotOneApp {
        app: name.to_owned(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, id: u32) -> Pm2Process {
        Pm2Process {
            name: name.into(),
            pm_id: id,
            pid: None,
            status: "stopped".into(),
            restarts: 0,
            started_at_ms: None,
            memory_bytes: None,
            cpu_percent: None,
        }
    }

    #[test]
    fn unknown_app_names_it_and_lists_known_apps() {
        let all = vec![p("web", 0), p("worker", 1), p("web", 2)];
        assert_eq!(
            instances_of(all.clone(), &AppName::new("web"), NAME_HINT)
                .unwrap()
                .iter()
                .map(|p| p.pm_id)
                .collect::<Vec<_>>(),
            [0, 2]
        );
        let e = instances_of(all, &AppName::new("api"), NAME_HINT).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("`api`") && msg.contains("web, worker"), "{msg}");
        assert_eq!(e.kind(), rollback_core::ErrorKind::NotFound);
        let e = instances_of(Vec::<Pm2Process>::new(), &AppName::new("api"), START_HINT).unwrap_err();
        assert!(e.to_string().contains("known apps: none"), "{e}");
    }

    #[test]
    fn names_that_address_several_apps_or_an_id_are_refused() {
        for name in [
            "all", "*", "web*", "group:*", "web?", "web[12]", "/web/", "0", "12", "",
        ] {
            let e = one_app(&AppName::new(name)).unwrap_err();
            assert_eq!(e.kind(), rollback_core::ErrorKind::InvalidInput, "{name}: {e}");
            assert!(e.to_string().contains("exactly one app"), "{e}");
        }
        for name in ["web", "api-2", "worker_1", "a/b", "/", "web:1"] {
            assert!(one_app(&AppName::new(name)).is_ok(), "{name}");
        }
    }
}
