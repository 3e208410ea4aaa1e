//! `--help`, drawn from the same argument tables as the man pages: every option with its argument's name, every paragraph wrapped to the terminal.

use crate::framework::cli::AfterDashes;
use argh::{CommandInfoWithArgs, FlagInfo, FlagInfoKind, Optionality};

/// argh keeps descriptions, notes and examples as format strings, where
/// `{{` is a brace: the text as a person reads it.
pub fn unbraced(text: &str) -> String {
    text.replace("{{", "{").replace("}}", "}")
}

/// How a flag is written with its argument: `-j, --parallel N`.
pub fn flag_name(flag: &FlagInfo) -> String {
    let mut name = match flag.short {
        Some(short) => format!("-{short}, {}", flag.long),
        None => flag.long.to_owned(),
    };
    if let FlagInfoKind::Option { arg_name } = flag.kind {
        name += &format!(" {arg_name}");
        if matches!(flag.optionality, Optionality::Repeating) {
            name += "...";
        }
    }
    name
}

/// The help of `tool`, `width` columns wide (80 when stdout is no terminal).
pub fn render(tool: &str, info: &CommandInfoWithArgs, after: AfterDashes, width: usize) -> String {
    let width = width.clamp(40, 120);
    let mut text = usage_lines(tool, &usage(info, after), width) + "\n\n";
    text += &paragraph(&unbraced(info.description), width, 0);
    let positionals: Vec<(String, &str)> = info
        .positionals
        .iter()
        .filter(|p| !p.hidden)
        .map(|p| (p.name.to_owned(), p.description))
        .collect();
    if !positionals.is_empty() {
        text += "\nPositional Arguments:\n";
        text += &table(&positionals, width);
    }
    let mut options: Vec<(String, &str)> = info
        .flags
        .iter()
        .filter(|f| !f.hidden && f.long != "--help")
        .map(|f| (flag_name(f), f.description))
        .collect();
    options.push(("-h, --help".to_owned(), "print this help and exit"));
    options.push(("-V, --version".to_owned(), "print the version and exit"));
    text += "\nOptions:\n";
    text += &table(&options, width);
    if !info.examples.is_empty() {
        text += "\nExamples:\n";
        for example in info.examples {
            for line in unbraced(example).lines() {
                text += &format!("  {line}\n");
            }
        }
    }
    if !info.notes.is_empty() {
        text += "\nNotes:\n";
        for note in info.notes {
            text += &paragraph(&unbraced(note), width, 2);
        }
    }
    if !info.error_codes.is_empty() {
        text += "\nError codes:\n";
        let codes: Vec<(String, &str)> = info
            .error_codes
            .iter()
            .map(|e| (e.code.to_string(), e.description))
            .collect();
        text += &table(&codes, width);
    }
    text
}

/// The usage line: options (an option's argument named), the arguments,
/// and what follows `--`.
fn usage(info: &CommandInfoWithArgs, after: AfterDashes) -> Vec<String> {
    let mut words = Vec::new();
    for flag in info
        .flags
        .iter()
        .filter(|f| !f.hidden && f.long != "--help")
    {
        let name = match (flag.short, &flag.kind) {
            (Some(short), FlagInfoKind::Switch) => format!("-{short}"),
            (Some(short), FlagInfoKind::Option { arg_name }) => format!("-{short} {arg_name}"),
            (None, FlagInfoKind::Switch) => flag.long.to_owned(),
            (None, FlagInfoKind::Option { arg_name }) => format!("{} {arg_name}", flag.long),
        };
        words.push(match flag.optionality {
            Optionality::Required => name,
            Optionality::Repeating => format!("[{name}...]"),
            _ => format!("[{name}]"),
        });
    }
    for positional in info.positionals.iter().filter(|p| !p.hidden) {
        words.push(match positional.optionality {
            Optionality::Required => format!("<{}>", positional.name),
            Optionality::Repeating | Optionality::Greedy => format!("[<{}...>]", positional.name),
            _ => format!("[<{}>]", positional.name),
        });
    }
    if after != AfterDashes::Nothing {
        words.push(format!("[-- <{}...>]", after.name()));
    }
    words
}

/// Names and what they mean, the meanings lined up and wrapped under
/// themselves; a name too long for the column has its meaning on the
/// next line.
fn table(rows: &[(String, &str)], width: usize) -> String {
    let column = rows
        .iter()
        .map(|(name, _)| name.chars().count() + 4)
        .filter(|&w| w <= 26)
        .max()
        .unwrap_or(20)
        .max(12);
    let mut text = String::new();
    for (name, meaning) in rows {
        let head = format!("  {name}");
        let meaning = unbraced(meaning);
        let body = paragraph(&meaning, width, column);
        match head.chars().count() + 2 <= column {
            true => {
                let pad = column - head.chars().count();
                text += &head;
                text += &" ".repeat(pad);
                text += body.trim_start();
            }
            false => {
                text += &head;
                text += "\n";
                text += &body;
            }
        }
    }
    text
}

/// `text` wrapped at spaces to `width`, every line indented by `indent`.
fn paragraph(text: &str, width: usize, indent: usize) -> String {
    let room = width.saturating_sub(indent).max(20);
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > room {
            out += &format!("{pad}{line}\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += word;
    }
    if !line.is_empty() {
        out += &format!("{pad}{line}\n");
    }
    out
}

/// `Usage: tool` and its items, wrapped between items (`[--to DIR]` stays
/// whole), the lines after the first indented.
fn usage_lines(tool: &str, items: &[String], width: usize) -> String {
    let mut out = format!("Usage: {tool}");
    let mut line_length = out.chars().count();
    for item in items {
        let length = item.chars().count();
        if line_length + 1 + length > width {
            out += "\n   ";
            line_length = 3;
        }
        out += " ";
        out += item;
        line_length += 1 + length;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_fit_the_width_and_keep_every_word() {
        let text = "word ".repeat(50);
        let wrapped = paragraph(&text, 40, 2);
        assert!(
            wrapped.lines().all(|l| l.chars().count() <= 40),
            "{wrapped}"
        );
        assert_eq!(wrapped.split_whitespace().count(), 50);
    }

    #[test]
    fn a_long_name_has_its_meaning_on_the_next_line() {
        let rows = [
            ("--short".to_owned(), "a meaning"),
            ("--a-very-long-option-name VALUE".to_owned(), "its meaning"),
        ];
        let text = table(&rows, 60);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("  --short") && lines[0].ends_with("a meaning"));
        assert_eq!(lines[1], "  --a-very-long-option-name VALUE");
        assert!(lines[2].trim_start() == "its meaning" && lines[2].starts_with("    "));
    }
}
