use decor::parallel_chunks;

#[parallel_chunks(chunks = 8, backend = "processes", reduce = "sum")]
async fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

fn main() {
    let _ = total(&[1]);
}
