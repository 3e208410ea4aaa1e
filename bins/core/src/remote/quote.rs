//! Quoting for the remote shell: every word we send reaches sh, dash, bash and zsh byte for byte.

/// Quotes each word (see `quote_word`) and joins them with spaces.
pub fn quote(words: &[String]) -> String {
    words
        .iter()
        .map(|word| quote_word(word))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes one word so that sh, dash, bash and zsh all read it back byte for
/// byte, whatever their options. Only words made of letters, digits and
/// `,._+:@%/-` stay bare; everything else goes in single quotes, inside
/// which no shell expands anything (shell-words left `{a,b}` bare, which
/// bash brace-expands, and `=cmd`, which zsh expands).
pub fn quote_word(word: &str) -> String {
    let bare = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b",._+:@%/-".contains(&b));
    if bare {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}
