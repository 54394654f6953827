//! `OrderedWriter`: chunk order from many threads, nothing lost, a missing chunk named.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use decor::Plan;
use decor::sink::{OrderError, OrderedWriter};

/// A tiny deterministic generator, so that each run shuffles the same way.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    let mut s = seed;
    for i in (1..n).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        v.swap(i, (s % (i as u64 + 1)) as usize);
    }
    v
}

#[test]
fn many_threads_in_random_order_give_chunk_order_without_interleaving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let out = OrderedWriter::new(std::fs::File::create(&path).unwrap());
    let order = shuffled(400, 0x5eed);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (out, order) = (&out, &order);
            s.spawn(move || {
                for &i in order.iter().skip(t).step_by(8) {
                    let line = format!("chunk {i:03} {}\n", "x".repeat(i % 50));
                    out.write(i, line).unwrap();
                }
            });
        }
    });
    out.finish(400).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 400);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("chunk {i:03} {}", "x".repeat(i % 50)));
    }
}

/// A writer whose bytes the test can read while the work is still going on.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_complete_prefix_is_written_at_once() {
    let sink = Shared::default();
    let out = OrderedWriter::new(sink.clone());
    out.write(1, "b").unwrap();
    assert!(
        sink.0.lock().unwrap().is_empty(),
        "chunk 1 waits for chunk 0"
    );
    out.write(0, "a").unwrap();
    assert_eq!(&*sink.0.lock().unwrap(), b"ab");
    out.write(3, "d").unwrap();
    assert_eq!(out.written(), 2);
    out.write(2, "c").unwrap();
    assert_eq!(&*sink.0.lock().unwrap(), b"abcd");
    assert!(matches!(
        out.write(2, "again"),
        Err(OrderError::Duplicate { chunk: 2 })
    ));
}

#[test]
fn a_failed_chunk_leaves_the_prefix_on_disk_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let out = OrderedWriter::new(std::fs::File::create(&path).unwrap());
    let results: Vec<Result<String, String>> = (0..6)
        .map(|i| {
            if i == 3 {
                Err("HTTP 503".to_owned())
            } else {
                Ok(format!("answer {i}\n"))
            }
        })
        .collect();
    std::thread::scope(|s| {
        for (i, r) in results.iter().enumerate().rev() {
            let out = &out;
            s.spawn(move || match r {
                Ok(text) => out.write(i, text.as_bytes()).unwrap(),
                Err(e) => out.fail(i, e),
            });
        }
    });
    let err = out.finish(6).unwrap_err();
    assert_eq!(
        err.to_string(),
        "chunk 3 of 6 is missing: chunks 0..3 are written; chunk 3 failed: HTTP 503; 2 later chunks are held back"
    );
    let OrderError::Missing { chunk, waiting, .. } = err else {
        panic!("{err}")
    };
    assert_eq!(chunk, 3);
    assert_eq!(
        waiting,
        [(4, b"answer 4\n".to_vec()), (5, b"answer 5\n".to_vec())],
        "nothing is lost"
    );
    let on_disk = std::fs::read_to_string(&path).unwrap();
    assert_eq!(on_disk, "answer 0\nanswer 1\nanswer 2\n");
}

#[test]
fn as_completed_streams_results_with_their_index_while_others_run() {
    let text = "alpha beta gamma delta epsilon zeta eta theta";
    let mut arrivals = Vec::new();
    Plan::new().chunks(4).workers(4).as_completed(
        text,
        |chunk: &str| {
            // The first chunk is the slowest, so it completes last.
            let delay = if chunk.starts_with("alpha") { 80 } else { 5 };
            std::thread::sleep(Duration::from_millis(delay));
            chunk.to_uppercase()
        },
        |i, r| arrivals.push((i, r.unwrap())),
    );
    assert_eq!(arrivals.len(), 4);
    assert_eq!(arrivals.last().unwrap().0, 0, "{arrivals:?}");
    arrivals.sort();
    let joined: String = arrivals.into_iter().map(|(_, s)| s).collect();
    assert_eq!(joined, text.to_uppercase());
}

#[test]
fn as_completed_hands_over_a_panicked_chunk_and_keeps_the_others() {
    let xs: Vec<u32> = (0..8).collect();
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    Plan::new()
        .named("sink::flaky")
        .chunks(4)
        .workers(2)
        .as_completed(
            xs.as_slice(),
            |c: &[u32]| {
                if c.contains(&5) {
                    panic!("chunk with five")
                }
                c.iter().sum::<u32>()
            },
            |i, r| match r {
                Ok(v) => ok.push((i, v)),
                Err(e) => failed.push(e),
            },
        );
    ok.sort();
    assert_eq!(ok, [(0, 1), (1, 5), (3, 13)]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].chunk, 2);
    assert_eq!(
        failed[0].to_string(),
        "sink::flaky: chunk 2 of 4 panicked: chunk with five"
    );
}

#[test]
fn ordered_writer_and_as_completed_write_a_file_in_order_while_work_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("answers.txt");
    let out = OrderedWriter::new(std::fs::File::create(&path).unwrap());
    let words: Vec<String> = (0..40).map(|i| format!("word{i}")).collect();
    Plan::new().chunk_size(3).workers(8).as_completed(
        words.as_slice(),
        |c: &[String]| {
            std::thread::sleep(Duration::from_millis((c.len() as u64 * 7) % 11));
            c.join(" ") + "\n"
        },
        |i, r| out.write(i, r.unwrap()).unwrap(),
    );
    out.finish(14).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.split_whitespace().collect::<Vec<_>>(), words);
}
