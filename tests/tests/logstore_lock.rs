//! Only one process may have a store directory open: a second `open` fails
//! with `Error::Locked` while a writer lives, and succeeds once the kernel
//! has dropped the dead writer's lock (no stale lock file to clean up).

use std::path::Path;
use std::time::Duration;

use lockd_logstore::{Error, LogStore, Options};
use lockd_tests::crash_model::{self, History};
use lockd_tests::harness::{Child, Stop};

const CHILD: &str = env!("CARGO_BIN_EXE_logstore-crash-child");

#[test]
fn second_process_cannot_open_a_locked_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Child::spawn(Path::new(CHILD), dir.path(), "plain", "auto").expect("spawn child");
    assert!(
        child.wait_for(Stop::Acks(1), Duration::from_secs(30)),
        "child never acknowledged a batch"
    );

    match LogStore::open(dir.path(), Options::default()) {
        Err(Error::Locked(path)) => assert_eq!(path, dir.path()),
        Err(e) => panic!("expected Error::Locked while the child runs, got {e}"),
        Ok(_) => panic!("opened a store another process is writing"),
    }

    let run = child.kill().expect("kill and reap child");
    assert!(run.killed(), "child exited by itself: {}", run.stderr);
    let store = LogStore::open(dir.path(), Options::default()).expect("open after the writer died");
    let found: Vec<crash_model::Found> = store
        .scan(b"", None, usize::MAX)
        .expect("scan")
        .into_iter()
        .map(|e| crash_model::Found {
            key: e.key.to_vec(),
            seq: e.seq,
            value: e.value.to_bytes().expect("value").to_vec(),
        })
        .collect();
    crash_model::check(&mut History::new(), &run.acks(), &found, store.stats().last_seq)
        .expect("what the killed writer acknowledged is there");
    store.close().expect("close");
}
