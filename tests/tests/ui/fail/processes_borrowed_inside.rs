use decor::parallel_chunks;

#[parallel_chunks(backend = "processes", reduce = "sum")]
fn lengths(words: &[&str]) -> usize {
    words.iter().map(|w| w.len()).sum()
}

#[parallel_chunks(backend = "processes", reduce = "sum")]
fn tagged(xs: &[u64], tags: Vec<&str>) -> u64 {
    xs.iter().sum::<u64>() + tags.len() as u64
}

fn main() {}
