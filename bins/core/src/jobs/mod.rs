//! One module per tool: its arguments, its remote script, and how a node's result becomes its record.
//!
//! A job module uses the layers below it (domain, remote, framework) and
//! never another job module.

pub mod build;
pub mod cp;
pub mod deploy;
pub mod destroy;
pub mod exec;
pub mod list;
pub mod logs;
pub mod ps;
pub mod rdsh;
pub mod rmi;
pub mod save;

#[cfg(test)]
mod tests {
    use argh::ArgsInfo;

    /// The help `T` gives its option `--long`.
    fn help_of<T: ArgsInfo>(long: &str) -> &'static str {
        T::get_args_info()
            .flags
            .iter()
            .find(|flag| flag.long == long)
            .map(|flag| flag.description)
            .unwrap_or_else(|| panic!("no option {long}"))
    }

    /// Defaults are constants; the help quotes them, never the other way round.
    #[test]
    fn every_help_quotes_the_default_the_code_uses() {
        let quotes = |help: &str, default: u64| {
            assert!(
                help.contains(&format!("(default: {default})")),
                "{help:?} does not say (default: {default})"
            );
        };
        macro_rules! fleet_tools {
            ($($args:ty),*) => {$(
                quotes(<$args>::TIMEOUT_HELP, <$args>::DEFAULT_TIMEOUT.as_secs());
                assert_eq!(help_of::<$args>("--timeout"), <$args>::TIMEOUT_HELP);
            )*};
        }
        fleet_tools!(
            super::deploy::DeployArgs,
            super::destroy::DestroyArgs,
            super::save::SaveArgs,
            super::ps::PsArgs,
            super::exec::ExecArgs,
            super::logs::LogsArgs,
            super::cp::CpArgs
        );
        quotes(
            help_of::<super::build::BuildArgs>("--timeout"),
            super::build::DEFAULT_TIMEOUT.as_secs(),
        );
        quotes(
            help_of::<super::list::ListArgs>("--parallel"),
            super::list::DEFAULT_PARALLEL as u64,
        );
    }
}
