//! Aligned tables that fit an 80-column terminal.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ContentArrangement, Table};

pub fn new(header: &[&str], right_aligned_from: usize) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(80)
        .set_header(header.to_vec());
    for i in right_aligned_from..header.len() {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// `1.23 ms`, `812 µs`, `1.50 s`: three significant digits.
pub fn time(seconds: f64) -> String {
    decor::fmt::HumanDuration(std::time::Duration::from_secs_f64(seconds.max(0.0))).to_string()
}
