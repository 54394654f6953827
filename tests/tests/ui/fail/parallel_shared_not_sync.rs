use std::cell::Cell;

use decor::parallel_chunks;

#[parallel_chunks(chunks = 2)]
fn count(xs: &[u64], seen: &Cell<usize>) {
    seen.set(seen.get() + xs.len());
}

fn main() {
    count(&[1, 2], &Cell::new(0));
}
