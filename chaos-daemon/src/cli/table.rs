//! A minimal aligned-columns table for the human output format.

use std::io::{self, Write};

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left so digits line up.
    Right,
}

/// Rows of cells under a header line, columns separated by two spaces.
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(columns: &[(&'static str, Align)]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells print empty, extra cells are ignored.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// Writes the header and rows. The last column is not padded, so lines carry no
    /// trailing spaces.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let cell = |row: &[String], i: usize| row.get(i).map_or("", String::as_str).to_owned();
        let headers: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                std::iter::once(&headers)
                    .chain(&self.rows)
                    .map(|row| cell(row, i).chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.columns.iter().enumerate() {
                let text = cell(row, i);
                let pad = widths[i].saturating_sub(text.chars().count());
                let last = i + 1 == self.columns.len();
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Right => {
                        line.push_str(&" ".repeat(pad));
                        line.push_str(&text);
                    }
                    Align::Left => {
                        line.push_str(&text);
                        if !last {
                            line.push_str(&" ".repeat(pad));
                        }
                    }
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("N", Align::Right),
            ("NOTE", Align::Left),
        ]);
        table.push(vec!["a".into(), "100".into(), "x".into()]);
        table.push(vec!["long-name".into(), "7".into()]);
        let mut out = Vec::new();
        assert!(table.write(&mut out).is_ok());
        assert_eq!(
            String::from_utf8_lossy(&out),
            "NAME         N  NOTE\n\
             a          100  x\n\
             long-name    7\n"
        );
    }
}
