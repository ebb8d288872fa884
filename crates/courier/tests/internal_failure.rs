//! A bug inside the producer is never reported as a success: when the driver task panics
//! (injected here with the `fault-injection` feature), every record it held fails with an
//! error that says so, every callback runs exactly once, `flush` and `close` report it,
//! and later sends fail at once.
//!
//! One test per binary: the fault is armed through an environment variable read when the
//! producer starts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier::{Persistence, Producer, ProducerConfig, ProducerError, ProducerRecord};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_panic_fails_every_record_and_is_never_a_success() {
    // The third record to reach the driver makes it panic. No broker is needed: the
    // records never get that far (nothing listens on port 1).
    std::env::set_var("COURIER_FAULT_INJECTION", "driver-panic-after-records=3");
    let config = ProducerConfig::from_properties([
        ("bootstrap.servers", "127.0.0.1:1"),
        ("durability.check", "off"),
    ])
    .unwrap();
    let producer = Producer::new(config).unwrap();

    let calls = Arc::new(AtomicUsize::new(0));
    let reports: Arc<Mutex<Vec<Result<(), ProducerError>>>> = Arc::default();
    for i in 0..2 {
        let (calls, reports) = (calls.clone(), reports.clone());
        producer
            .produce_with_callback(
                ProducerRecord::new("t").value(format!("cb-{i}")),
                move |r| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    reports.lock().unwrap().push(r.map(|_| ()));
                },
            )
            .await
            .expect("queued before the panic");
    }
    let mut futures = Vec::new();
    for i in 0..3 {
        // The first of these is the third record: the panic may come before the later
        // ones are queued, and then `produce` itself says why.
        match producer
            .produce(ProducerRecord::new("t").value(format!("fut-{i}")))
            .await
        {
            Ok(f) => futures.push(f),
            Err(e) => assert_internal(&e),
        }
    }
    for f in futures {
        let r = tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("a report, not a hang");
        assert_internal(&r.expect_err("no record is delivered"));
    }

    // Every callback exactly once, each with the failure.
    tokio::time::timeout(Duration::from_secs(10), async {
        while calls.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both callbacks run");
    for r in reports.lock().unwrap().iter() {
        assert_internal(r.as_ref().expect_err("no callback reports success"));
    }

    let flushed = tokio::time::timeout(Duration::from_secs(10), producer.flush())
        .await
        .expect("flush returns");
    assert_internal(&flushed.expect_err("flush reports the failure"));
    let later = producer
        .produce(ProducerRecord::new("t").value("late"))
        .await;
    assert_internal(&later.err().expect("later sends fail at once"));
    let closed = producer.close(Duration::from_secs(5)).await;
    assert_internal(&closed.expect_err("close reports the failure"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "no callback ran twice");
}

fn assert_internal(e: &ProducerError) {
    let text = e.to_string();
    assert_eq!(e.name(), "FATAL", "{text}");
    assert!(text.contains("internal error"), "{text}");
    assert!(text.contains("injected fault"), "{text}");
    // The driver cannot know what reached a broker: never claim "not written".
    assert_eq!(e.persistence(), Persistence::PossiblyPersisted, "{text}");
}
