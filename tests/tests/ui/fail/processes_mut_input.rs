use decor::parallel_chunks;

#[parallel_chunks(backend = "processes")]
fn double(xs: &mut [u64]) {
    for x in xs {
        *x *= 2;
    }
}

fn main() {
    double(&mut [1, 2]);
}
