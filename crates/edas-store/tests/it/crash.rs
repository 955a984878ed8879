//! A process killed with SIGKILL in the middle of a write loop leaves a store that opens and
//! holds every change order it reported as committed.
//!
//! The parent test re-executes this very test binary (`current_exe`, which works under both
//! `cargo test` and `cargo nextest`) running only [`crash_child_write_loop`], with
//! `EDAS_STORE_CRASH_CHILD_DIR` set. The child writes until it is killed and prints a line
//! after each commit; the parent kills it with SIGKILL and checks every printed id.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use edas_store::Store;

use crate::harness::{audit, create, state, step, t};

const CHILD_ENV: &str = "EDAS_STORE_CRASH_CHILD_DIR";
/// Commits seen before the parent kills the child (it keeps writing meanwhile).
const COMMITS_BEFORE_KILL: usize = 60;

/// The child half of the crash test: a no-op unless `EDAS_STORE_CRASH_CHILD_DIR` is set.
#[tokio::test]
async fn crash_child_write_loop() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = Store::open_data_dir(Path::new(&dir))
        .await
        .expect("child opens the store");
    for i in 0u64.. {
        let (app, co) = (format!("app-{i}"), format!("co-{i}"));
        create(&store, &app, &co, t(0)).await;
        println!("committed {co} 1");
        let version = store
            .transition(
                &co,
                1,
                step(1, state(&format!("step {i}"))),
                audit("Step", &app),
                t(1),
            )
            .await
            .expect("transition");
        println!("committed {co} {version}");
    }
}

#[test]
fn sigkill_during_a_write_loop_keeps_every_committed_change_order() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash::crash_child_write_loop",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child test process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // id -> the highest version the child reported as committed.
    let mut committed: BTreeMap<String, i64> = BTreeMap::new();
    let mut record = |line: &str| {
        if let Some(rest) = line.strip_prefix("committed ") {
            let (id, version) = rest.split_once(' ').expect("id and version");
            let version: i64 = version.parse().expect("version");
            let entry = committed.entry(id.to_owned()).or_default();
            *entry = (*entry).max(version);
        }
    };
    let mut seen = 0;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("committed ") {
            seen += 1;
        }
        record(&line);
        if seen >= COMMITS_BEFORE_KILL {
            break;
        }
    }
    assert!(
        seen >= COMMITS_BEFORE_KILL,
        "the child stopped after {seen} commits"
    );
    child.kill().expect("SIGKILL the child");
    // Lines printed before the kill landed are commits too.
    for line in lines {
        record(&line.unwrap());
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "the child must die by SIGKILL: {status:?}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open_data_dir(&data)
            .await
            .expect("the store opens after SIGKILL");
        for (id, version) in &committed {
            let co = store
                .get_change_order(id)
                .await
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert!(
                co.version >= *version,
                "{id} at version {} < committed {version}",
                co.version
            );
            let app = store.get_application(&co.app_id).await.unwrap();
            assert_eq!(app.current_revision, 1);
        }
        store.close().await;
    });
    assert!(committed.len() >= COMMITS_BEFORE_KILL / 2);
}
