use decor::parallel_chunks;

#[derive(Debug)]
struct Busy;

fn transient(_: &Busy) -> bool {
    true
}

#[parallel_chunks(reduce = "sum", retry_if = transient, backoff = "100ms..1s")]
fn no_retries(xs: &[u64]) -> Result<u64, Busy> {
    Ok(xs.iter().sum())
}

fn any(_: &u64) -> bool {
    true
}

#[parallel_chunks(reduce = "sum", retries = 2, retry_if = any)]
fn no_result(xs: &[u64]) -> u64 {
    xs.iter().sum()
}

fn main() {}
