use decor::timed;

#[timed(level = "debug", level = "info")]
fn work() {}

fn main() {
    work();
}
