use decor::parallel_chunks;

#[parallel_chunks(chunks = 8, chunk_size = 1000, reduce = "sum")]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

fn main() {
    total(&[1]);
}
