use decor::parallel_chunks;

#[derive(Debug)]
struct Busy;

#[parallel_chunks(reduce = "sum", retries = 2, backoff = "soon")]
fn unparsable_backoff(xs: &[u64]) -> Result<u64, Busy> {
    Ok(xs.iter().sum())
}

#[parallel_chunks(reduce = "sum", retries = 2, backoff = "10s..200ms")]
fn reversed_backoff(xs: &[u64]) -> Result<u64, Busy> {
    Ok(xs.iter().sum())
}

#[parallel_chunks(reduce = "sum", retries = 2, rate = "50 per minute")]
fn unparsable_rate(xs: &[u64]) -> Result<u64, Busy> {
    Ok(xs.iter().sum())
}

#[parallel_chunks(reduce = "sum", rate = "0/s")]
fn zero_rate(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

fn main() {}
