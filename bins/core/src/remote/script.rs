//! Where every remote script is built: one POSIX shell script per node and session, every word quoted.
//!
//! What a script prints (its marks and `key=value` results) and how a
//! session reads is the protocol's (`remote::protocol`).

use crate::domain::record::Stage;
use crate::remote::protocol::STAGE_MARK;
use crate::remote::quote::{quote, quote_word};

/// A remote script under construction.
#[derive(Debug, Clone)]
pub struct Script {
    text: String,
}

impl Default for Script {
    fn default() -> Self {
        Script::new()
    }
}

impl Script {
    pub fn new() -> Script {
        Script {
            text: format!(
                "m() {{ echo \"{STAGE_MARK}$1\" >&2; [ -z \"$BALEINE_STAGE\" ] || echo \"$1\" >\"$BALEINE_STAGE\" 2>/dev/null; }}\n"
            ),
        }
    }

    pub fn stage(&mut self, stage: Stage) -> &mut Script {
        self.text.push_str(&format!("m {}\n", stage.as_str()));
        self
    }

    /// A command that must succeed, or the script stops with its error.
    pub fn must(&mut self, words: &[String]) -> &mut Script {
        self.text.push_str(&format!("{} || exit 1\n", quote(words)));
        self
    }

    /// A line of our own shell text. Anything coming from a user must go
    /// through `quote` first: callers pass only fixed text and quoted words.
    pub fn line(&mut self, text: &str) -> &mut Script {
        self.text.push_str(text);
        self.text.push('\n');
        self
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

/// The docker engine on a node, as the configuration names it.
#[derive(Debug, Clone)]
pub struct Docker {
    /// The engine command (`DOCKER`, default `docker`), split into words.
    pub command: Vec<String>,
    /// The one container baleine manages (`CONTAINER_NAME`).
    pub container: String,
}

/// The configuration's defaults: `docker`, managing the container `container`.
impl Default for Docker {
    fn default() -> Self {
        Docker {
            command: vec!["docker".into()],
            container: "container".into(),
        }
    }
}

impl Docker {
    pub fn from_config(config: &crate::domain::config::Config) -> Docker {
        Docker {
            command: config.docker.clone(),
            container: config.container_name.clone(),
        }
    }

    /// Where a deploy keeps the previous container (stopped) until the new
    /// one holds: baleine's too, and removed with it.
    pub fn previous(&self) -> String {
        format!("{}.baleine-previous", self.container)
    }

    /// The docker command line with these arguments, ready for `quote`.
    pub fn words<S: AsRef<str>>(&self, args: &[S]) -> Vec<String> {
        let mut words = self.command.clone();
        words.extend(args.iter().map(|a| a.as_ref().to_owned()));
        words
    }

    /// Removes the managed container, if any, and prints `removed=true|false`.
    /// Only this container, by name: never a prune, never anything else.
    /// `docker rm -f` of a missing container fails on older CLIs and succeeds
    /// on newer ones, both saying "No such container".
    pub fn remove_managed(&self, script: &mut Script, stop_timeout: Option<u64>) {
        script.stage(Stage::Remove);
        if let Some(seconds) = stop_timeout {
            let stop = self.words(&["stop", "-t", &seconds.to_string(), &self.container]);
            script.line(&format!("{} >/dev/null 2>&1", quote(&stop)));
        }
        let rm = quote(&self.words(&["rm", "-f", &self.container]));
        script.line(&format!(
            "out=$({rm} 2>&1); rc=$?\n\
             case $out in\n\
             *'No such container'*) echo removed=false ;;\n\
             *) [ $rc -eq 0 ] || {{ printf '%s\\n' \"$out\" >&2; exit 1; }}; echo removed=true ;;\n\
             esac\n\
             {} >/dev/null 2>&1",
            quote(&self.words(&["rm", "-f", &self.previous()]))
        ));
    }

    /// Stops the script with a clear error when the managed container does
    /// not exist (`then`: what that means for the tool, e.g. "no logs");
    /// leaves its state (`running`, `exited`...) in `$state`.
    pub fn require_managed(&self, script: &mut Script, then: &str) {
        let state =
            quote(&self.words(&["inspect", "--format", "{{.State.Status}}", &self.container]));
        let missing = quote_word(&format!(
            "no container named {} on this node: {then}",
            self.container
        ));
        script.line(&format!(
            "state=$({state} 2>&1) || {{ case $state in *'No such'*) echo {missing} >&2 ;; \
             *) printf '%s\\n' \"$state\" >&2 ;; esac; exit 1; }}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_words_stay_single_words() {
        let docker = Docker::default();
        let mut script = Script::new();
        script.must(&docker.words(&[
            "run",
            "-e",
            "MSG=hello world; rm -rf /",
            "busybox",
            "$(id)",
            "`id`",
            "a'b",
        ]));
        let line = script.text().lines().nth(1).unwrap();
        let words = shell_words::split(line.trim_end_matches(" || exit 1")).unwrap();
        assert!(line.contains("'$(id)' '`id`' 'a'\\''b'"), "{line}");
        assert_eq!(
            words,
            [
                "docker",
                "run",
                "-e",
                "MSG=hello world; rm -rf /",
                "busybox",
                "$(id)",
                "`id`",
                "a'b"
            ]
        );
    }

    #[test]
    fn braces_tildes_globs_and_equals_are_quoted() {
        for word in [
            "{a,b}", "x{1..3}", "~root", "*", "=ls", "a b", "", "!x", "[ab]", "\n",
        ] {
            let quoted = quote_word(word);
            assert!(
                quoted.starts_with('\'') && quoted.ends_with('\''),
                "{word:?} -> {quoted}"
            );
        }
        for word in [
            "busybox", "fit01", "/var/lib", "a.b-c_d", "x:y", "100%", "a,b", "u@h",
        ] {
            assert_eq!(quote_word(word), word);
        }
    }

    #[test]
    fn remove_step_only_ever_names_the_managed_container() {
        let docker = Docker::default();
        let mut script = Script::new();
        docker.remove_managed(&mut script, Some(5));
        let text = script.text();
        assert!(text.contains("docker stop -t 5 container"));
        assert!(text.contains("docker rm -f container"));
        assert!(!text.contains("prune"));
    }
}
