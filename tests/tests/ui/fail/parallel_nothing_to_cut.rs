use decor::parallel_chunks;

#[parallel_chunks(chunks = 4, reduce = "sum")]
fn total(n: u64, factor: u64) -> u64 {
    n * factor
}

fn main() {
    total(1, 2);
}
