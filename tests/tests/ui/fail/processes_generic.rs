use decor::parallel_chunks;

#[parallel_chunks(backend = "processes", reduce = "sum")]
fn total<T: Copy + Into<u64> + Sync>(xs: &[T]) -> u64 {
    xs.iter().map(|&x| x.into()).sum()
}

fn main() {
    total(&[1u8]);
}
