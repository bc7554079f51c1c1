//! The consumer runtime against the real broker: delivery, commits, retries, dead letters,
//! shutdown and crash recovery. Each test has its own topics and consumer group.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_core::runtime::{
    self, ConsumerSettings, ATTEMPTS, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, REASON,
};
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use orderflow_core::{Batched, Delivery, Handler, HandlerError, OrderPlaced};
use orderflow_testkit::{self as kit, sample_order_placed};
use rdkafka::Message;

/// Records what it handled; fails as scripted per order id.
#[derive(Clone, Default)]
struct Recorder {
    handled: Arc<Mutex<Vec<(String, i32, i64)>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    /// order id → (retryable failures before success, or u32::MAX for always; permanent?)
    script: Arc<HashMap<String, (u32, bool)>>,
    delay: Duration,
    /// Per-order delays overriding `delay`.
    delays: Arc<HashMap<String, Duration>>,
}

impl Handler for Recorder {
    type Event = OrderPlaced;

    async fn handle(&self, event: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(event.order_id.clone()).or_default();
            *n += 1;
            *n
        };
        tokio::time::sleep(
            self.delays
                .get(&event.order_id)
                .copied()
                .unwrap_or(self.delay),
        )
        .await;
        if let Some(&(failures, permanent)) = self.script.get(&event.order_id) {
            if permanent {
                return Err(HandlerError::permanent(format!(
                    "order {} is refused",
                    event.order_id
                )));
            }
            if attempt <= failures {
                return Err(HandlerError::retryable("supplier timed out"));
            }
        }
        self.handled.lock().unwrap().push((
            event.order_id.clone(),
            delivery.partition,
            delivery.offset,
        ));
        Ok(())
    }
}

impl Recorder {
    fn handled_ids(&self) -> Vec<String> {
        self.handled
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect()
    }
}

struct Setup {
    topic: String,
    group: String,
    dlq: String,
}

async fn setup(partitions: i32) -> Setup {
    kit::init_telemetry();
    let topic = kit::topic("runtime", partitions).await;
    let group = kit::unique("group");
    let dlq = dead_letter_topic(&topic, &group);
    kit::create_topic(&dlq, 1).await;
    kit::create_topic(&retry_topic(&topic, &group), partitions).await;
    Setup { topic, group, dlq }
}

fn settings(s: &Setup) -> ConsumerSettings {
    let mut settings = ConsumerSettings::new(&s.group, &s.topic);
    settings.retry_min_delay = Duration::from_millis(10);
    settings.retry_max_delay = Duration::from_millis(50);
    settings.retry_max_attempts = 4;
    // These tests are about one delivery's attempts; retry_topic.rs covers the later rounds.
    settings.retry_rounds = 0;
    settings.commit_interval = Duration::from_millis(100);
    settings.session_timeout = Duration::from_secs(6);
    settings
}

fn orders(prefix: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let id = format!("{prefix}-{i}");
            let bytes = sample_order_placed(&id).encode().unwrap();
            (id, bytes)
        })
        .collect()
}

async fn wait_handled(handler: &Recorder, n: usize) -> bool {
    kit::eventually(Duration::from_secs(40), || async {
        handler.handled_ids().len() >= n
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_is_handled_and_committed_after_graceful_shutdown() {
    let s = setup(3).await;
    let batch = orders("ok", 30);
    kit::produce(&s.topic, &batch).await;
    let handler = Recorder::default();
    let (stop, task) = kit::spawn_runtime(settings(&s), handler.clone());
    assert!(wait_handled(&handler, 30).await);
    stop.send(()).unwrap();
    task.await.unwrap();
    let handled: BTreeSet<String> = handler.handled_ids().into_iter().collect();
    let expected: BTreeSet<String> = batch.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(handled, expected);
    assert_eq!(handler.handled_ids().len(), 30, "nothing handled twice");
    // Per partition, the committed position is one past the last handled offset.
    let mut last: HashMap<i32, i64> = HashMap::new();
    for (_, p, o) in handler.handled.lock().unwrap().iter() {
        let e = last.entry(*p).or_insert(-1);
        *e = (*e).max(*o);
    }
    for (p, o) in last {
        assert_eq!(
            kit::committed_offset(&s.group, &s.topic, p).await,
            Some(o + 1),
            "partition {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_one_order_keep_their_order_while_others_overtake() {
    let s = setup(1).await;
    // Three events of order "slow" then one of "fast", all in one partition.
    let mut batch = Vec::new();
    for i in 0..3 {
        let mut e = sample_order_placed("slow");
        e.gift_message = Some(format!("{i}"));
        batch.push(("slow".to_string(), e.encode().unwrap()));
    }
    batch.push((
        "fast".to_string(),
        sample_order_placed("fast").encode().unwrap(),
    ));
    kit::produce(&s.topic, &batch).await;
    let handler = Recorder {
        delays: Arc::new(HashMap::from([(
            "slow".to_string(),
            Duration::from_millis(300),
        )])),
        ..Default::default()
    };
    let (stop, task) = kit::spawn_runtime(settings(&s), handler.clone());
    assert!(wait_handled(&handler, 4).await);
    stop.send(()).unwrap();
    task.await.unwrap();
    let handled = handler.handled.lock().unwrap().clone();
    assert_eq!(
        handled[0].0, "fast",
        "a slow order does not stall its partition: {handled:?}"
    );
    let slow_offsets: Vec<i64> = handled
        .iter()
        .filter(|h| h.0 == "slow")
        .map(|h| h.2)
        .collect();
    assert_eq!(
        slow_offsets,
        vec![0, 1, 2],
        "one order's events run in order"
    );
    assert_eq!(kit::committed_offset(&s.group, &s.topic, 0).await, Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn poison_and_failing_events_go_to_the_dead_letters_and_the_partition_moves_on() {
    let s = setup(1).await;
    let mut batch = vec![("garbage".to_string(), b"{\"not\":\"avro\"}".to_vec())];
    batch.extend(orders("dl", 4));
    kit::produce(&s.topic, &batch).await;
    let handler = Recorder {
        script: Arc::new(HashMap::from([
            ("dl-1".to_string(), (0, true)),         // permanent
            ("dl-2".to_string(), (u32::MAX, false)), // retryable forever
            ("dl-3".to_string(), (2, false)),        // retryable twice, then fine
        ])),
        ..Default::default()
    };
    let (stop, task) = kit::spawn_runtime(settings(&s), handler.clone());
    let dead = kit::read_topic(&s.dlq, 3, Duration::from_secs(40)).await;
    assert!(wait_handled(&handler, 2).await);
    stop.send(()).unwrap();
    task.await.unwrap();

    assert_eq!(dead.len(), 3, "garbage, dl-1 and dl-2 are dead letters");
    let by_key: HashMap<String, _> = dead
        .iter()
        .map(|m| (String::from_utf8(m.key().unwrap().to_vec()).unwrap(), m))
        .collect();
    let garbage = by_key["garbage"];
    assert!(kit::header(garbage, REASON)
        .unwrap()
        .starts_with("poison: message does not start with the Avro"));
    assert_eq!(
        garbage.payload().unwrap(),
        b"{\"not\":\"avro\"}",
        "the original bytes are kept"
    );
    assert_eq!(kit::header(garbage, ORIGIN_TOPIC).unwrap(), s.topic);
    assert_eq!(kit::header(garbage, ORIGIN_PARTITION).unwrap(), "0");
    assert_eq!(kit::header(garbage, ORIGIN_OFFSET).unwrap(), "0");
    let refused = by_key["dl-1"];
    assert_eq!(
        kit::header(refused, REASON).unwrap(),
        "permanent: order dl-1 is refused"
    );
    assert_eq!(kit::header(refused, ATTEMPTS).unwrap(), "1");
    let exhausted = by_key["dl-2"];
    assert!(kit::header(exhausted, REASON)
        .unwrap()
        .starts_with("retries exhausted"));
    assert_eq!(kit::header(exhausted, ATTEMPTS).unwrap(), "4");

    let handled = handler.handled_ids();
    assert_eq!(
        handled.iter().filter(|id| *id == "dl-3").count(),
        1,
        "a transient failure succeeds once"
    );
    assert!(handled.contains(&"dl-0".to_string()));
    assert_eq!(handler.attempts.lock().unwrap()["dl-3"], 3);
    assert_eq!(
        kit::committed_offset(&s.group, &s.topic, 0).await,
        Some(5),
        "the partition moved past all five"
    );
}

/// (order id, gift message) in the order handled.
type HandledOrders = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Handles runs at once; a run holding the refused order fails as a whole, as a transaction would.
#[derive(Clone, Default)]
struct RunRecorder {
    handled: HandledOrders,
    runs: Arc<Mutex<Vec<usize>>>,
    refused: String,
}

impl Handler for RunRecorder {
    type Event = OrderPlaced;

    async fn handle(&self, event: &OrderPlaced, _: &Delivery) -> Result<(), HandlerError> {
        if event.order_id == self.refused {
            return Err(HandlerError::permanent("refused"));
        }
        self.handled
            .lock()
            .unwrap()
            .push((event.order_id.clone(), event.gift_message.clone()));
        Ok(())
    }

    async fn handle_batch(&self, batch: &[Batched<OrderPlaced>]) -> Result<(), HandlerError> {
        if batch.iter().any(|b| b.event.order_id == self.refused) {
            return Err(HandlerError::permanent("a refused order in the run"));
        }
        self.runs.lock().unwrap().push(batch.len());
        self.handled.lock().unwrap().extend(
            batch
                .iter()
                .map(|b| (b.event.order_id.clone(), b.event.gift_message.clone())),
        );
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_are_handled_at_once_and_a_failed_run_is_retried_event_by_event() {
    let s = setup(2).await;
    let mut events = orders("run", 300);
    // One order's three events, spread among the others, must be handled in their order.
    for (i, at) in [10, 150, 290].into_iter().enumerate() {
        let mut e = sample_order_placed("run-seq");
        e.gift_message = Some(i.to_string());
        events.insert(at, ("run-seq".to_string(), e.encode().unwrap()));
    }
    events.insert(200, ("garbage".to_string(), b"not avro".to_vec()));
    kit::produce(&s.topic, &events).await;
    let handler = RunRecorder {
        refused: "run-77".to_string(),
        ..Default::default()
    };
    let mut settings = settings(&s);
    settings.batch_size = 64;
    settings.concurrency = 2;
    let (stop, task) = kit::spawn_runtime(settings, handler.clone());
    let dead = kit::read_topic(&s.dlq, 2, Duration::from_secs(40)).await;
    assert!(
        kit::eventually(Duration::from_secs(40), || async {
            handler.handled.lock().unwrap().len() >= 302
        })
        .await
    );
    stop.send(()).unwrap();
    task.await.unwrap();

    let handled = handler.handled.lock().unwrap().clone();
    let ids: Vec<&str> = handled.iter().map(|(id, _)| id.as_str()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().filter(|id| *id != "run-seq").collect();
    assert_eq!(unique.len(), 299, "every order but the refused one");
    assert_eq!(ids.len(), 302, "each handled once: {ids:?}");
    assert!(!unique.contains("run-77"));
    let seq: Vec<Option<String>> = handled
        .iter()
        .filter(|(id, _)| id == "run-seq")
        .map(|(_, gift)| gift.clone())
        .collect();
    assert_eq!(seq, ["0", "1", "2"].map(|g| Some(g.to_string())).to_vec());
    let runs = handler.runs.lock().unwrap().clone();
    assert!(
        runs.iter().any(|&n| n > 1) && runs.iter().all(|&n| n <= 64),
        "runs of more than one event, at most the batch size: {runs:?}"
    );
    let reasons: BTreeSet<String> = dead
        .iter()
        .map(|m| kit::header(m, REASON).unwrap())
        .collect();
    assert!(reasons.contains("permanent: refused"), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.starts_with("poison:")),
        "{reasons:?}"
    );
    let mut committed = 0;
    for p in 0..2 {
        committed += kit::committed_offset(&s.group, &s.topic, p)
            .await
            .unwrap_or(0);
    }
    assert_eq!(committed, 304, "both partitions committed to their end");
}

/// The body of the consumer process that `a_killed_consumer_s_uncommitted_events_go_to_its_successor`
/// starts and kills; not a test of its own.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run as a child process by the kill test"]
async fn child_consumer_process() {
    let topic = std::env::var("CHILD_TOPIC").expect("CHILD_TOPIC");
    let group = std::env::var("CHILD_GROUP").expect("CHILD_GROUP");
    let s = Setup {
        dlq: dead_letter_topic(&topic, &group),
        topic,
        group,
    };
    let handler = Recorder {
        delay: Duration::from_millis(200),
        ..Default::default()
    };
    let mut settings = settings(&s);
    settings.concurrency = 1;
    let log = handler.handled.clone();
    tokio::spawn(async move {
        // Tell the parent what was handled, line by line, so it knows when to kill.
        let mut seen = 0;
        loop {
            let ids: Vec<_> = log.lock().unwrap()[seen..].to_vec();
            for (id, p, o) in &ids {
                println!("HANDLED {id} {p} {o}");
            }
            seen += ids.len();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    runtime::run(&kit::kafka(), settings, handler, std::future::pending())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_consumer_s_uncommitted_events_go_to_its_successor() {
    use std::io::{BufRead, BufReader};
    let s = setup(1).await;
    let batch = orders("crash", 20);
    kit::produce(&s.topic, &batch).await;
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_consumer_process",
            "--ignored",
            "--nocapture",
        ])
        .env("CHILD_TOPIC", &s.topic)
        .env("CHILD_GROUP", &s.group)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    // Reads to the end of the child's output, so what it handled just before the kill counts too.
    let reader = std::thread::spawn(move || {
        let mut handled = Vec::new();
        for line in BufReader::new(stdout).lines() {
            if let Some(rest) = line.unwrap().strip_prefix("HANDLED ") {
                handled.push(rest.split(' ').next().unwrap().to_string());
                let _ = seen_tx.send(handled.len());
            }
        }
        handled
    });
    tokio::task::spawn_blocking(move || while seen_rx.recv().unwrap() < 6 {})
        .await
        .unwrap();
    assert!(
        kit::eventually(Duration::from_secs(10), || async {
            kit::committed_offset(&s.group, &s.topic, 0).await >= Some(1)
        })
        .await,
        "progress is committed while handling, before the end"
    );
    child.kill().unwrap(); // SIGKILL: no drain, no final commit, no leave-group
    child.wait().unwrap();
    let handled_by_child = reader.join().unwrap();
    let committed = kit::committed_offset(&s.group, &s.topic, 0).await.unwrap();
    assert!(
        committed <= handled_by_child.len() as i64,
        "never committed past what was handled ({committed} > {})",
        handled_by_child.len()
    );

    let successor = Recorder::default();
    let (stop, task) = kit::spawn_runtime(settings(&s), successor.clone());
    let expected = 20 - committed as usize;
    assert!(
        wait_handled(&successor, expected).await,
        "successor handled {:?}",
        successor.handled_ids()
    );
    stop.send(()).unwrap();
    task.await.unwrap();
    let mut offsets: Vec<i64> = successor
        .handled
        .lock()
        .unwrap()
        .iter()
        .map(|h| h.2)
        .collect();
    offsets.sort();
    assert_eq!(
        offsets,
        (committed..20).collect::<Vec<_>>(),
        "exactly the uncommitted events are redelivered"
    );
    let all: BTreeSet<String> = handled_by_child
        .into_iter()
        .chain(successor.handled_ids())
        .collect();
    assert_eq!(all.len(), 20, "no event lost");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_joining_mid_stream_takes_partitions_without_redoing_committed_work() {
    let s = setup(4).await;
    let first = Recorder {
        delay: Duration::from_millis(20),
        ..Default::default()
    };
    let second = Recorder {
        delay: Duration::from_millis(20),
        ..Default::default()
    };
    let (stop_first, task_first) = kit::spawn_runtime(settings(&s), first.clone());
    let batch = orders("rebalance", 80);
    let producer = tokio::spawn({
        let topic = s.topic.clone();
        async move {
            for chunk in batch.chunks(8) {
                kit::produce(&topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    });
    assert!(wait_handled(&first, 10).await);
    // A second member joins while events keep coming: cooperative-sticky moves some partitions.
    let (stop_second, task_second) = kit::spawn_runtime(settings(&s), second.clone());
    producer.await.unwrap();
    assert!(
        kit::eventually(Duration::from_secs(40), || async {
            first.handled_ids().len() + second.handled_ids().len() >= 80
        })
        .await
    );
    // Let a wrong redelivery show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_first.send(()).unwrap();
    stop_second.send(()).unwrap();
    task_first.await.unwrap();
    task_second.await.unwrap();
    let mut all: Vec<String> = first.handled_ids();
    all.extend(second.handled_ids());
    assert!(
        !second.handled_ids().is_empty(),
        "the new member got partitions"
    );
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 80, "nothing lost");
    assert_eq!(all.len(), 80, "nothing handled twice across the rebalance");
}
