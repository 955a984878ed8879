//! Watches: raw events (selectors, bookmarks, 410) and kube-runtime's watcher/reflector through a
//! dropped watch and a relist after 410 Gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use edas_fake_kube::Config;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

use crate::{WAIT, client, eventually, start};

fn config_map(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}})).unwrap()
}

async fn next_event(
    stream: &mut (impl futures_util::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event in time")
        .expect("the stream is open")
        .expect("a decodable event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_events_with_selectors_bookmarks_and_gone() {
    let cluster = start(Config {
        bookmark_interval: Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    let first = api
        .create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    let from = first.metadata.resource_version.clone().unwrap();

    let params = WatchParams::default().labels("app=web").timeout(10);
    let mut stream = api.watch(&params, &from).await.unwrap().boxed();
    api.create(&PostParams::default(), &config_map("b", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("other", "api"))
        .await
        .unwrap();
    // Relabelling `b` out of the selection is a DELETED for this watch.
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "api"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        match next_event(&mut stream).await {
            WatchEvent::Added(cm) => seen.push(format!("ADDED {}", cm.metadata.name.unwrap())),
            WatchEvent::Deleted(cm) => seen.push(format!("DELETED {}", cm.metadata.name.unwrap())),
            WatchEvent::Modified(cm) => {
                seen.push(format!("MODIFIED {}", cm.metadata.name.unwrap()))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(status) => panic!("unexpected error event {status:?}"),
        }
    }
    assert_eq!(seen, ["ADDED b", "DELETED b"]);

    let bookmarks = WatchParams::default().timeout(10); // kube asks for bookmarks by default
    let mut stream = api
        .watch(&bookmarks, &cluster.resource_version().to_string())
        .await
        .unwrap()
        .boxed();
    let bookmark = loop {
        if let WatchEvent::Bookmark(bookmark) = next_event(&mut stream).await {
            break bookmark;
        }
    };
    assert_eq!(
        bookmark.metadata.resource_version,
        cluster.resource_version().to_string()
    );

    // timeoutSeconds ends the stream.
    let started = tokio::time::Instant::now();
    let mut stream = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    while tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("the watch ends in time")
        .is_some()
    {}
    assert!(started.elapsed() >= Duration::from_millis(900));

    cluster.compact();
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &from)
        .await
        .unwrap()
        .boxed();
    match next_event(&mut stream).await {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected 410 Gone, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_survives_a_dropped_watch_and_relists_after_gone() {
    let cluster = start(Config::default()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    let (reader, writer) = reflector::store::<ConfigMap>();
    let relists = Arc::new(AtomicUsize::new(0));
    let gone = Arc::new(AtomicUsize::new(0));
    let (relists_seen, gone_seen) = (relists.clone(), gone.clone());
    let stream = watcher(api.clone(), watcher::Config::default().labels("app=web"))
        .default_backoff()
        .reflect(writer)
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::Init) => {
                    relists_seen.fetch_add(1, Ordering::SeqCst);
                }
                Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                    gone_seen.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
            futures_util::future::ready(())
        });
    let task = tokio::spawn(stream);
    let names = |reader: &reflector::Store<ConfigMap>| {
        let mut names: Vec<String> = reader
            .state()
            .iter()
            .map(|cm| cm.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    };

    api.create(&PostParams::default(), &config_map("a", "web"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &config_map("ignored", "api"))
        .await
        .unwrap();
    eventually("a in the cache", || async {
        (names(&reader) == ["a"]).then_some(())
    })
    .await;

    // A dropped watch resumes from the last resourceVersion: no relist.
    cluster.drop_watches();
    api.create(&PostParams::default(), &config_map("b", "web"))
        .await
        .unwrap();
    eventually("b in the cache", || async {
        (names(&reader) == ["a", "b"]).then_some(())
    })
    .await;
    assert_eq!(relists.load(Ordering::SeqCst), 1);

    // After compaction, the resumed watch gets 410 Gone and the watcher relists. (The unrelated
    // write moves the cluster past the watcher's last resourceVersion, so compaction drops it.)
    api.create(&PostParams::default(), &config_map("ignored-too", "api"))
        .await
        .unwrap();
    cluster.compact();
    cluster.drop_watches();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &config_map("c", "web"))
        .await
        .unwrap();
    eventually("the relisted cache", || async {
        (names(&reader) == ["b", "c"]).then_some(())
    })
    .await;
    eventually("a relist after 410", || async {
        (relists.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert!(gone.load(Ordering::SeqCst) >= 1, "the watcher saw 410 Gone");

    // And keeps watching afterwards.
    api.create(&PostParams::default(), &config_map("d", "web"))
        .await
        .unwrap();
    eventually("d in the cache", || async {
        (names(&reader) == ["b", "c", "d"]).then_some(())
    })
    .await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_with_streaming_lists_fills_the_cache() {
    let cluster = start(Config::default()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&cluster));
    api.create(&PostParams::default(), &config_map("before", "web"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store::<ConfigMap>();
    let task = tokio::spawn(
        watcher(api.clone(), watcher::Config::default().streaming_lists())
            .default_backoff()
            .reflect(writer)
            .for_each(|_| futures_util::future::ready(())),
    );
    tokio::time::timeout(WAIT, reader.wait_until_ready())
        .await
        .expect("the initial events end")
        .unwrap();
    assert_eq!(reader.state().len(), 1);
    api.create(&PostParams::default(), &config_map("after", "web"))
        .await
        .unwrap();
    eventually("the new object", || async {
        (reader.state().len() == 2).then_some(())
    })
    .await;
    task.abort();
}
