use decor::parallel_chunks;

#[derive(Debug)]
struct Busy(u16);

fn by_value(e: Busy) -> bool {
    e.0 == 429
}

#[parallel_chunks(reduce = "sum", retries = 2, retry_if = by_value)]
fn fetch(xs: &[u64]) -> Result<u64, Busy> {
    Ok(xs.iter().sum())
}

fn status(e: &Busy) -> u16 {
    e.0
}

#[parallel_chunks(reduce = "sum", retries = 2, retry_if = status)]
fn fetch_again(xs: &[u64]) -> Result<u64, Busy> {
    Ok(xs.iter().sum())
}

fn main() {
    let _ = fetch(&[1, 2, 3]);
    let _ = fetch_again(&[1, 2, 3]);
}
