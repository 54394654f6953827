use decor::parallel_chunks;

#[parallel_chunks(workers = 0, reduce = "max", timeout = "soon", retries = -1, threads = 4)]
fn total(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

fn main() {
    total(&[1]);
}
