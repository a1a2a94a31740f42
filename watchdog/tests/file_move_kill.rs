//! The file mover as a real process, killed: a child process (this test
//! binary run with `mover-child`) moves a large image with the executor and
//! is SIGKILLed mid-copy; the source must be whole and what consumers open,
//! and a restarted executor must clean up and then complete the move. Also,
//! as root, a destination that fills up during the copy (a small tmpfs).
//!
//! Its own `main` instead of the test harness: the harness cannot run one
//! binary as both the test and the process it kills.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    thread,
    time::{Duration, Instant},
};

use hyperwatch::{
    lun_mover::{
        Executor, ExecutorConfig, Journal, MoveOutcome, Phase, Recovered,
        copy::sha256_file,
        file::{FileMover, FileMoverConfig},
    },
    rebalancer::{Move, Plan, Reason},
};

const CHILD: &str = "mover-child";
/// The image: large enough that a throttled copy takes over a second.
const IMAGE_BYTES: usize = 48 << 20;
/// The child copies at 32 MiB/s: 1.5 s for the image.
const CHILD_RATE: u64 = 32 << 20;
/// Bound on every wait in this test.
const WAIT: Duration = Duration::from_secs(30);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        let root = PathBuf::from(&args[2]);
        let rate = args[3].parse().expect("rate");
        let out = run_move(&root, Some(rate));
        println!("{out:?}");
        return;
    }
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let tests: [(&str, fn()); 2] = [
        (
            "killed_mid_copy_the_source_stays_whole_and_restart_completes",
            killed_mid_copy,
        ),
        (
            "a_destination_that_fills_during_the_copy_rolls_back",
            destination_fills_up,
        ),
    ];
    for (name, test) in tests {
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
}

/// Pools `a` and `b`, `links` and `state` under `root`, the image in `a`.
fn setup(root: &Path, bytes: usize) -> String {
    for d in ["a", "b", "links", "state"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    // Varied content, so a torn or misplaced chunk changes the checksum.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..bytes / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    fs::write(root.join("a/img"), data).unwrap();
    symlink(root.join("a/img"), root.join("links/img")).unwrap();
    sha256_file(&root.join("a/img")).unwrap()
}

fn executor(root: &Path, rate: Option<u64>) -> Executor {
    let mover = FileMover::new(FileMoverConfig {
        pools: [("a", "a"), ("b", "b")]
            .into_iter()
            .map(|(n, d)| (n.to_owned(), root.join(d)))
            .collect(),
        links: root.join("links"),
        max_bytes_per_second: rate,
    });
    let config = ExecutorConfig {
        state_dir: root.join("state"),
        dry_run: false,
        ..ExecutorConfig::default()
    };
    Executor::new(config, Arc::new(mover))
}

/// Moves `img` from `a` to `b` with a fresh executor, settling first.
fn run_move(root: &Path, rate: Option<u64>) -> (Vec<Recovered>, Vec<MoveOutcome>) {
    let plan = Plan {
        moves: vec![Move {
            lun: "img".into(),
            from: "a".into(),
            to: "b".into(),
            bytes: fs::metadata(root.join("a/img")).unwrap().len(),
            iops: 0.0,
            after: vec![],
            reason: Reason::Draining,
            to_used_fraction: 0.0,
            to_iops: 0.0,
        }],
        ..Plan::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ex = executor(root, rate);
        let settled = ex.recover().await.unwrap();
        let recovered = settled.into_iter().map(|s| s.result.unwrap()).collect();
        (recovered, ex.execute(&plan).await.unwrap())
    })
}

/// Waits until `path` holds at least `bytes`.
fn wait_for_size(path: &Path, bytes: u64) {
    let start = Instant::now();
    while fs::metadata(path).map_or(0, |m| m.len()) < bytes {
        assert!(
            start.elapsed() < WAIT,
            "{} never reached {bytes} bytes",
            path.display()
        );
        thread::sleep(Duration::from_millis(2));
    }
}

fn killed_mid_copy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sum = setup(root, IMAGE_BYTES);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([CHILD, root.to_str().unwrap(), &CHILD_RATE.to_string()])
        .spawn()
        .unwrap();
    let partial = root.join("b/.img.hyperwatch-partial");
    wait_for_size(&partial, 8 << 20);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let copied = fs::metadata(&partial).unwrap().len();
    assert!(copied < IMAGE_BYTES as u64, "killed after the copy ended");
    assert_eq!(
        fs::read_link(root.join("links/img")).unwrap(),
        root.join("a/img")
    );
    assert_eq!(
        sha256_file(&root.join("links/img")).unwrap(),
        sum,
        "source damaged"
    );
    let journals = Journal::pending(&root.join("state")).unwrap();
    assert_eq!(journals.len(), 1);
    assert_eq!(journals[0].record().phase, Phase::Copying);

    // Restart: the interrupted move is rolled back, then the move runs.
    let (recovered, outcome) = run_move(root, None);
    assert_eq!(recovered, [Recovered::RolledBack]);
    assert_eq!(outcome, [MoveOutcome::Done]);
    assert!(!partial.exists());
    assert_eq!(
        fs::read_link(root.join("links/img")).unwrap(),
        root.join("b/img")
    );
    assert_eq!(sha256_file(&root.join("links/img")).unwrap(), sum);
    assert!(!root.join("a/img").exists());
    assert!(Journal::pending(&root.join("state")).unwrap().is_empty());
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount(&self.0);
    }
}

fn destination_fills_up() {
    if !hyperwatch_tests::root::available(
        "a_destination_that_fills_during_the_copy_rolls_back",
        "mounting a small tmpfs",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let sum = setup(root, 8 << 20);
    nix::mount::mount(
        Some("tmpfs"),
        &root.join("b"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=12m"),
    )
    .expect("mounting a tmpfs");
    let _mount = Mount(root.join("b"));

    // The copy starts with room (12 MiB free, 8 needed); another writer
    // then takes 6 MiB of it, so the copy runs out of space part way.
    let copier = {
        let root = root.to_owned();
        thread::spawn(move || run_move(&root, Some(16 << 20)))
    };
    wait_for_size(&root.join("b/.img.hyperwatch-partial"), 1);
    fs::write(root.join("b/other-tenant"), vec![7u8; 6 << 20]).unwrap();
    let (_, outcome) = copier.join().unwrap();

    assert!(
        matches!(&outcome[0], MoveOutcome::Failed { error, rolled_back: true } if error.contains("No space left")),
        "{outcome:?}"
    );
    assert!(!root.join("b/.img.hyperwatch-partial").exists());
    assert!(!root.join("b/img").exists());
    assert_eq!(
        fs::read_link(root.join("links/img")).unwrap(),
        root.join("a/img")
    );
    assert_eq!(sha256_file(&root.join("links/img")).unwrap(), sum);
    assert!(Journal::pending(&root.join("state")).unwrap().is_empty());
}
