//! Test files shaped like the real world, shared by the server's unit and
//! integration tests.

/// A real-world export of `rows` rows: nulls as `NA` and empty, negative
/// numbers, quoted text with delimiters and quotes, timestamps with time
/// zones. Row `bad_at` (0-based; line `bad_at + 2`) gets `bad` appended to
/// its id.
pub fn export_csv(rows: usize, bad_at: Option<(usize, &str)>) -> Vec<u8> {
    let mut out = String::from("id,customer,amount,ordered_at,shipped,note\n");
    for i in 0..rows {
        let amount = match i % 13 {
            0 => "NA".to_owned(),
            _ => format!("{:.2}", (i as f64 - 5_000.0) * 1.37),
        };
        let id = match bad_at {
            Some((at, bad)) if at == i => format!("{i}{bad}"),
            _ => i.to_string(),
        };
        let note = match i % 5 {
            0 => String::new(),
            1 => "\"a, b and \"\"c\"\"\"".to_owned(),
            _ => format!("plain {i}"),
        };
        out.push_str(&format!(
            "{id},Customer {},{amount},2024-{:02}-{:02} {:02}:15:00+02:00,{},{note}\n",
            i % 997,
            1 + i % 12,
            1 + i % 28,
            i % 24,
            i % 2 == 0,
        ));
    }
    out.into_bytes()
}
