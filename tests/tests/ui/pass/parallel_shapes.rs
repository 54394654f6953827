//! Shapes `#[parallel_chunks]` accepts, alone and stacked with the other attributes.

use decor::{logged, parallel_chunks, timed};

#[timed]
#[logged(skip(xs))]
#[parallel_chunks(chunks = 4, reduce = "sum")]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[parallel_chunks(chunk_size = 100, workers = 16, reduce = "concat", split = text)]
fn shout(prefix: &str, text: &str, times: usize) -> String {
    format!("{prefix}{}", text.to_uppercase().repeat(times))
}

#[parallel_chunks(backend = "serial")]
fn validate(items: Vec<String>) -> Result<(), String> {
    items.iter().try_for_each(|s| if s.is_empty() { Err("empty".to_owned()) } else { Ok(()) })
}

#[parallel_chunks(chunks = 2, reduce = "concat")]
fn early(xs: &[i32]) -> Result<Vec<i32>, std::num::TryFromIntError> {
    if xs.is_empty() {
        return Ok(Vec::new());
    }
    let v: Vec<i32> = xs.iter().map(|&x| u8::try_from(x).map(i32::from)).collect::<Result<_, _>>()?;
    Ok(v)
}

#[parallel_chunks(chunks = 2, backend = "processes", timeout = "2s", retries = 1, reduce = "sum")]
fn on_processes(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

struct Model {
    weights: Vec<f64>,
}

impl Model {
    #[parallel_chunks(reduce = "concat")]
    fn score(&self, rows: &[f64]) -> Vec<f64> {
        rows.iter().map(|r| r * self.weights[0]).collect()
    }
}

fn main() {
    let _ = total(&[1, 2, 3]);
    let _ = shout(">", "abc", 2);
    let _ = validate(vec!["a".into()]);
    let _ = early(&[1, 2]);
    let _ = on_processes(&[1, 2]);
    let _ = Model { weights: vec![2.0] }.score(&[1.0]);
}
