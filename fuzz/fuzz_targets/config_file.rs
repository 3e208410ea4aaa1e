//! baleine.conf: any text gives a configuration or an error naming file:line, never a panic.
#![no_main]

use baleine::domain::config::{from_text, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // REGISTRY_PASSWORD_FILE would make the fuzzer read files of this machine.
    if text.contains("REGISTRY_PASSWORD_FILE") {
        return;
    }
    match from_text(std::path::Path::new("fuzz.conf"), text) {
        Ok(config) => {
            let _ = config.run_options();
        }
        Err(ConfigError::Syntax { line, .. }) => assert!(line >= 1),
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
