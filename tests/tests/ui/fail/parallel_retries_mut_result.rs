use decor::parallel_chunks;

#[parallel_chunks(split = xs, retries = 2)]
fn double(xs: &mut [u64]) -> Result<(), String> {
    for x in xs {
        *x *= 2;
    }
    Ok(())
}

fn main() {}
