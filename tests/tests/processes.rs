//! `#[parallel_chunks(backend = "processes")]`: chunks in worker processes of this same test
//! binary, with no code in `main`.

use decor::parallel_chunks;

#[parallel_chunks(chunks = 4, workers = 2, backend = "processes", reduce = "concat")]
fn pids(xs: &[u64]) -> Vec<u32> {
    let _ = xs;
    vec![std::process::id()]
}

#[parallel_chunks(chunks = 8, workers = 2, backend = "processes", reduce = "sum")]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[test]
fn chunks_run_in_other_processes() {
    let ids = pids(&[1, 2, 3, 4]);
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|&p| p != std::process::id()), "{ids:?}");
    assert_eq!(total(&vec![1; 8_000_000]), 8_000_000);
}
