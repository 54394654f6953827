use decor::timed;

#[timed]
struct Config {
    path: String,
}

fn main() {}
