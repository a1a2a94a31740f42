//! The console channel writing to a pty the test opens, as it would to an
//! operator's terminal.

use std::{
    io::Read,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use hyperwatch::channels::Status;
use nix::{fcntl, pty::openpty, unistd::ttyname};

use super::support::{Harness, notification};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_appears_on_the_terminal() {
    let pty = openpty(None, None).expect("openpty");
    let slave = ttyname(&pty.slave).expect("ttyname of the pty");
    let h = Harness::start(&format!(
        r#"
        [channels.console]
        type = "console"
        tty = "{}"
        syslog = false
        "#,
        slave.display()
    ));
    h.enqueue(&notification("inc-tty", Status::Problem), &["console"])
        .await;

    // Read the master side without blocking forever.
    let flags = fcntl::fcntl(&pty.master, fcntl::FcntlArg::F_GETFL).unwrap();
    let flags = fcntl::OFlag::from_bits_truncate(flags) | fcntl::OFlag::O_NONBLOCK;
    fcntl::fcntl(&pty.master, fcntl::FcntlArg::F_SETFL(flags)).unwrap();
    let mut master = std::fs::File::from(pty.master);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut screen = String::new();
    while !screen.contains('\n') {
        let mut buf = [0u8; 4096];
        match master.read(&mut buf) {
            Ok(n) => screen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "nothing on the pty within 10 s; got {screen:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("reading the pty master (fd {}): {e}", master.as_raw_fd()),
        }
    }
    assert!(
        screen.contains("hyperwatch [PROBLEM] critical host hv-12: heartbeats stopped 45 s ago"),
        "{screen:?}"
    );
    assert!(screen.contains("[inc-tty:L1:problem]"), "{screen:?}");
    h.stop().await;
}
