//! Benchmarks of the decorators against their anchors.
fn main() {}
