use decor::timed;

#[timed(levle = "debug")]
fn work() {}

fn main() {
    work();
}
