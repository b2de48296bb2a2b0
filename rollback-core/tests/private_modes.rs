//! The state store's files are readable only by their owner whatever the umask (issue 19).
//! The umask is process-wide: only the first test changes it, and the other sets every mode
//! it relies on explicitly.

#![cfg(unix)]

use chrono::Utc;
use rollback_core::{Checkpoint, CheckpointId, DirStateStore, LockHolder, RollbackId, StateStore};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, u32, bool)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let is_dir = std::fs::symlink_metadata(&p).unwrap().is_dir();
        out.push((p.clone(), mode(&p), is_dir));
        if is_dir {
            walk(&p, out);
        }
    }
}

fn checkpoint(id: &str) -> Checkpoint {
    Checkpoint {
        id: CheckpointId::new(id),
        label: "before v2".into(),
        created_at: Utc::now(),
        snapshot: None,
        snapshot_taken_at: None,
        revision: None,
        config: None,
        good: true,
        warnings: Vec::new(),
        metrics_baseline: None,
    }
}

#[tokio::test]
async fn everything_the_state_store_writes_is_private_under_umask_022_and_000() {
    for umask in [0o022, 0o000] {
        // SAFETY: umask only sets the process's file creation mask.
        unsafe { libc::umask(umask) };
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let store = DirStateStore::open(&root).await.unwrap();
        store.save_checkpoint(&checkpoint("cp-1")).await.unwrap();
        let holder = LockHolder {
            pid: std::process::id(),
            host: "h".into(),
            since: Utc::now(),
            rollback: RollbackId::new("rb-1"),
            token: "t".into(),
            machine: None,
            boot: None,
        };
        assert!(store.try_lock(&holder).await.unwrap().is_none());
        let mut all = vec![(root.clone(), mode(&root), true)];
        walk(&root, &mut all);
        assert!(all.len() >= 6, "{all:?}");
        for (path, mode, is_dir) in &all {
            let want = if *is_dir { 0o700 } else { 0o600 };
            assert_eq!(*mode, want, "umask {umask:03o}: {} is {mode:04o}", path.display());
        }
        assert!(store.access_warnings().await.unwrap().is_empty());

        // A file opened by someone else is reported, with the fix, and left as it is.
        let cp = root.join("checkpoints").join("cp-1.json");
        std::fs::set_permissions(&cp, std::fs::Permissions::from_mode(0o644)).unwrap();
        let warned = store.access_warnings().await.unwrap();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("cp-1.json") && warned[0].contains("chmod 600"),
            "{warned:?}"
        );
        assert_eq!(mode(&cp), 0o644, "nothing is changed");

        // Reports shared with a group: that group reads them, others never.
        let gid = std::fs::metadata(&root).unwrap().gid();
        let store = store.share_reports_with_group(gid).await.unwrap();
        assert_eq!(mode(&root.join("reports")), 0o750);
        assert_eq!(mode(&root), 0o710);
        let warned = store.access_warnings().await.unwrap();
        assert_eq!(warned.len(), 1, "only the checkpoint opened above: {warned:?}");
    }
    // SAFETY: as above; back to the usual mask.
    unsafe { libc::umask(0o022) };
}

#[tokio::test]
async fn a_directory_opened_by_an_earlier_version_is_reported_not_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("state");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = DirStateStore::open(&root).await.unwrap();
    let warned = store.access_warnings().await.unwrap();
    assert!(
        warned
            .iter()
            .any(|w| w.contains("0755") && w.contains("chmod 700")),
        "{warned:?}"
    );
    assert_eq!(mode(&root), 0o755);
}
