use decor::timed;

#[timed(level = 3, name = parse, warn_over = 250)]
fn work() {}

fn main() {
    work();
}
