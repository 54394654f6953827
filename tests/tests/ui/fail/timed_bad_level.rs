use decor::timed;

#[timed(level = "verbose")]
fn work() {}

fn main() {
    work();
}
