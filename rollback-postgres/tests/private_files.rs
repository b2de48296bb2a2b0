//! Data at rest (issue 19): snapshot directories `0700` and every file in them `0600`,
//! whatever the process umask; what an earlier version left readable is reported by
//! `access_warnings`, never chmod-ed. Exactly one test in this binary: the umask is
//! process-wide.

use rollback_core::{DatabaseSnapshot, SnapshotId};
use rollback_postgres::{DumpFormat, Options, PgConfig, PgTools, PostgresSnapshot, METHOD_DUMP};
use rollback_testkit::TempPostgres;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Everything under `root` (itself included) with its mode.
fn tree(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = vec![(root.to_path_buf(), root.is_dir(), mode(root))];
    if root.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        children.sort();
        for c in children {
            out.extend(tree(&c));
        }
    }
    out
}

fn assert_private(root: &Path, umask: u32) {
    for (path, dir, m) in tree(root) {
        let want = if dir { 0o700 } else { 0o600 };
        assert_eq!(
            m,
            want,
            "{} is {m:04o} under umask {umask:03o}, want {want:04o}",
            path.display()
        );
    }
}

fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask has no memory effects; this binary has one test, so no other test
    // thread depends on the mask.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_private_whatever_the_umask_and_older_ones_are_reported_not_changed() {
    let Some(pg) =
        TempPostgres::start("rollback-postgres private files").expect("start a temporary PostgreSQL")
    else {
        return;
    };
    pg.create_database("app").unwrap();
    let pw = pg.password().expose().to_owned();
    pg.psql(
        "app",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 500) g; \
         CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int, p_id int); \
         INSERT INTO p VALUES (1); INSERT INTO c VALUES (1, 1), (2, 5); \
         ALTER TABLE c ADD CONSTRAINT c_p_fk FOREIGN KEY (p_id) REFERENCES p(id) NOT VALID;",
    )
    .unwrap();
    // An owner without CREATEDB: preserve_current falls back to a pg_dump archive.
    pg.psql(
        "postgres",
        &format!("CREATE ROLE app_owner LOGIN NOCREATEDB PASSWORD '{pw}'"),
    )
    .unwrap();
    pg.psql("postgres", "CREATE DATABASE shop OWNER app_owner")
        .unwrap();
    let tools = || PgTools::in_dir(pg.bindir());
    let config =
        |user: &str, db: &str| PgConfig::new(pg.host(), pg.port(), user, db).password(pg.password().clone());
    let base = tempfile::tempdir().unwrap();
    let original = set_umask(0o022);

    for umask in [0o022, 0o000] {
        set_umask(umask);
        // A root that does not exist yet: made by the adapter.
        let root = base.path().join(format!("umask-{umask:03o}")).join("snapshots");
        let mut snaps = Vec::new();
        for format in [DumpFormat::Custom, DumpFormat::Directory] {
            let db = PostgresSnapshot::new(config(pg.superuser(), "app"), &root, tools())
                .with_options(Options::new().format(format));
            let snap = db.snapshot(&format!("{format:?}")).await.expect("snapshot");
            db.verify(&snap.id).await.unwrap();
            snaps.push(snap);
        }
        let dir_snapshot = Path::new(&snaps[1].location);
        assert!(dir_snapshot.join("dump").is_dir(), "directory format");
        assert!(dir_snapshot.join("dump").join("toc.dat").is_file());

        // A sidecar: the baseline measured on the staged copy of an "old" manifest (as an
        // earlier version wrote it: no baseline, no checksum of its own; rewritten in place,
        // so it keeps the adapter's 0600).
        let db = PostgresSnapshot::new(config(pg.superuser(), "app"), &root, tools());
        let manifest_path = Path::new(&snaps[0].location).join("manifest.json");
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        let object = manifest.as_object_mut().unwrap();
        object.remove("baseline");
        object.remove("manifest_sha256");
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
        let prepared = db.prepare_restore(&snaps[0].id).await.expect("prepare");
        assert!(
            Path::new(&snaps[0].location)
                .join("baseline.measured.json")
                .is_file(),
            "{:?}",
            prepared.notes
        );
        // The state file (and its temporary file) through the switch steps.
        let preserved = db.preserve_current(&format!("pre-{umask:03o}")).await.unwrap();
        db.restore(&prepared).await.unwrap();
        db.open().await.unwrap();
        assert!(root.join(".rollback-postgres-state.json").is_file());

        // The pg_dump fallback of preserve_current.
        let shop = PostgresSnapshot::new(config("app_owner", "shop"), &root, tools());
        let kept = shop.preserve_current("fallback").await.expect("preserve by dump");
        assert_eq!(kept.method, METHOD_DUMP);
        assert!(Path::new(&kept.location).join("dump.pgdump").is_file());

        assert_private(&root, umask);
        assert_eq!(
            db.access_warnings().await.unwrap(),
            Vec::<String>::new(),
            "nothing to report under umask {umask:03o}"
        );
        drop(preserved);
    }

    // A snapshot left by an earlier version (0755 directory, 0644 files): reported with
    // the path and the fix, and left as it is, even by the next snapshot.
    set_umask(0o022);
    let root = base.path().join("umask-022").join("snapshots");
    let db = PostgresSnapshot::new(config(pg.superuser(), "app"), &root, tools());
    let old = db.list().await.unwrap().pop().expect("a snapshot");
    let old_dir = PathBuf::from(&old.location);
    std::fs::set_permissions(&old_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let old_archive = old_dir.join("dump.pgdump");
    let old_manifest = old_dir.join("manifest.json");
    for f in [&old_archive, &old_manifest] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let warnings = db.access_warnings().await.unwrap();
    for (path, fix) in [
        (&old_dir, "chmod 700"),
        (&old_archive, "chmod 600"),
        (&old_manifest, "chmod 600"),
    ] {
        let shown = path.display().to_string();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains(&shown) && w.contains(fix) && w.contains("every local user")),
            "{shown} is reported with `{fix}`: {warnings:?}"
        );
    }
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    db.snapshot("after the old one").await.unwrap();
    db.verify(&SnapshotId::new(old.id.as_str())).await.unwrap();
    assert_eq!(mode(&old_dir), 0o755, "never chmod-ed");
    assert_eq!(mode(&old_archive), 0o644);
    assert_eq!(mode(&old_manifest), 0o644);
    assert_eq!(db.access_warnings().await.unwrap(), warnings, "still reported");
    set_umask(original);
}
