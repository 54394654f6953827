use decor::logged;

#[logged(err = true)]
fn fire(x: u8) {
    let _ = x;
}

fn main() {
    fire(1);
}
