use decor::parallel_chunks;

#[parallel_chunks(chunks = 8, reduce = "concat")]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

fn main() {
    total(&[1]);
}
