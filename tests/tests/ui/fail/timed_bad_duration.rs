use decor::timed;

#[timed(warn_over = "5 minutes")]
fn slow() {}

#[timed(warn_over = "250")]
fn no_unit() {}

fn main() {
    slow();
    no_unit();
}
