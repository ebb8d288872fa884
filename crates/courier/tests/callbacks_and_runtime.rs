//! Two ways an application can break around the producer, neither of which may cost a
//! report or pass for a success: a delivery callback that panics, and a tokio runtime
//! shut down while the producer still holds records.
//!
//! No broker is needed: nothing listens on port 1, so records wait, then fail.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier::{Persistence, Producer, ProducerConfig, ProducerError, ProducerRecord};

fn unreachable_cluster(extra: &[(&str, &str)]) -> ProducerConfig {
    let mut props = vec![
        ("bootstrap.servers", "127.0.0.1:1"),
        ("durability.check", "off"),
    ];
    props.extend_from_slice(extra);
    ProducerConfig::from_properties(props).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_callback_costs_no_other_report() {
    let config = unreachable_cluster(&[
        ("delivery.timeout.ms", "1500"),
        ("request.timeout.ms", "1000"),
        ("linger.ms", "0"),
    ]);
    let producer = Producer::new(config).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let reports: Arc<Mutex<Vec<ProducerError>>> = Arc::default();
    for i in 0..6 {
        let (calls, reports) = (calls.clone(), reports.clone());
        producer
            .produce_with_callback(ProducerRecord::new("t").value(format!("r{i}")), move |r| {
                calls.fetch_add(1, Ordering::SeqCst);
                let e = r.expect_err("nothing can be delivered to port 1");
                reports.lock().unwrap().push(e);
                if i % 2 == 0 {
                    panic!("application bug in callback {i}");
                }
            })
            .await
            .unwrap();
    }
    let flushed = tokio::time::timeout(Duration::from_secs(20), producer.flush())
        .await
        .expect("flush returns although callbacks panicked");
    // flush reports whether the producer itself failed; it did not.
    flushed.expect("no producer failure: the records timed out, the producer is fine");
    assert_eq!(calls.load(Ordering::SeqCst), 6, "every callback ran once");
    for e in reports.lock().unwrap().iter() {
        assert_ne!(
            e.name(),
            "FATAL",
            "a panicking callback is not a producer failure: {e}"
        );
    }
    // The producer carries on: a later record is taken and reported.
    let f = producer
        .produce(ProducerRecord::new("t").value("after"))
        .await
        .expect("the producer still takes records");
    let later = tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("a report, not a hang");
    assert_ne!(later.expect_err("port 1").name(), "FATAL");
    producer.close(Duration::from_secs(5)).await.unwrap();
}

#[test]
fn a_runtime_shut_down_under_the_producer_fails_its_records_with_that_cause() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (producer, futures) = runtime.block_on(async {
        let producer = Producer::new(unreachable_cluster(&[])).unwrap();
        let mut futures = Vec::new();
        for i in 0..5 {
            futures.push(
                producer
                    .produce(ProducerRecord::new("t").value(format!("r{i}")))
                    .await
                    .unwrap(),
            );
        }
        (producer, futures)
    });
    // The application forgets to close the producer before its runtime ends.
    runtime.shutdown_timeout(Duration::from_secs(5));

    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    other.block_on(async {
        for f in futures {
            let r = tokio::time::timeout(Duration::from_secs(5), f)
                .await
                .expect("every record gets a report when its runtime goes away");
            let e = r.expect_err("nothing was delivered");
            let text = e.to_string();
            assert!(text.contains("runtime"), "{text}");
            assert!(text.contains("Producer::close"), "says what to do: {text}");
            assert!(
                !text.contains("internal error"),
                "not a courier bug: {text}"
            );
            assert_eq!(e.persistence(), Persistence::PossiblyPersisted, "{text}");
        }
        let flushed = tokio::time::timeout(Duration::from_secs(5), producer.flush())
            .await
            .expect("flush does not wait for a driver that is gone");
        let text = flushed.expect_err("flush reports it").to_string();
        assert!(text.contains("runtime"), "{text}");
    });
}

/// A `DeliveryHandler` that panics for some tags still gets every other tag, once each,
/// and the producer carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_delivery_handler_costs_no_other_report() {
    let config = unreachable_cluster(&[
        ("delivery.timeout.ms", "1500"),
        ("request.timeout.ms", "1000"),
        ("linger.ms", "0"),
    ]);
    let producer = Producer::new(config).unwrap();
    let tags: Arc<Mutex<Vec<u64>>> = Arc::default();
    let handler = {
        let tags = tags.clone();
        courier::DeliveryHandler::new(move |tag, r| {
            assert!(r.is_err(), "nothing can be delivered to port 1");
            tags.lock().unwrap().push(tag);
            if tag % 2 == 0 {
                panic!("application bug in the handler for {tag}");
            }
        })
    };
    for tag in 0..6 {
        producer
            .produce_tagged(ProducerRecord::new("t").value("r"), &handler, tag)
            .await
            .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(20), producer.flush())
        .await
        .expect("flush returns although the handler panicked")
        .expect("no producer failure");
    let mut got = tags.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [0, 1, 2, 3, 4, 5], "every tag reported once");
    producer.close(Duration::from_secs(5)).await.unwrap();
}

/// While a record waits (here for a cluster that never answers), the age of the oldest
/// pending record grows, and the metric says so (issue 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_pending_record_age_grows_while_it_waits() {
    let config = unreachable_cluster(&[
        ("delivery.timeout.ms", "5000"),
        ("request.timeout.ms", "1000"),
        ("linger.ms", "0"),
    ]);
    let producer = Producer::new(config).unwrap();
    let _report = producer
        .produce(ProducerRecord::new("t").value("waits"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let m = producer.metrics();
    assert!(
        (500..5000).contains(&m.oldest_pending_ms),
        "oldest pending {} ms",
        m.oldest_pending_ms
    );
    assert!(m.to_prometheus().lines().any(|l| l
        .starts_with("courier_oldest_queued_record_age_seconds 0.")
        || l.starts_with("courier_oldest_queued_record_age_seconds 1")));
    producer.close(Duration::from_secs(1)).await.ok();
}
