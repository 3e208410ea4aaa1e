//! The options every fleet tool shares, declared once: `fleet_args!` adds them to a tool's argument struct.
//!
//! Doc comments in argument structs are user-facing text: argh prints them
//! for `--help`, and `docs` turns the same definitions into man pages and
//! completions. A tool's default timeout is a constant its `--timeout` help
//! quotes (a unit test in `jobs` checks each one).

use std::time::Duration;

/// The fleet options of one run, gathered from a tool's argument struct.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub nodes: Vec<String>,
    pub all: bool,
    pub parallel: Option<usize>,
    pub timeout: Option<u64>,
    pub dry_run: bool,
    /// The tool's default timeout (its `DEFAULT_TIMEOUT`).
    pub default_timeout: Duration,
    /// Words after `--` are a command (deploy, exec): a stray word may be
    /// one that lacks its `--`.
    pub takes_command: bool,
    /// No progress line and no summary on a terminal (`-q`).
    pub quiet: bool,
    /// JSON lines on stdout even at a terminal (`--json`).
    pub json: bool,
}

/// A duration beyond 30 days is a typo (and `u64::MAX` seconds would
/// overflow a deadline): every duration option is bounded by it.
pub const MAX_SECONDS: u64 = 30 * 24 * 3600;

/// A duration on the command line, in seconds: `90`, `90s`, `5m`, `2h`, or
/// those together as Docker and Go write them (`1h30m`, `2m30s`), at most
/// [`MAX_SECONDS`]. Every duration option reads through here (`logs
/// --since` hands its words to docker, which reads them the same way).
pub fn seconds(text: &str) -> Result<u64, String> {
    let wrong = || format!("{text:?}: a number of seconds, or with s, m or h (90s, 5m, 1h30m)");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return bounded(text.parse::<u64>().map_err(|_| wrong())?, text);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    let mut last_unit = u64::MAX;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let unit = tail.chars().next().ok_or_else(wrong)?;
        let factor = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(wrong()),
        };
        // Each unit once, largest first: 1h30m, not 30m1h or 1m1m.
        if number.is_empty() || factor >= last_unit {
            return Err(wrong());
        }
        last_unit = factor;
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .and_then(|n| n.checked_add(total))
            .ok_or_else(wrong)?;
        rest = &tail[1..];
    }
    match text.is_empty() {
        true => Err(wrong()),
        false => bounded(total, text),
    }
}

fn bounded(seconds: u64, text: &str) -> Result<u64, String> {
    match seconds > MAX_SECONDS {
        true => Err(format!(
            "{text:?} is more than {MAX_SECONDS} seconds (30 days)"
        )),
        false => Ok(seconds),
    }
}

/// Declares a fleet tool's argument struct: the tool's own fields, then the
/// fleet options every tool shares (`-a`, `-j`, `--timeout`, `--dry-run`,
/// node specs), with the tool's default timeout in seconds and its
/// `--timeout` help, which quotes it.
#[macro_export]
macro_rules! fleet_args {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            timeout: ($default_timeout:literal, $timeout_help:literal),
            $($fields:tt)*
        }
    ) => {
        #[derive(argh::FromArgs, argh::ArgsInfo)]
        $(#[$meta])*
        pub struct $name {
            $($fields)*
            /// every node of ALL_SCOPE (plus or minus the node arguments)
            #[argh(switch, short = 'a')]
            pub all: bool,
            /// how many nodes to work on at once (default: PARALLEL from baleine.conf)
            #[argh(option, arg_name = "N", short = 'j')]
            pub parallel: Option<usize>,
            #[doc = $timeout_help]
            #[argh(option, arg_name = "DURATION", from_str_fn($crate::framework::args::seconds))]
            pub timeout: Option<u64>,
            /// print each node's ssh command and remote script instead of running them
            #[argh(switch)]
            pub dry_run: bool,
            /// no progress line and no summary on a terminal (the records are the same)
            #[argh(switch, short = 'q')]
            pub quiet: bool,
            /// JSON lines on stdout even at a terminal, where a table or a view would show
            #[argh(switch)]
            pub json: bool,
            /// nodes: 3, fit03, 1-5, 4-16-2, fit[01-05,07], ~7 (default: stdin, then $NODES)
            #[argh(positional)]
            pub nodes: Vec<String>,
        }

        impl $name {
            /// The `--timeout` help, which quotes the default.
            pub const TIMEOUT_HELP: &'static str = $timeout_help;
            /// How long a node may take when `--timeout` is not given.
            pub const DEFAULT_TIMEOUT: std::time::Duration =
                std::time::Duration::from_secs($default_timeout);

            pub fn fleet_options(&self) -> $crate::framework::args::FleetOptions {
                $crate::framework::args::FleetOptions {
                    nodes: self.nodes.clone(),
                    all: self.all,
                    parallel: self.parallel,
                    timeout: self.timeout,
                    dry_run: self.dry_run,
                    default_timeout: Self::DEFAULT_TIMEOUT,
                    takes_command: false,
                    quiet: self.quiet,
                    json: self.json,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(seconds("90"), Ok(90));
        assert_eq!(seconds("90s"), Ok(90));
        assert_eq!(seconds("5m"), Ok(300));
        assert_eq!(seconds("2h"), Ok(7200));
        assert!(seconds("5 m").is_err());
        assert!(seconds("m").is_err());
        assert!(seconds("1d").is_err());
        assert!(seconds("99999999999999999999h").is_err());
        // Compound, as --since and Docker read them.
        assert_eq!(seconds("1h30m"), Ok(5400));
        assert_eq!(seconds("2m30s"), Ok(150));
        assert_eq!(seconds("1h0m5s"), Ok(3605));
        for bad in ["", "30m1h", "1m1m", "1h30", "h", "1.5h", "-1m", "1h 30m"] {
            assert!(seconds(bad).is_err(), "{bad}");
        }
        assert!(seconds("720h1s").unwrap_err().contains("30 days"));
    }
}
