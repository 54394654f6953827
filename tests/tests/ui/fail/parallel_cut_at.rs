use decor::parallel_chunks;

#[parallel_chunks(cut_at = "line", reduce = "sum")]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

#[parallel_chunks(cut_at = "sentence", reduce = "concat")]
fn words(text: &str) -> Vec<String> {
    vec![text.to_owned()]
}

struct NotChunkable;

#[parallel_chunks(split = x, reduce = "sum")]
fn custom(x: NotChunkable) -> u64 {
    let _ = x;
    0
}

fn main() {}
