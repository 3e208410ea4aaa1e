//! The compact view of a tool's records on a terminal: one row per node (or tag), sorted, durations and sizes for a person, wrapped to the terminal's width.

use crate::domain::record::{Kind, Record};
use crate::framework::output::View;

/// What a column shows of a record.
#[derive(Clone, Copy)]
pub enum Cell {
    /// A field as it is (a list's items joined by `,`).
    Text(&'static str),
    /// A digest, as `docker images` shows it: 12 hex digits.
    Digest(&'static str),
    /// Milliseconds, as `3m57s`.
    Millis(&'static str),
    /// Seconds, as `3m57s`.
    Seconds(&'static str),
    /// Bytes, as `1.2MiB`.
    Bytes(&'static str),
    /// What the tool works out of the record itself.
    With(fn(&Record) -> String),
}

/// A column: its header, and what its cells show.
#[derive(Clone, Copy)]
pub struct Column {
    pub header: &'static str,
    pub cell: Cell,
}

/// A tool's table: rows come in as records do, and are shown, sorted by
/// their first column (fit2 before fit10), once every record is in. A
/// failed record's row is its name and `! stage: error`, wrapped.
pub struct Table {
    columns: &'static [Column],
    rows: Vec<Row>,
    /// The terminal's width (none: no wrapping).
    width: Option<usize>,
}

struct Row {
    cells: Vec<String>,
    failure: Option<String>,
}

/// The most rows kept for the table: a longer listing is JSON's job.
const MOST_ROWS: usize = 100_000;

impl Table {
    /// A table of `columns`, the first naming the row (the node, by default).
    pub fn new(columns: &'static [Column]) -> Table {
        Table {
            columns,
            rows: Vec::new(),
            width: crate::framework::output::window_size(1).map(|(_, columns)| columns.into()),
        }
    }

    /// The same, boxed as a view.
    pub fn boxed(columns: &'static [Column]) -> Option<Box<dyn View>> {
        Some(Box::new(Table::new(columns)))
    }

    #[cfg(test)]
    fn of_width(columns: &'static [Column], width: usize) -> Table {
        Table {
            columns,
            rows: Vec::new(),
            width: Some(width),
        }
    }
}

impl View for Table {
    fn line(&mut self, record: &Record) -> Option<String> {
        if matches!(record.kind(), Kind::StreamLine { .. }) || self.rows.len() >= MOST_ROWS {
            return None;
        }
        let cells: Vec<String> = self.columns.iter().map(|c| cell(c.cell, record)).collect();
        let failure = (!record.is_ok()).then(|| {
            let stage = record.stage().map_or("?", |s| s.as_str());
            let error = record.error().unwrap_or_default();
            let first = error.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            let more = if error.trim().lines().count() > 1 {
                " …"
            } else {
                ""
            };
            format!("! {stage}: {}{more}", first.trim())
        });
        self.rows.push(Row { cells, failure });
        None
    }

    fn end(&mut self) -> Vec<String> {
        if self.rows.is_empty() {
            return Vec::new();
        }
        self.rows
            .sort_by(|a, b| natural_key(&a.cells[0]).cmp(&natural_key(&b.cells[0])));
        // A column no ok row fills says nothing: left out.
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| {
                i == 0
                    || self
                        .rows
                        .iter()
                        .any(|r| r.failure.is_none() && !r.cells[i].is_empty())
            })
            .collect();
        let widths: Vec<usize> = shown
            .iter()
            .map(|&i| {
                self.rows
                    .iter()
                    .filter(|r| i == 0 || r.failure.is_none())
                    .map(|r| chars(&r.cells[i]).max(1))
                    .chain([chars(self.columns[i].header)])
                    .max()
                    .unwrap_or(1)
            })
            .collect();
        let headers: Vec<String> = shown
            .iter()
            .map(|&i| self.columns[i].header.to_owned())
            .collect();
        let mut lines = vec![self.render(&headers, &widths)];
        for row in &self.rows {
            let line = match &row.failure {
                Some(failure) => {
                    let name = match row.cells[0].as_str() {
                        "" => "-",
                        name => name,
                    };
                    let name = format!("{name:<w$}  ", w = widths[0]);
                    wrapped(&name, failure, self.width)
                }
                None => {
                    let cells: Vec<String> = shown
                        .iter()
                        .map(|&i| match row.cells[i].as_str() {
                            "" => "-".to_owned(),
                            text => text.to_owned(),
                        })
                        .collect();
                    self.render(&cells, &widths)
                }
            };
            lines.push(line);
        }
        lines
    }
}

impl Table {
    /// One row: every column padded to its width but the last, which is
    /// wrapped to what the terminal has left.
    fn render(&self, cells: &[String], widths: &[usize]) -> String {
        let mut head = String::new();
        for (cell, width) in cells.iter().zip(widths).take(cells.len() - 1) {
            head += &format!("{cell:<width$}  ");
        }
        wrapped(&head, cells.last().map_or("", String::as_str), self.width)
    }
}

/// `head` then `text`, `text` wrapped at spaces (or anywhere, in a word
/// longer than the room) into what is left of `width`, its next rows
/// indented under its first. With less than 20 columns left, not wrapped.
fn wrapped(head: &str, text: &str, width: Option<usize>) -> String {
    let indent = chars(head);
    let room = match width {
        Some(width) if width >= indent + 20 => width - indent,
        _ => return format!("{head}{text}").trim_end().to_owned(),
    };
    let mut rows: Vec<String> = Vec::new();
    let mut row = String::new();
    for word in text.split(' ') {
        let mut word = word.to_owned();
        loop {
            let needed = chars(&row) + usize::from(!row.is_empty()) + chars(&word);
            if needed <= room {
                if !row.is_empty() {
                    row.push(' ');
                }
                row += &word;
                break;
            }
            if !row.is_empty() {
                rows.push(std::mem::take(&mut row));
                continue;
            }
            // A word longer than the room: cut.
            let cut: String = word.chars().take(room).collect();
            word = word.chars().skip(room).collect();
            rows.push(cut);
        }
    }
    rows.push(row);
    let pad = " ".repeat(indent);
    let mut text = format!("{head}{}", rows[0]);
    for row in &rows[1..] {
        text += &format!("\n{pad}{row}");
    }
    text.trim_end().to_owned()
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Sorts names as a person counts: the digit runs as numbers (fit2 before
/// fit10), the rest as text.
pub fn natural_key(name: &str) -> Vec<(String, u128)> {
    let mut key = Vec::new();
    let mut rest = name;
    while !rest.is_empty() {
        let text_end = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (text, after) = rest.split_at(text_end);
        let digits_end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        let (digits, after) = after.split_at(digits_end);
        key.push((text.to_owned(), digits.parse().unwrap_or(u128::MAX)));
        rest = after;
    }
    key
}

/// What `cell` shows of `record` ("" when it has nothing to show).
fn cell(cell: Cell, record: &Record) -> String {
    use serde_json::Value;
    let number = |key: &str| record.get(key).and_then(Value::as_f64);
    match cell {
        Cell::Text("node") => record.node().unwrap_or_default().to_owned(),
        Cell::Text(key) => match record.get(key) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| item.as_str().map_or_else(|| item.to_string(), String::from))
                .collect::<Vec<_>>()
                .join(","),
            Some(other) => other.to_string(),
        },
        Cell::Digest(key) => record
            .get(key)
            .and_then(Value::as_str)
            .map(|d| d.trim_start_matches("sha256:").chars().take(12).collect())
            .unwrap_or_default(),
        Cell::Millis(key) => number(key).map_or_else(String::new, |ms| duration(ms / 1000.0)),
        Cell::Seconds(key) => number(key).map_or_else(String::new, duration),
        Cell::Bytes(key) => number(key).map_or_else(String::new, size),
        Cell::With(show) => show(record),
    }
}

/// A duration as a person reads it: `0.4s`, `12.3s`, `42s`, `3m57s`, `2h05m`, `3d04h`.
pub fn duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return String::new();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let whole = seconds.round() as u64;
    match whole {
        0..=59 => format!("{whole}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        3600..=86_399 => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
        _ => format!("{}d{:02}h", whole / 86_400, whole % 86_400 / 3600),
    }
}

/// A size in bytes as `ls -h` says it, in powers of 1024: `512B`, `1.2KiB`, `340MiB`.
pub fn size(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes.max(0.0);
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    match (unit, value < 10.0) {
        (0, _) => format!("{}B", value as u64),
        (_, true) => format!("{value:.1}{}", units[unit]),
        (_, false) => format!("{}{}", value.round() as u64, units[unit]),
    }
}

/// A dry run's rows: what each node would run.
pub const DRY_RUN: &[Column] = &[
    NODE,
    Column {
        header: "WOULD RUN",
        cell: Cell::With(|record| {
            let lines = record
                .get("script")
                .and_then(|s| s.as_str())
                .map_or(0, |s| s.lines().count());
            format!("a {lines}-line script over ssh (--json shows it)")
        }),
    },
];

/// The columns every fleet tool starts with, and a run's time at the end.
pub const NODE: Column = Column {
    header: "NODE",
    cell: Cell::Text("node"),
};
pub const TOOK: Column = Column {
    header: "TOOK",
    cell: Cell::Millis("elapsed_ms"),
};

/// The image a record names, and its digest: the columns of most tools.
pub const IMAGE: Column = Column {
    header: "IMAGE",
    cell: Cell::Text("image"),
};
pub const DIGEST: Column = Column {
    header: "DIGEST",
    cell: Cell::Digest("digest"),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::record::{Failure, Fields, Stage};

    const COLUMNS: &[Column] = &[
        NODE,
        Column {
            header: "IMAGE",
            cell: Cell::Text("image"),
        },
        Column {
            header: "UNUSED",
            cell: Cell::Text("nothing"),
        },
        TOOK,
    ];

    fn ok(node: &str, image: &str, ms: u64) -> Record {
        Record::of(
            Some(node),
            "deploy",
            Ok(Fields::new().with("image", image).with("elapsed_ms", ms)),
        )
    }

    #[test]
    fn rows_are_sorted_by_node_as_a_person_counts_them() {
        let mut table = Table::of_width(COLUMNS, 80);
        for record in [
            ok("fit10", "busybox", 237_000),
            ok("fit2", "alpine:3.20", 400),
        ] {
            assert_eq!(table.line(&record), None);
        }
        let failed = Record::of(
            Some("fit3"),
            "deploy",
            Err(Failure::new(Stage::Pull, "no such image\nmore")),
        );
        table.line(&failed);
        assert_eq!(
            table.end(),
            [
                "NODE   IMAGE        TOOK",
                "fit2   alpine:3.20  0.4s",
                "fit3   ! pull: no such image …",
                "fit10  busybox      3m57s",
            ]
        );
    }

    #[test]
    fn a_long_error_wraps_under_itself() {
        let text = wrapped("fit01  ", &"word ".repeat(12), Some(30));
        let rows: Vec<&str> = text.lines().collect();
        assert!(rows.len() > 1, "{text}");
        for row in &rows {
            assert!(row.chars().count() <= 30, "{row:?}");
        }
        assert!(rows[1].starts_with("       word"), "{text}");
        // No room worth wrapping into: one line, the terminal wraps it.
        assert_eq!(wrapped("fit01  ", "a b", Some(10)), "fit01  a b");
    }

    #[test]
    fn durations_and_sizes_read_as_a_person_says_them() {
        assert_eq!(duration(0.42), "0.4s");
        assert_eq!(duration(42.0), "42s");
        assert_eq!(duration(237.0), "3m57s");
        assert_eq!(duration(7500.0), "2h05m");
        assert_eq!(duration(90_000.0), "1d01h");
        assert_eq!(size(512.0), "512B");
        assert_eq!(size(1300.0), "1.3KiB");
        assert_eq!(size(340.0 * 1024.0 * 1024.0), "340MiB");
    }

    #[test]
    fn names_sort_by_their_numbers() {
        let mut names = vec!["fit10", "fit2", "node-b", "fit01", "node-a"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["fit01", "fit2", "fit10", "node-a", "node-b"]);
    }
}
