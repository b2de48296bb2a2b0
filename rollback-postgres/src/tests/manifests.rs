//! Manifests sealed over content that is not the archive's: `verify` and `prepare_restore`
//! are the lines of defence behind the manifest's own checksum.

use super::setup;
use crate::manifest::Manifest;
use rollback_core::{DatabaseSnapshot, ErrorKind};
use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_refuses_truncated_altered_and_unreadable_archives() {
    let Some(env) = setup("rollback-postgres verify", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 5000) g",
    )
    .await;
    let snap = env.db.snapshot("v1").await.expect("snapshot");
    env.db.verify(&snap.id).await.expect("fresh snapshot verifies");
    let archive = Path::new(&snap.location).join("dump.pgdump");
    let original = std::fs::read(&archive).expect("read archive");

    std::fs::write(&archive, &original[..original.len() / 2]).unwrap();
    let e = env.db.verify(&snap.id).await.expect_err("truncated archive");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(
        env.db.prepare_restore(&snap.id).await.is_err(),
        "prepare refuses a damaged archive"
    );

    let mut altered = original.clone();
    let i = altered.len() / 3;
    altered[i] ^= 0x01;
    std::fs::write(&archive, &altered).unwrap();
    let e = env.db.verify(&snap.id).await.expect_err("altered archive");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("altered"), "{e}");

    // Garbage whose checksum was (maliciously or by a bad tool) written into the manifest:
    // pg_restore --list is the second line of defence.
    let garbage = b"not a pg_dump archive at all".to_vec();
    std::fs::write(&archive, &garbage).unwrap();
    let mut manifest = Manifest::load(Path::new(&snap.location)).await.expect("manifest");
    let (size, sha) = crate::manifest::hash_file(&archive).unwrap();
    manifest.files[0].size = size;
    manifest.files[0].sha256 = sha;
    manifest.store(Path::new(&snap.location)).await.unwrap();
    let e = env.db.verify(&snap.id).await.expect_err("unreadable archive");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("pg_restore cannot read"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_copy_that_does_not_match_its_manifest_is_refused_while_the_app_serves() {
    let Some(env) = setup("rollback-postgres staged row counts", "app") else {
        return;
    };
    env.sql(
        "app",
        "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 300) g",
    )
    .await;
    let snap = env.db.snapshot("v1").await.expect("snapshot");
    // The manifest claims a count the archive does not hold (a dump taken without its
    // snapshot, by a buggy writer that sealed the manifest as it wrote it): every checksum
    // matches, the data does not. (A hand edit is caught earlier, by verify.)
    let mut manifest = Manifest::load(Path::new(&snap.location)).await.unwrap();
    let t = manifest
        .tables
        .iter_mut()
        .find(|t| t.table == "t")
        .expect("table t");
    t.rows = 301;
    manifest.store(Path::new(&snap.location)).await.unwrap();
    env.db
        .verify(&snap.id)
        .await
        .expect("the manifest is self-consistent");

    let e = env
        .db
        .prepare_restore(&snap.id)
        .await
        .expect_err("mismatched staged copy");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("301"), "the error says what differs: {e}");
    let staging = env
        .client("postgres")
        .await
        .unwrap()
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = 'app__rollback_staging'",
            &[],
        )
        .await
        .unwrap();
    assert!(staging.is_none(), "the mismatched staging database is dropped");
    assert_eq!(env.count("app", "t").await, 300, "the live database is untouched");
}
