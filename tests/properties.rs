//! Property tests: quoting through the real shells, image references, node specs.
//!
//! Every word we put in a remote script must reach the program byte for
//! byte whatever the login shell on the node: each case builds a script with
//! `remote::quote::quote` and runs it under sh (dash here), dash, bash, zsh
//! and busybox sh, which print back what they received.

use baleine::domain::nodes::{expand_specs, fold_names, NodeNaming};
use baleine::domain::reference::ImageRef;
use baleine::remote::quote::quote;
use proptest::prelude::*;
use std::process::Command;

/// The shells a node's login shell may be, or the container's.
const SHELLS: &[&[&str]] = &[&["sh"], &["dash"], &["bash"], &["zsh"], &["busybox", "sh"]];

/// What `shell -c script` prints: the words it passed to printf, one per NUL.
fn through(shell: &[&str], words: &[String]) -> Vec<String> {
    let script = format!("printf '%s\\0' {}", quote(words));
    let out = Command::new(shell[0])
        .args(&shell[1..])
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("{shell:?} runs: {e}"));
    assert!(
        out.status.success(),
        "{shell:?} failed on {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut printed: Vec<String> = out
        .stdout
        .split(|b| *b == 0)
        .map(|w| String::from_utf8(w.to_vec()).expect("UTF-8 back"))
        .collect();
    printed.pop(); // after the last NUL
    printed
}

/// Words as a user, a config or a hostile record may give them: anything
/// but NUL (which no argv can hold), weighted towards shell syntax.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,12}",
        "[{}*?\\[\\]$`'\"\\\\!#&;|<>()~=%^,: \t\n-]{1,8}",
        "[a-z{},.0-9=~-]{1,10}",
        "\\PC{0,6}",
        any::<String>().prop_map(|s| s.replace('\0', "")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_word_arrives_byte_identical_under_every_shell(words in prop::collection::vec(word(), 1..6)) {
        for shell in SHELLS {
            prop_assert_eq!(&through(shell, &words), &words, "under {:?}", shell);
        }
    }
}

#[test]
fn the_words_that_used_to_change_arrive_unchanged() {
    let words: Vec<String> = [
        "{a,b}", "x{1..3}", "=ls", "~root", "*", "$(id)", "`id`", "a'b", "", "!x", "%1", "a\nb",
    ]
    .map(String::from)
    .to_vec();
    for shell in SHELLS {
        assert_eq!(through(shell, &words), words, "under {shell:?}");
    }
}

fn component() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,6}([._-][a-z0-9]{1,4})?"
}

fn reference() -> impl Strategy<Value = String> {
    (
        prop::option::of(prop_oneof![
            "[a-z]{1,8}\\.[a-z]{2,4}",
            "[a-z]{1,8}\\.[a-z]{2,4}:[1-9][0-9]{0,3}",
            Just("localhost:5000".to_owned())
        ]),
        prop::collection::vec(component(), 1..4),
        prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
        prop::option::of("[0-9a-f]{64}"),
    )
        .prop_map(|(domain, path, tag, digest)| {
            let mut text = domain.map(|d| d + "/").unwrap_or_default() + &path.join("/");
            if let Some(tag) = tag {
                text += &format!(":{tag}");
            }
            if let Some(digest) = digest {
                text += &format!("@sha256:{digest}");
            }
            text
        })
}

proptest! {
    #[test]
    fn image_references_parse_and_display_back(text in reference()) {
        let parsed = ImageRef::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(parsed.to_string(), text.clone());
        prop_assert_eq!(ImageRef::parse(&parsed.to_string()).ok(), Some(parsed));
    }

    #[test]
    fn any_text_either_parses_to_a_reference_that_displays_back_or_is_refused(text in "\\PC{0,40}") {
        if let Ok(parsed) = ImageRef::parse(&text) {
            prop_assert_eq!(ImageRef::parse(&parsed.to_string()).ok(), Some(parsed));
        }
    }

    #[test]
    fn node_names_fold_into_specs_that_expand_back(
        numbers in prop::collection::vec(1u32..300, 0..60),
        others in prop::collection::vec("[a-z][a-z.]{0,6}[a-z]", 0..5),
    ) {
        let naming = NodeNaming::default();
        let mut names: Vec<String> = numbers.iter().map(|n| naming.name(*n).unwrap().to_string()).collect();
        names.extend(others.into_iter().filter(|o| !o.starts_with("fit")));
        let specs = fold_names(&names, &naming);
        let mut back: Vec<String> = expand_specs(&specs, &naming).unwrap().iter().map(|n| n.to_string()).collect();
        back.sort();
        names.sort();
        names.dedup();
        prop_assert_eq!(back, names);
    }

    #[test]
    fn specs_expand_without_duplicates_and_fold_is_stable(specs in prop::collection::vec("~?[0-9]{1,3}(-[0-9]{1,3}(-[1-9])?)?", 1..6)) {
        let naming = NodeNaming::default();
        if let Ok(names) = expand_specs(&specs, &naming) {
            let mut unique = names.clone();
            unique.sort();
            unique.dedup();
            prop_assert_eq!(unique.len(), names.len());
            let folded = fold_names(&names, &naming);
            prop_assert_eq!(fold_names(&expand_specs(&folded, &naming).unwrap(), &naming), folded);
        }
    }
}
