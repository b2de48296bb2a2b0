//! The env-file store on a real file system in a temp dir.

use async_trait::async_trait;
use rollback_core::{ConfigStore, ConfigVersionId, ErrorKind};
use rollback_envfile::{EnvFile, EnvFileStore, LIVE, PREVIOUS};
use rollback_testkit::conformance::ConfigFixture;
use rollback_testkit::conformance_tests;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const CANARY: &str = "envfile-canary-s3cr3t-value";

struct Fixture {
    live: PathBuf,
}

#[async_trait]
impl ConfigFixture for Fixture {
    async fn write_live(&self, pairs: &[(&str, &str)]) {
        let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        fs::write(&self.live, text).unwrap();
    }

    async fn write_malformed_live(&self) {
        fs::write(&self.live, "A=1\nthis line has no equals sign\nC=3\n").unwrap();
    }
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join(".env.production");
    (dir, live)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

conformance_tests!(config_store as backups_beside_the_file, |check| {
    let (_dir, live) = setup();
    check(&EnvFileStore::new(&live), &Fixture { live: live.clone() }).await;
});

conformance_tests!(config_store as backups_in_a_history_dir, |check| {
    let (dir, live) = setup();
    let store = EnvFileStore::new(&live).history_dir(dir.path().join("history/env"));
    check(&store, &Fixture { live: live.clone() }).await;
});

#[tokio::test]
async fn mode_0600_survives_backup_and_restore() {
    let (_dir, live) = setup();
    fs::write(&live, format!("DB_PASSWORD={CANARY}\n")).unwrap();
    fs::set_permissions(&live, fs::Permissions::from_mode(0o600)).unwrap();
    let store = EnvFileStore::new(&live);
    let v = store.backup("good").await.unwrap();
    assert_eq!(mode(Path::new(&v.location)), 0o600, "the backup keeps the mode");
    assert!(
        v.id.as_str().starts_with(".env.production.backup."),
        "the runbook's naming: {}",
        v.id
    );

    fs::write(&live, "DB_PASSWORD=new\n").unwrap();
    fs::set_permissions(&live, fs::Permissions::from_mode(0o644)).unwrap();
    store.restore(&v.id).await.unwrap();
    assert_eq!(
        fs::read_to_string(&live).unwrap(),
        format!("DB_PASSWORD={CANARY}\n")
    );
    assert_eq!(mode(&live), 0o600, "the restored file has the version's mode");
}

#[tokio::test]
async fn restore_keeps_the_replaced_file_and_is_idempotent() {
    let (_dir, live) = setup();
    fs::write(&live, "A=1\n").unwrap();
    let store = EnvFileStore::new(&live);
    let v1 = store.backup("v1").await.unwrap();
    fs::write(&live, "A=2\n").unwrap();
    store.restore(&v1.id).await.unwrap();
    let versions = store.list().await.unwrap();
    assert_eq!(versions.len(), 2, "the replaced file was kept");
    assert!(
        versions[0].label.contains("replaced by a restore"),
        "{:?}",
        versions[0]
    );
    assert_eq!(fs::read_to_string(&versions[0].location).unwrap(), "A=2\n");
    store.restore(&v1.id).await.unwrap();
    assert_eq!(
        store.list().await.unwrap().len(),
        2,
        "a second restore changes nothing"
    );
}

#[tokio::test]
async fn previous_is_the_newest_version_that_differs_from_live() {
    let (_dir, live) = setup();
    let store = EnvFileStore::new(&live);
    fs::write(&live, "V=1\n").unwrap();
    store.backup("v1").await.unwrap();
    fs::write(&live, "V=2\n").unwrap();
    store.backup("v2 (same as live)").await.unwrap();
    store.restore(&PREVIOUS.into()).await.unwrap();
    assert_eq!(fs::read_to_string(&live).unwrap(), "V=1\n");

    let (_dir2, fresh) = setup();
    fs::write(&fresh, "V=1\n").unwrap();
    let err = EnvFileStore::new(&fresh)
        .restore(&PREVIOUS.into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn a_backup_made_by_hand_with_the_runbook_naming_is_listed() {
    let (dir, live) = setup();
    fs::write(&live, "A=1\n").unwrap();
    fs::write(dir.path().join(".env.production.backup.20240101"), "A=0\n").unwrap();
    let store = EnvFileStore::new(&live);
    store.backup("mine").await.unwrap();
    let ids: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id.to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[1], ".env.production.backup.20240101",
        "older hand-made backup listed last"
    );
    assert!(store.verify(&ConfigVersionId::new(&ids[1])).await.is_ok());
}

#[tokio::test]
async fn malformed_version_names_file_and_line_but_no_value() {
    let (_dir, live) = setup();
    fs::write(&live, format!("A=1\nB=\"{CANARY}\nC=3\n")).unwrap();
    let err = EnvFileStore::new(&live).verify(&LIVE.into()).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        text.contains("line 2") && text.contains(".env.production"),
        "{text}"
    );
    assert!(!text.contains(CANARY), "{text}");
}

#[tokio::test]
async fn diff_lists_keys_and_never_values() {
    let (_dir, live) = setup();
    let store = EnvFileStore::new(&live);
    fs::write(&live, format!("KEEP=1\nSECRET={CANARY}\nGONE=x\n")).unwrap();
    let a = store.backup("a").await.unwrap();
    fs::write(&live, format!("KEEP=1\nSECRET={CANARY}-rotated\nNEW=y\n")).unwrap();
    let diff = store.diff(&a.id, &LIVE.into()).await.unwrap();
    assert_eq!(
        (diff.added, diff.removed, diff.changed),
        (
            vec!["NEW".to_string()],
            vec!["GONE".to_string()],
            vec!["SECRET".to_string()]
        )
    );
    let diff = store.diff(&a.id, &LIVE.into()).await.unwrap();
    let shown = format!("{diff:?} {} {store:?}", serde_json::to_string(&diff).unwrap());
    assert!(!shown.contains(CANARY), "{shown}");
    let parsed = EnvFile::parse(&fs::read_to_string(&live).unwrap()).unwrap();
    assert!(
        !format!("{parsed:?}").contains(CANARY),
        "Debug of a parsed file hides values"
    );
}

#[tokio::test]
async fn a_version_without_a_required_key_is_refused_before_anything_changes() {
    let (_dir, live) = setup();
    fs::write(&live, "PORT=3000\n").unwrap();
    let store = EnvFileStore::new(&live).require_keys(["DATABASE_URL", "PORT"]);
    let v = store.backup("lacks DATABASE_URL").await.unwrap();
    fs::write(&live, "DATABASE_URL=x\nPORT=3001\n").unwrap();
    let err = store.verify(&v.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    assert!(store.restore(&v.id).await.is_err());
    assert_eq!(
        fs::read_to_string(&live).unwrap(),
        "DATABASE_URL=x\nPORT=3001\n",
        "live untouched"
    );
    assert_eq!(
        store.list().await.unwrap().len(),
        1,
        "nothing stored by the refused restore"
    );
}

#[tokio::test]
async fn retention_keeps_the_newest_n() {
    let (_dir, live) = setup();
    let store = EnvFileStore::new(&live).keep_last(2);
    let mut ids = Vec::new();
    for n in 0..4 {
        fs::write(&live, format!("N={n}\n")).unwrap();
        ids.push(store.backup(&format!("b{n}")).await.unwrap().id);
    }
    let kept: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.id, v.label))
        .collect();
    assert_eq!(
        kept,
        [
            (ids[3].clone(), "b3".to_string()),
            (ids[2].clone(), "b2".to_string())
        ]
    );
    let err = store.verify(&ids[0]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn bad_input_errors_name_the_problem() {
    let (dir, live) = setup();
    let store = EnvFileStore::new(&live);
    let err = store.backup("x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains(".env.production"), "{err}");
    fs::write(&live, "A=1\n").unwrap();
    for id in ["../../etc/passwd", ".env.production", "nope"] {
        let err = store.verify(&ConfigVersionId::new(id)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{id}: {err}");
    }
    drop(dir);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.-]{0,12}"
    }

    proptest! {
        #[test]
        fn the_parser_never_panics(text in any::<String>()) {
            let _ = EnvFile::parse(&text);
        }

        #[test]
        fn the_parser_never_panics_on_env_like_text(text in "([A-Za-z_ =#'\"\\\\$\n\r\t]|export |[a-z0-9]){0,200}") {
            if let Err(e) = EnvFile::parse(&text) {
                prop_assert!(e.line >= 1 && e.line <= text.matches('\n').count() + 1);
            }
        }

        #[test]
        fn print_then_parse_round_trips(pairs in proptest::collection::vec((key(), any::<String>()), 0..8)) {
            let file = EnvFile {
                entries: pairs.iter().enumerate().map(|(i, (k, v))| rollback_envfile::Entry {
                    key: k.clone(),
                    value: v.as_str().into(),
                    line: i + 1,
                }).collect(),
            };
            let back = EnvFile::parse(&file.print()).unwrap();
            let got: Vec<(String, String)> = back.entries.iter().map(|e| (e.key.clone(), e.value.expose().to_string())).collect();
            prop_assert_eq!(got, pairs);
        }
    }
}

#[tokio::test]
async fn a_hand_made_0644_backup_never_widens_a_0600_file() {
    let (dir, live) = setup();
    fs::write(&live, format!("TOKEN={CANARY}\n")).unwrap();
    fs::set_permissions(&live, fs::Permissions::from_mode(0o600)).unwrap();
    let hand_made = dir.path().join(".env.production.backup.20240101");
    fs::write(&hand_made, "TOKEN=old\n").unwrap();
    fs::set_permissions(&hand_made, fs::Permissions::from_mode(0o644)).unwrap();
    let store = EnvFileStore::new(&live);
    store
        .restore(&ConfigVersionId::new(".env.production.backup.20240101"))
        .await
        .unwrap();
    assert_eq!(fs::read_to_string(&live).unwrap(), "TOKEN=old\n");
    assert_eq!(mode(&live), 0o600, "the stricter mode wins");
}

#[tokio::test]
async fn a_symlinked_env_file_stays_a_link_and_its_target_is_replaced() {
    let (dir, live) = setup();
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    let real = shared.join("env.real");
    fs::write(&real, "V=1\n").unwrap();
    std::os::unix::fs::symlink(&real, &live).unwrap();
    let store = EnvFileStore::new(&live);
    let v1 = store.backup("v1").await.unwrap();
    fs::write(&real, "V=2\n").unwrap();
    store.restore(&v1.id).await.unwrap();
    assert!(
        fs::symlink_metadata(&live).unwrap().file_type().is_symlink(),
        "still a link"
    );
    assert_eq!(
        fs::read_to_string(&real).unwrap(),
        "V=1\n",
        "the link's target holds v1"
    );
}

#[tokio::test]
async fn retention_during_a_restore_keeps_the_version_being_restored() {
    let (_dir, live) = setup();
    let store = EnvFileStore::new(&live).keep_last(2);
    fs::write(&live, "V=1\n").unwrap();
    let v1 = store.backup("v1").await.unwrap();
    fs::write(&live, "V=2\n").unwrap();
    store.backup("v2").await.unwrap();
    fs::write(&live, "V=3\n").unwrap();
    // The restore backs up V=3 first; retention must not take v1 with it.
    store.restore(&v1.id).await.unwrap();
    assert_eq!(fs::read_to_string(&live).unwrap(), "V=1\n");
    assert!(
        store.verify(&v1.id).await.is_ok(),
        "the restored version is still stored"
    );
}

// ---- Issue 12 (6): history order comes from the names, never from file times. ----

/// Sets a file's modification time to `now + offset`.
fn set_mtime(path: &Path, offset: std::time::Duration, later: bool) {
    let now = std::time::SystemTime::now();
    let at = if later { now + offset } else { now - offset };
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

#[tokio::test]
async fn history_is_ordered_by_the_stamps_in_the_names_not_by_mtime() {
    let (dir, live) = setup();
    // Oldest first, one of each stamp format the runbook (or this crate) writes.
    let oldest_first = [
        ".env.production.backup.20240101",
        ".env.production.backup.2024-02-01",
        ".env.production.backup.20240301_120000",
        ".env.production.backup.20240401120000",
        ".env.production.backup.2024-05-01T12:00:00",
        ".env.production.backup.20240601T120000.000Z",
        ".env.production.backup.20240601T120000.000Z-2",
        ".env.production.backup.20240601T120000.000Z-10",
    ];
    let n = oldest_first.len() as u64;
    for (i, name) in oldest_first.iter().enumerate() {
        let path = dir.path().join(name);
        fs::write(&path, format!("V={i}\n")).unwrap();
        // mtimes against the names' order: the oldest name is the newest file, and all
        // are newer than the backup made below.
        set_mtime(&path, std::time::Duration::from_secs(3600 * (n - i as u64)), true);
    }
    fs::write(&live, "V=live\n").unwrap();
    let store = EnvFileStore::new(&live);
    let mine = store.backup("mine").await.unwrap();
    let ids: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id.to_string())
        .collect();
    let mut expected = vec![mine.id.to_string()];
    expected.extend(oldest_first.iter().rev().map(|s| s.to_string()));
    assert_eq!(ids, expected, "newest first, by the stamps in the names");

    // `previous`: the newest version that differs from live is the `-10` one.
    store.restore(&PREVIOUS.into()).await.unwrap();
    assert_eq!(fs::read_to_string(&live).unwrap(), "V=7\n");
}

#[tokio::test]
async fn equal_stamps_are_ordered_by_name_whatever_the_mtimes() {
    let (dir, live) = setup();
    fs::write(&live, "V=live\n").unwrap();
    // Both are midnight UTC on the same day.
    let (a, b) = (
        dir.path().join(".env.production.backup.20240101"),
        dir.path().join(".env.production.backup.2024-01-01"),
    );
    fs::write(&a, "V=a\n").unwrap();
    fs::write(&b, "V=b\n").unwrap();
    let store = EnvFileStore::new(&live);
    let mut orders = Vec::new();
    for a_is_newer in [true, false] {
        set_mtime(&a, std::time::Duration::from_secs(60), a_is_newer);
        set_mtime(&b, std::time::Duration::from_secs(60), !a_is_newer);
        let ids: Vec<String> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.id.to_string())
            .collect();
        orders.push(ids);
    }
    assert_eq!(orders[0], orders[1], "the mtimes change nothing");
    assert_eq!(
        orders[0],
        [
            ".env.production.backup.20240101",
            ".env.production.backup.2024-01-01"
        ]
    );
}

// ---- Issue 12 (4): no backup where git would track it. ----

/// A `git` command in `repo`, isolated from the user's and the system's git config.
fn git(repo: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=rollback-test",
            "-c",
            "user.email=rollback-test@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// True when the `git` CLI runs; otherwise says loudly that the test is skipped, or panics
/// when `ROLLBACK_REQUIRE_INTEGRATION=1`.
fn git_available(test: &str) -> bool {
    let found = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("ROLLBACK_REQUIRE_INTEGRATION").as_deref() != Ok("1"),
            "{test}: the git CLI is required (ROLLBACK_REQUIRE_INTEGRATION=1) but not found"
        );
        eprintln!(
            "SKIPPED {test}: the git CLI is not on PATH (set ROLLBACK_REQUIRE_INTEGRATION=1 to fail instead)"
        );
    }
    found
}

/// Files under `root` (not in `.git`) whose names look like env-file backups or indexes.
fn backup_like_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                if name != ".git" {
                    stack.push(entry.path());
                }
            } else if name.contains(".backup") {
                found.push(entry.path());
            }
        }
    }
    found
}

#[tokio::test]
async fn in_place_layout_backups_and_their_index_stay_out_of_the_git_working_tree() {
    if !git_available("in_place_layout_backups_and_their_index_stay_out_of_the_git_working_tree") {
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let repo = base.path().join("app");
    fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q"]);
    fs::write(repo.join(".gitignore"), ".env.production\n").unwrap();
    fs::write(repo.join("server.js"), "console.log('hi')\n").unwrap();
    let live = repo.join(".env.production");
    fs::write(&live, format!("DB_PASSWORD={CANARY}\n")).unwrap();
    fs::set_permissions(&live, fs::Permissions::from_mode(0o600)).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "release 1"]);
    let status = |repo: &Path| git(repo, &["status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(status(&repo), "", "a clean tree to start from");

    let store = EnvFileStore::new(&live);
    let v1 = store.backup("before deploy").await.unwrap();
    fs::write(&live, "DB_PASSWORD=rotated\n").unwrap();
    store.restore(&v1.id).await.unwrap();
    assert_eq!(
        fs::read_to_string(&live).unwrap(),
        format!("DB_PASSWORD={CANARY}\n")
    );

    // What a `git add -A` deploy would commit: nothing.
    assert_eq!(status(&repo), "", "backup and restore leave the tree clean");
    assert_eq!(backup_like_files(&repo), Vec::<PathBuf>::new());
    let history = store.history_path().unwrap();
    let outside = base.path().canonicalize().unwrap().join(".rollback-env-history");
    assert_eq!(history, outside.join("app"));
    assert_eq!(mode(&outside), 0o700);
    assert_eq!(mode(&history), 0o700);
    assert!(history.join(".env.production.backup-index.json").is_file());
    let versions = store.list().await.unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions
        .iter()
        .all(|v| Path::new(&v.location).starts_with(&history)));
    assert_eq!(mode(Path::new(&versions[0].location)), 0o600);

    // A backup the runbook made by hand beside the file is still listed and restorable.
    let hand_made = ".env.production.backup.20261101_120000";
    fs::write(repo.join(hand_made), "DB_PASSWORD=by-hand\n").unwrap();
    let listed: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id.to_string())
        .collect();
    assert!(listed.contains(&hand_made.to_string()), "{listed:?}");
    store.restore(&ConfigVersionId::new(hand_made)).await.unwrap();
    assert_eq!(fs::read_to_string(&live).unwrap(), "DB_PASSWORD=by-hand\n");
    assert_eq!(
        backup_like_files(&repo),
        [repo.join(hand_made)],
        "the restore's own backup of the replaced file went outside the tree too"
    );
}

#[tokio::test]
async fn a_history_dir_inside_a_working_tree_is_refused_unless_allowed() {
    let base = tempfile::tempdir().unwrap();
    // An ordinary repository (`.git` directory) and a linked worktree (`.git` file).
    let repo = base.path().join("app");
    fs::create_dir_all(repo.join(".git")).unwrap();
    let linked = base.path().join("app-hotfix");
    fs::create_dir_all(&linked).unwrap();
    fs::write(linked.join(".git"), "gitdir: ../app/.git/worktrees/app-hotfix\n").unwrap();
    for tree in [&repo, &linked] {
        let live = tree.join(".env.production");
        fs::write(&live, "A=1\n").unwrap();
        let inside = tree.join("config/env-history");
        let err = EnvFileStore::new(&live)
            .history_dir(&inside)
            .backup("x")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        let text = err.to_string();
        for needle in ["history_dir", "allow_history_in_worktree", "git add -A"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(!inside.exists(), "nothing written");
        let err = EnvFileStore::new(&live)
            .history_dir(&inside)
            .history_path()
            .unwrap_err();
        assert!(matches!(
            err,
            rollback_envfile::EnvFileError::HistoryInWorktree { .. }
        ));

        let allowed = EnvFileStore::new(&live)
            .history_dir(&inside)
            .allow_history_in_worktree();
        let v = allowed.backup("x").await.unwrap();
        assert!(Path::new(&v.location).starts_with(&inside));
    }
    // Inside `.git` nothing is ever tracked; outside the tree is fine.
    let live = repo.join(".env.production");
    for ok in [repo.join(".git/rollback-env"), base.path().join("env-history")] {
        let v = EnvFileStore::new(&live)
            .history_dir(&ok)
            .backup("x")
            .await
            .unwrap();
        assert!(Path::new(&v.location).starts_with(&ok));
    }
}

#[tokio::test]
async fn a_symlinked_env_file_in_a_working_tree_is_backed_up_beside_its_target() {
    let base = tempfile::tempdir().unwrap();
    let base = base.path().canonicalize().unwrap();
    let repo = base.join("app");
    fs::create_dir_all(repo.join(".git")).unwrap();
    let shared = base.join("shared");
    fs::create_dir(&shared).unwrap();
    fs::write(shared.join(".env.production"), "V=1\n").unwrap();
    let live = repo.join(".env.production");
    std::os::unix::fs::symlink("../shared/.env.production", &live).unwrap();
    // Made by hand beside the link, as the runbook does from the app directory.
    fs::write(repo.join(".env.production.backup.20240101_120000"), "V=0\n").unwrap();

    let store = EnvFileStore::new(&live);
    assert_eq!(store.history_path().unwrap(), shared);
    let v1 = store.backup("v1").await.unwrap();
    assert!(Path::new(&v1.location).starts_with(&shared), "{}", v1.location);
    let ids: Vec<String> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.id.to_string())
        .collect();
    assert_eq!(
        ids,
        [v1.id.to_string(), ".env.production.backup.20240101_120000".into()]
    );
    store.restore(&PREVIOUS.into()).await.unwrap();
    assert_eq!(
        fs::read_to_string(shared.join(".env.production")).unwrap(),
        "V=0\n"
    );
    assert!(fs::symlink_metadata(&live).unwrap().file_type().is_symlink());
    assert!(
        fs::read_dir(&repo)
            .unwrap()
            .filter_map(Result::ok)
            .all(|e| !e.file_name().to_string_lossy().contains("backup-")),
        "no index in the tree"
    );
}

#[tokio::test]
async fn the_label_index_of_an_earlier_version_is_read_and_migrated() {
    let (dir, live) = setup();
    fs::write(&live, "V=2\n").unwrap();
    let old = ".env.production.backup.20240101T000000.000Z";
    fs::write(dir.path().join(old), "V=1\n").unwrap();
    let legacy = dir.path().join("..env.production.backup-labels.json");
    fs::write(&legacy, format!("{{\"{old}\": \"made by 0.1\"}}")).unwrap();
    let store = EnvFileStore::new(&live);
    let listed = store.list().await.unwrap();
    assert_eq!(listed[0].label, "made by 0.1");
    assert!(legacy.exists(), "listing writes nothing");

    let new = store.backup("new").await.unwrap();
    assert!(!legacy.exists(), "the old index is replaced");
    assert!(dir.path().join(".env.production.backup-index.json").is_file());
    let labels: Vec<(String, String)> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.id.to_string(), v.label))
        .collect();
    assert_eq!(
        labels,
        [
            (new.id.to_string(), "new".to_string()),
            (old.to_string(), "made by 0.1".to_string())
        ]
    );
}

#[tokio::test]
async fn retention_never_removes_hand_made_backups_outside_the_history_dir() {
    let (dir, live) = setup();
    let hand_made = dir.path().join(".env.production.backup.20240101_120000");
    fs::write(&hand_made, "V=0\n").unwrap();
    let store = EnvFileStore::new(&live)
        .history_dir(dir.path().join("history"))
        .keep_last(1);
    for n in 1..=3 {
        fs::write(&live, format!("V={n}\n")).unwrap();
        store.backup("b").await.unwrap();
    }
    assert!(hand_made.exists());
    assert_eq!(
        store.list().await.unwrap().len(),
        2,
        "the newest one + the hand-made one"
    );
}
