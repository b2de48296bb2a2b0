//! Shared helpers: real repositories in temp dirs, made with git2.
#![allow(dead_code)]

use async_trait::async_trait;
use git2::{Oid, Repository, RepositoryInitOptions, Signature};
use rollback_core::{ErrorKind, RevisionId};
use rollback_testkit::conformance::CodeFixture;
use std::path::{Path, PathBuf};

/// A fresh repository on branch `main` with one commit (`app.txt` = "v0").
pub fn init_repo(path: &Path) -> Oid {
    let mut opts = RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(path, &opts).expect("init");
    let mut cfg = repo.config().expect("config");
    cfg.set_str("user.name", "Test Author").expect("name");
    cfg.set_str("user.email", "test@example.com").expect("email");
    commit_files(path, &[("app.txt", "v0\n"), ("ok", "")], "initial")
}

/// Writes `files` into the working tree, stages them and commits on HEAD.
pub fn commit_files(path: &Path, files: &[(&str, &str)], subject: &str) -> Oid {
    let repo = Repository::open(path).expect("open");
    for (name, content) in files {
        let p = path.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, content).expect("write");
    }
    let mut index = repo.index().expect("index");
    for (name, _) in files {
        index.add_path(Path::new(name)).expect("add");
    }
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("find tree");
    let sig = Signature::now("Test Author", "test@example.com").expect("sig");
    let parents = match repo.head().ok().and_then(|h| h.peel_to_commit().ok()) {
        Some(c) => vec![c],
        None => vec![],
    };
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, subject, &tree, &refs)
        .expect("commit")
}

/// Removes `name` from the working tree and index and commits.
pub fn commit_removal(path: &Path, name: &str, subject: &str) -> Oid {
    let repo = Repository::open(path).expect("open");
    std::fs::remove_file(path.join(name)).expect("rm");
    let mut index = repo.index().expect("index");
    index.remove_path(Path::new(name)).expect("remove");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("find tree");
    let sig = Signature::now("Test Author", "test@example.com").expect("sig");
    let head = repo.head().expect("head").peel_to_commit().expect("commit");
    repo.commit(Some("HEAD"), &sig, &sig, subject, &tree, &[&head])
        .expect("commit")
}

/// The conformance fixture: commits on the repository's HEAD. With `live_tree` (in place)
/// it can also make the live working tree dirty.
pub struct Fixture {
    pub repo: PathBuf,
    pub live_tree: bool,
}

#[async_trait]
impl CodeFixture for Fixture {
    async fn commit(&self, subject: &str) -> RevisionId {
        let log = std::fs::read_to_string(self.repo.join("log.txt")).unwrap_or_default();
        let oid = commit_files(&self.repo, &[("log.txt", &format!("{log}{subject}\n"))], subject);
        RevisionId::new(oid.to_string())
    }

    /// In place: an edited tracked file (`app.txt`) and an untracked one; `false` puts
    /// `app.txt` back as HEAD has it and removes the untracked file.
    async fn set_dirty(&self, dirty: bool) -> bool {
        if !self.live_tree {
            return false;
        }
        if dirty {
            std::fs::write(self.repo.join("app.txt"), "an uncommitted edit\n").expect("edit");
            std::fs::write(self.repo.join("scratch.txt"), "untracked\n").expect("untracked");
        } else {
            std::fs::write(self.repo.join("app.txt"), head_content(&self.repo, "app.txt")).expect("restore");
            std::fs::remove_file(self.repo.join("scratch.txt")).expect("rm untracked");
        }
        true
    }
}

/// The content of `name` in HEAD's tree.
pub fn head_content(repo: &Path, name: &str) -> Vec<u8> {
    let git = Repository::open(repo).expect("open");
    let tree = git.head().expect("head").peel_to_tree().expect("tree");
    let entry = tree.get_path(Path::new(name)).expect("tracked");
    let blob = git.find_blob(entry.id()).expect("blob");
    blob.content().to_vec()
}

/// Asserts an error of `kind` whose message contains every one of `needles`.
pub fn assert_err<T: std::fmt::Debug>(
    r: Result<T, rollback_core::AdapterError>,
    kind: ErrorKind,
    needles: &[&str],
) {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind(), kind, "wrong kind: {e}");
    for n in needles {
        assert!(e.to_string().contains(n), "`{n}` missing from: {e}");
    }
}

pub fn rev(oid: Oid) -> RevisionId {
    RevisionId::new(oid.to_string())
}
