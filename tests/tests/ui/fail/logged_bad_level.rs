use decor::logged;

#[logged(level = "loud")]
fn work(x: u32) {
    let _ = x;
}

fn main() {
    work(1);
}
