//! The env-file store on a real file system in a temp dir.

use async_trait::async_trait;
use rollback_core::{ConfigStore, ConfigVersionId, ErrorKind};
use rollback_envfile::{EnvFile, EnvFileStore, LIVE, PREVIOUS};
use rollback_testkit::conformance::{config_store, ConfigFixture};
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

#[tokio::test]
async fn conformance_with_backups_beside_the_file() {
    let (_dir, live) = setup();
    config_store(&EnvFileStore::new(&live), &Fixture { live: live.clone() }).await;
}

#[tokio::test]
async fn conformance_with_a_history_dir() {
    let (dir, live) = setup();
    let store = EnvFileStore::new(&live).history_dir(dir.path().join("history/env"));
    config_store(&store, &Fixture { live: live.clone() }).await;
    assert!(fs::read_dir(dir.path().join("history/env")).unwrap().count() >= 3);
}

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
