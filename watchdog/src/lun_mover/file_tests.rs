//! The file mover on real files: a full move, and recovery from every
//! phase a crash can leave behind.

use std::fs;

use super::*;
use crate::lun_mover::copy::sha256_file;

struct Pools {
    dir: tempfile::TempDir,
    mover: FileMover,
}

impl Pools {
    /// Pools `a` and `b`, a links directory, and `img` in `a` linked.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a", "b", "links", "state"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        fs::write(dir.path().join("a/img"), data).unwrap();
        symlink(dir.path().join("a/img"), dir.path().join("links/img")).unwrap();
        let mover = FileMover::new(FileMoverConfig {
            pools: [("a", "a"), ("b", "b")]
                .into_iter()
                .map(|(n, d)| (n.to_owned(), dir.path().join(d)))
                .collect(),
            links: dir.path().join("links"),
            max_bytes_per_second: None,
        });
        Self { dir, mover }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn order(&self) -> MoveOrder {
        MoveOrder {
            lun: "img".into(),
            from: "a".into(),
            to: "b".into(),
            bytes: 3_000_000,
        }
    }
    fn journal(&self, phase: Phase, facts: &[(&str, &str)]) -> Journal {
        let mut j = Journal::create(&self.path("state"), "file", &self.order()).unwrap();
        j.advance(phase, facts).unwrap();
        j
    }
    fn link_target(&self) -> PathBuf {
        fs::read_link(self.path("links/img")).unwrap()
    }
}

#[test]
fn a_move_copies_verifies_switches_and_releases() {
    let p = Pools::new();
    let sum = sha256_file(&p.path("a/img")).unwrap();
    let mut j = Journal::create(&p.path("state"), "file", &p.order()).unwrap();
    p.mover.run(&p.order(), &mut j, &Cancel::default()).unwrap();
    assert_eq!(j.record().phase, Phase::Switched);
    assert_eq!(p.link_target(), p.path("b/img"));
    assert_eq!(sha256_file(&p.path("links/img")).unwrap(), sum);
    assert!(!p.path("a/img").exists());
    assert!(!p.path("b/.img.hyperwatch-partial").exists());
}

#[test]
fn an_interrupted_copy_rolls_back_to_the_intact_source() {
    let p = Pools::new();
    let sum = sha256_file(&p.path("a/img")).unwrap();
    let mut j = p.journal(Phase::Copying, &[]);
    fs::write(p.path("b/.img.hyperwatch-partial"), b"half").unwrap();
    assert_eq!(p.mover.recover(&mut j).unwrap(), Recovered::RolledBack);
    assert!(!p.path("b/.img.hyperwatch-partial").exists());
    assert_eq!(p.link_target(), p.path("a/img"));
    assert_eq!(sha256_file(&p.path("links/img")).unwrap(), sum);
}

#[test]
fn a_verified_copy_is_finished_forward() {
    let p = Pools::new();
    let sum = sha256_file(&p.path("a/img")).unwrap();
    fs::copy(p.path("a/img"), p.path("b/img")).unwrap();
    let mut j = p.journal(Phase::Copied, &[("sha256", &sum)]);
    assert_eq!(p.mover.recover(&mut j).unwrap(), Recovered::Finished);
    assert_eq!(p.link_target(), p.path("b/img"));
    assert!(!p.path("a/img").exists());
}

#[test]
fn a_copy_that_no_longer_matches_is_discarded() {
    let p = Pools::new();
    let sum = sha256_file(&p.path("a/img")).unwrap();
    fs::write(p.path("b/img"), b"torn").unwrap();
    let mut j = p.journal(Phase::Copied, &[("sha256", &sum)]);
    assert_eq!(p.mover.recover(&mut j).unwrap(), Recovered::RolledBack);
    assert!(!p.path("b/img").exists());
    assert_eq!(p.link_target(), p.path("a/img"));
    assert_eq!(sha256_file(&p.path("a/img")).unwrap(), sum);
}

#[test]
fn after_the_switch_only_the_source_is_left_to_release() {
    let p = Pools::new();
    fs::copy(p.path("a/img"), p.path("b/img")).unwrap();
    symlink(p.path("b/img"), p.path("links/.img.hyperwatch-link")).unwrap();
    fs::rename(p.path("links/.img.hyperwatch-link"), p.path("links/img")).unwrap();
    let mut j = p.journal(Phase::Copied, &[("sha256", "irrelevant")]);
    assert_eq!(p.mover.recover(&mut j).unwrap(), Recovered::Finished);
    assert!(!p.path("a/img").exists());
    assert!(p.path("b/img").exists());
}

#[test]
fn a_half_made_link_is_cleaned_and_the_source_kept() {
    let p = Pools::new();
    symlink(p.path("b/img"), p.path("links/.img.hyperwatch-link")).unwrap();
    let mut j = p.journal(Phase::Copying, &[]);
    assert_eq!(p.mover.recover(&mut j).unwrap(), Recovered::RolledBack);
    assert!(!p.path("links/.img.hyperwatch-link").exists());
    assert!(p.path("a/img").exists());
}

#[test]
fn refuses_a_lun_that_is_not_where_the_plan_says() {
    let p = Pools::new();
    let mut order = p.order();
    order.from = "b".into();
    order.to = "a".into();
    let mut j = Journal::create(&p.path("state"), "file", &order).unwrap();
    let err = p.mover.run(&order, &mut j, &Cancel::default()).unwrap_err();
    assert!(err.to_string().contains("not in pool b"), "{err}");
}

#[test]
fn an_existing_file_at_the_destination_is_never_overwritten_or_removed() {
    let p = Pools::new();
    fs::write(p.path("b/img"), b"someone else's").unwrap();
    let mut j = Journal::create(&p.path("state"), "file", &p.order()).unwrap();
    let err = p
        .mover
        .run(&p.order(), &mut j, &Cancel::default())
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(p.mover.recover(&mut j).unwrap(), Recovered::RolledBack);
    assert_eq!(fs::read(p.path("b/img")).unwrap(), b"someone else's");
}

#[test]
fn lun_names_that_escape_the_pool_are_refused() {
    let p = Pools::new();
    let mut order = p.order();
    order.lun = "../etc".into();
    assert!(p.mover.describe(&order).starts_with("cannot move"));
}
