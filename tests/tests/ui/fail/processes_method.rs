use decor::parallel_chunks;

struct Model;

impl Model {
    #[parallel_chunks(backend = "processes", reduce = "sum")]
    fn score(&self, xs: &[u64]) -> u64 {
        xs.iter().sum()
    }
}

fn main() {
    Model.score(&[1]);
}
