//! DescribeLogDirs as kbench uses it for the on-disk check on external clusters: against a real
//! kbroker (in-process, port 0), the sizes it reports equal the segment files on disk.

use std::time::Duration;

use kbench::verify::log_dirs::topic_sizes;
use kbench::verify::on_disk::segment_bytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test(flavor = "multi_thread")]
async fn describe_log_dirs_sizes_match_the_segment_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let config = kbroker::BrokerConfig::load(
        None,
        &[
            format!("log.dirs={}", data.display()),
            format!("listeners=PLAINTEXT://{addr}"),
            "num.partitions=3".into(),
        ],
    )
    .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kbroker::server::run(listener, config, async {
        let _ = stop_rx.await;
    }));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("linger.ms", "2")
        .create()
        .unwrap();
    for i in 0..300u32 {
        producer
            .send(
                FutureRecord::<(), _>::to("sized")
                    .partition((i % 3) as i32)
                    .payload(&vec![b'x'; 700]),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("message {i}: {e}"));
    }
    let sizes = topic_sizes(&[(0, addr.clone())], "sized", 3)
        .await
        .expect("DescribeLogDirs");
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    for p in 0..3 {
        let on_disk = segment_bytes(std::slice::from_ref(&data), "sized", p);
        assert!(on_disk > 100 * 700, "partition {p} holds {on_disk} bytes");
        assert_eq!(sizes[&(p, 0)], on_disk, "partition {p}");
    }
    // A topic with no replicas anywhere reports nothing rather than zeroes.
    assert!(topic_sizes(&[(0, addr.clone())], "absent", 1)
        .await
        .unwrap()
        .is_empty());
    // An unreachable broker is an error naming it.
    let err = topic_sizes(&[(7, "127.0.0.1:1".into())], "sized", 3)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("broker 7"), "{err:#}");

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
