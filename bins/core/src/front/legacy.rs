//! baleine 0.8's command lines (`baleine deploy -i X --nodes 1-3 --command …`), read with 0.8's grammar and written as today's tools' arguments.
//!
//! 0.8 (clap 3) let `--nodes`, `--options` and `--tags` take several words,
//! `--options` and `--command` words starting with `-`, `--command` the
//! rest of the line, and `--bootstrap` no value at all. Today's tools take
//! one word per option and node specs as positional words, so the same
//! line means something else (or nothing) to them: this module reads it as
//! 0.8 did and says what today's tool must be given.

/// How a 0.8 option takes its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// No value.
    Nothing,
    /// One word.
    One,
    /// One word if the next one is not an option.
    MaybeOne,
    /// Words up to the next option (any next word starting with `-`).
    Words,
    /// Words up to the next option of this subcommand, words starting with `-` included.
    AnyWords,
    /// Every word after it.
    Rest,
}

/// One 0.8 option: its spellings, how it takes its value, and its name below.
struct Flag {
    names: &'static [&'static str],
    takes: Takes,
    key: &'static str,
}

const fn flag(names: &'static [&'static str], takes: Takes, key: &'static str) -> Flag {
    Flag { names, takes, key }
}

/// The options of each 0.8 subcommand (baleine 0.8.0's src/args.rs).
fn grammar(subcommand: &str) -> Option<&'static [Flag]> {
    const DEPLOY: &[Flag] = &[
        flag(&["-i", "--image"], Takes::One, "image"),
        flag(&["--options"], Takes::AnyWords, "options"),
        flag(&["--nodes"], Takes::Words, "nodes"),
        flag(&["--bootstrap"], Takes::MaybeOne, "bootstrap"),
        flag(&["--command"], Takes::Rest, "command"),
    ];
    const DESTROY: &[Flag] = &[
        flag(&["-y", "--yes", "-f", "--force"], Takes::Nothing, "yes"),
        flag(&["--nodes"], Takes::Words, "nodes"),
    ];
    const SAVE: &[Flag] = &[
        flag(&["--name"], Takes::One, "name"),
        flag(&["--node"], Takes::One, "node"),
    ];
    const LIST: &[Flag] = &[flag(&["-d", "--details"], Takes::One, "details")];
    const BUILD: &[Flag] = &[
        flag(&["-f", "--file"], Takes::One, "file"),
        flag(&["-u", "--url"], Takes::One, "url"),
        flag(&["--tags"], Takes::Words, "tags"),
    ];
    match subcommand {
        "deploy" => Some(DEPLOY),
        "destroy" => Some(DESTROY),
        "save" => Some(SAVE),
        "list" => Some(LIST),
        "build" => Some(BUILD),
        _ => None,
    }
}

/// The words of 0.8 options that today's tool of the same name does not
/// have: a line holding one is a 0.8 line, whatever else it holds.
pub fn only_in_0_8(subcommand: &str) -> &'static [&'static str] {
    match subcommand {
        "deploy" => &["--nodes", "--command"],
        "destroy" => &["--nodes", "-f", "--force"],
        "save" => &["--node"],
        "build" => &["--tags", "-u", "--url"],
        _ => &[],
    }
}

/// A 0.8 line, option by option: (key, words given).
type Parsed = Vec<(&'static str, Vec<String>)>;

/// Reads `args` with 0.8's grammar for `subcommand`; `None` if 0.8 would
/// not have read it either (an unknown word), or for `--help`.
fn parse(subcommand: &str, args: &[String]) -> Option<Parsed> {
    let flags = grammar(subcommand)?;
    let find = |word: &str| flags.iter().find(|f| f.names.contains(&word));
    let mut parsed: Parsed = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_str();
        i += 1;
        // 0.8 had no `--`: a line with one is today's.
        if word == "--" {
            return None;
        }
        // clap also reads `--image=X` and `-iX`.
        let (name, attached) = match word.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ if word.len() > 2 && !word.starts_with("--") && word.starts_with('-') => {
                match find(&word[..2]) {
                    Some(f) if f.takes == Takes::One => (&word[..2], Some(word[2..].to_owned())),
                    _ => (word, None),
                }
            }
            _ => (word, None),
        };
        let flag = find(name)?;
        let mut values = Vec::new();
        match (flag.takes, attached) {
            (Takes::Nothing, Some(_)) => return None,
            (Takes::Nothing, None) => {}
            (_, Some(value)) => values.push(value),
            (Takes::One, None) => {
                values.push(args.get(i)?.clone());
                i += 1;
            }
            (Takes::MaybeOne, None) => {
                if let Some(next) = args.get(i).filter(|w| !w.starts_with('-')) {
                    values.push(next.clone());
                    i += 1;
                }
            }
            (Takes::Words, None) => {
                while let Some(next) = args.get(i).filter(|w| !w.starts_with('-')) {
                    values.push(next.clone());
                    i += 1;
                }
            }
            (Takes::AnyWords, None) => {
                while let Some(next) = args.get(i).filter(|w| find(w).is_none() && *w != "--") {
                    values.push(next.clone());
                    i += 1;
                }
            }
            (Takes::Rest, None) => {
                values.extend(args[i..].iter().cloned());
                i = args.len();
            }
        }
        parsed.push((flag.key, values));
    }
    Some(parsed)
}

/// The words given to `key` (the last time it appears, as clap kept them).
fn value<'a>(parsed: &'a Parsed, key: &str) -> Option<&'a Vec<String>> {
    parsed.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Today's arguments for the 0.8 line `baleine SUBCOMMAND ARGS…`, for the
/// tool `baleine-SUBCOMMAND`; `None` if it is not a 0.8 line.
pub fn translate(subcommand: &str, args: &[String]) -> Option<Vec<String>> {
    let parsed = parse(subcommand, args)?;
    let mut out: Vec<String> = Vec::new();
    let words = |key: &str| value(&parsed, key).cloned().unwrap_or_default();
    let one = |key: &str| value(&parsed, key).and_then(|v| v.first().cloned());
    match subcommand {
        "deploy" => {
            out.extend(["-i".into(), one("image")?]);
            if let Some(ndz) = value(&parsed, "bootstrap") {
                out.push("--bootstrap".into());
                out.push(ndz.first().cloned().unwrap_or_else(|| "default".into()));
            }
            let mut options = words("options");
            let mut command = value(&parsed, "command").cloned();
            // 0.8 read `--command A --options B` as options B and command A.
            if let Some(cmd) = &mut command {
                if let Some(at) = cmd.iter().position(|w| w == "--options") {
                    options.extend(cmd.split_off(at).into_iter().skip(1));
                }
            }
            // 0.8 joined the words with spaces for the node's shell to split:
            // --options does that split today.
            if !options.is_empty() {
                out.extend(["--options".into(), options.join(" ")]);
            }
            out.extend(words("nodes"));
            if let Some(command) = command.filter(|c| !c.is_empty()) {
                out.push("--".into());
                out.extend(command);
            }
        }
        "destroy" => {
            if value(&parsed, "yes").is_some() {
                out.push("-y".into());
            }
            out.extend(words("nodes"));
        }
        "save" => {
            out.extend(["-n".into(), one("name")?, one("node")?]);
        }
        "list" => {
            if let Some(image) = one("details") {
                out.extend(["-d".into(), image]);
            }
        }
        "build" => {
            if let Some(file) = one("file") {
                out.extend(["-f".into(), file]);
            }
            for tag in words("tags") {
                out.extend(["-t".into(), tag]);
            }
            // 0.8's -f built with the current directory as the context.
            out.push(one("url").unwrap_or_else(|| ".".into()));
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(subcommand: &str, line: &str) -> Option<String> {
        let args = shell_words::split(line).unwrap();
        translate(subcommand, &args).map(shell_words::join)
    }

    #[test]
    fn every_0_8_command_line_of_the_reference() {
        assert_eq!(
            t("deploy", "-i busybox --nodes 1-3 ~2 --options -e A=1 -v x:y --bootstrap --command sleep 3600").as_deref(),
            Some("-i busybox --bootstrap default --options '-e A=1 -v x:y' 1-3 '~2' -- sleep 3600")
        );
        assert_eq!(
            t("deploy", "--image=busybox --bootstrap u18 --nodes 4").as_deref(),
            Some("-i busybox --bootstrap u18 4")
        );
        assert_eq!(
            t(
                "deploy",
                "-i busybox --command sh -c 'echo $HOME' --options --rm"
            )
            .as_deref(),
            Some("-i busybox --options --rm -- sh -c 'echo $HOME'")
        );
        assert_eq!(t("destroy", "-f --nodes 1-5").as_deref(), Some("-y 1-5"));
        assert_eq!(t("destroy", "--force").as_deref(), Some("-y"));
        assert_eq!(t("destroy", "--nodes 2").as_deref(), Some("2"));
        assert_eq!(
            t("save", "--name exp:v1 --node fit01").as_deref(),
            Some("-n exp:v1 fit01")
        );
        assert_eq!(t("list", "--details exp").as_deref(), Some("-d exp"));
        assert_eq!(
            t("build", "-f Dockerfile --tags exp:v1 exp:v2").as_deref(),
            Some("-f Dockerfile -t exp:v1 -t exp:v2 .")
        );
        assert_eq!(
            t("build", "--url https://h/r.git --tags x").as_deref(),
            Some("-t x https://h/r.git")
        );
    }

    #[test]
    fn what_0_8_could_not_read_is_not_translated() {
        assert_eq!(t("deploy", "-i busybox 1-3"), None);
        assert_eq!(t("deploy", "--nodes 1-3"), None); // -i was required
        assert_eq!(t("save", "--name x"), None);
        assert_eq!(t("destroy", "--yes=1"), None);
        assert_eq!(t("ps", "--nodes 1"), None);
        assert_eq!(t("deploy", "--help"), None);
        assert_eq!(
            t(
                "deploy",
                "-i x --options --privileged 1-5 -- srun --nodes 2"
            ),
            None
        );
    }
}
